"""`quorum limits ...`: a team's rate limits from the shell (requests and tokens per window)."""

from __future__ import annotations

from argparse import Namespace

from core import db
from core.cli import CLI_ACTOR, Commands
from core.db import saved_id
from core.gateway import policies
from core.gateway.rate_limit_rules import MEASURES, SCOPE_LABELS, SCOPES, RateLimits
from core.identity import people as identity
from core.settings import settings

CLEAR = "none"


def register(commands: Commands) -> None:
    parser = commands.add_parser(
        "limits",
        help="Show and set the teams' gateway rate limits.",
        description=(
            "Requests and tokens per window for each key, the whole team and each person. Audited as 'system:cli'."
        ),
    )
    sub = parser.add_subparsers(title="limits commands", metavar="COMMAND", required=True)

    show = sub.add_parser("show", help="A team's rate limits.", description="Print a team's rate limits.")
    show.add_argument("--team", required=True, help="The team, by name.")
    show.set_defaults(func=_show)

    change = sub.add_parser(
        "set",
        help="Change some of a team's rate limits.",
        description=f"Change the limits given; the others stay as they are. '{CLEAR}' removes a limit.",
    )
    change.add_argument("--team", required=True, help="The team, by name.")
    for scope in SCOPES:
        for measure in MEASURES:
            change.add_argument(
                f"--{scope}-{measure}",
                default=None,
                metavar="N",
                help=f"{measure.capitalize()} per window for {_whom(scope)} (a whole number, or '{CLEAR}').",
            )
    change.set_defaults(func=_set)


def _whom(scope: str) -> str:
    return SCOPE_LABELS[scope]


def _show(args: Namespace) -> int:
    with db.session_scope() as session:
        team = identity.team_by_name(session, args.team)
        _print(team.name, policies.team_settings(saved_id(team), session).rate_limits)
    return 0


def _set(args: Namespace) -> int:
    with db.session_scope(write=True) as session:
        team = identity.team_by_name(session, args.team)
        current = policies.team_settings(saved_id(team), session).rate_limits.as_dict()
        for scope in SCOPES:
            for measure in MEASURES:
                given = getattr(args, f"{scope}_{measure}")
                if given is None:
                    continue
                values = current.setdefault(scope, {})
                if given.strip().lower() == CLEAR:
                    values.pop(measure, None)
                else:
                    values[measure] = given
        saved = policies.set_rate_limits(session=session, actor=CLI_ACTOR, team_id=saved_id(team), limits=current)
        _print(team.name, saved)
    return 0


def _print(team: str, limits: RateLimits) -> None:
    window = settings().rate_limit_window_s
    print(f"rate limits of {team} (per {'minute' if window == 60 else f'{window} s window'}):")
    for scope in SCOPES:
        limit = limits.of(scope)
        shown = [f"{m} {getattr(limit, m):,}" for m in MEASURES if getattr(limit, m) is not None]
        print(f"  {_whom(scope):<15} {', '.join(shown) or 'no limit'}")

"""`quorum alerts ...`: anomaly detection (for cron) and the alerts it opens."""

from __future__ import annotations

import time
from argparse import Namespace

from core import db
from core.anomalies import alerts, deliveries, notify, run, tuning
from core.audit.query import parse_time
from core.cli import CLI_ACTOR, Commands
from core.errors import ValidationError
from core.identity import people as identity


def register(commands: Commands) -> None:
    group = commands.add_parser(
        "alerts",
        help="Anomaly alerts: detection over the hourly roll-ups, and the alerts it opens.",
        description="Anomaly alerts: spend and token surges, failure-rate jumps, keys doing what they never "
        "did, answers drifting after a change. Audited as 'system:cli'.",
    )
    sub = group.add_subparsers(title="alerts commands", metavar="COMMAND", required=True)
    detect = sub.add_parser(
        "detect",
        help="Detect the hours closed since the last run (cron-safe).",
        description="Run every detector over the hours closed since the last run (at most two weeks; a first "
        "run looks back a day). Idempotent, and one run at a time across servers.",
    )
    detect.set_defaults(func=_detect)
    listing = sub.add_parser("list", help="The open and acknowledged alerts.", description="Print the alerts.")
    listing.add_argument("--all", action="store_true", help="Resolved alerts too.")
    listing.set_defaults(func=_list)
    ack = sub.add_parser("ack", help="Acknowledge an open alert.", description="Mark an open alert acknowledged.")
    ack.add_argument("id", type=int, help="The alert's number.")
    ack.add_argument("--note", default="", help="What is being done about it.")
    ack.set_defaults(func=_ack)
    resolve = sub.add_parser("resolve", help="Resolve an alert with a note.", description="Resolve an alert.")
    resolve.add_argument("id", type=int, help="The alert's number.")
    resolve.add_argument("--note", required=True, help="What it was (required).")
    resolve.set_defaults(func=_resolve)
    mute = sub.add_parser(
        "mute",
        help="Mute a series until a time.",
        description="No alerts for a series (e.g. key:12, team:3, prompt:7) and the series under it until a time.",
    )
    mute.add_argument("series", help="The series, as an alert names it (key:12, team:3...).")
    mute.add_argument("--until", required=True, help="UTC date or time the mute ends (at most 90 days ahead).")
    mute.add_argument("--reason", default="", help="Why it is muted.")
    mute.set_defaults(func=_mute)
    sensitivity = sub.add_parser(
        "sensitivity",
        help="Set a detector's sensitivity factor, for every team or one.",
        description="Multiply a detector's thresholds by FACTOR (0.25-10; 1 is the default, above 1 fires less).",
    )
    sensitivity.add_argument("detector", help="The detector, e.g. spend_surge, error_rate, new_model.")
    sensitivity.add_argument("factor", type=float, help="The factor.")
    sensitivity.add_argument("--team", help="The team, by name (default: every team without its own).")
    sensitivity.set_defaults(func=_sensitivity)
    webhook = sub.add_parser(
        "webhook",
        help="Set or remove the webhook of a team or a role.",
        description=(
            "Where new anomaly and budget alerts, and reviews or held requests waiting too long, are posted "
            "(JSON with a Slack-compatible 'text'). An empty URL removes it."
        ),
    )
    target = webhook.add_mutually_exclusive_group(required=True)
    target.add_argument("--team", help="The team, by name.")
    target.add_argument("--role", help="The role: finance, governance_lead or admin.")
    webhook.add_argument("url", help="The URL ('' removes the webhook).")
    webhook.set_defaults(func=_webhook)
    delivered = sub.add_parser(
        "deliveries",
        help="How the latest posts to each team and role webhook ended.",
        description=(
            "For each webhook setting, its newest posts: when, what, delivered or failed (with the HTTP "
            "status or the error), and the attempts. A setting whose newest post failed is marked FAILING."
        ),
    )
    delivered.add_argument("--limit", type=int, default=10, help="Posts shown per webhook (1-100, default 10).")
    delivered.set_defaults(func=_deliveries)


def _detect(args: Namespace) -> int:
    started = time.perf_counter()
    result = run.detect(actor=CLI_ACTOR)
    if result.busy:
        print("another detection run is in progress; nothing to do")
        return 0
    if not result.hours:
        print("no hour closed since the last run")
    else:
        print(
            f"detected {len(result.hours)} hour(s) to {result.hours[-1]:%Y-%m-%d %H:00} UTC: "
            f"{result.findings} finding(s), {result.opened} new alert(s), in {time.perf_counter() - started:.2f} s"
        )
    if result.waiting:
        print(f"announced {result.waiting} review(s) or held request(s) waiting too long")
    return 0


def _list(args: Namespace) -> int:
    states = ("open", "acknowledged", "resolved") if args.all else alerts.OPEN_STATES
    with db.session() as session:
        views = alerts.list_alerts(session, actor=CLI_ACTOR, states=states)
    for view in views:
        print(f"#{view.id} [{view.state}] {view.label}: {view.sentence}")
    if not views:
        print("no alerts")
    return 0


def _ack(args: Namespace) -> int:
    with db.write_session() as session:
        alerts.acknowledge(session, actor=CLI_ACTOR, alert_id=args.id, note=args.note)
    print(f"alert #{args.id} acknowledged")
    return 0


def _resolve(args: Namespace) -> int:
    with db.write_session() as session:
        alerts.resolve(session, actor=CLI_ACTOR, alert_id=args.id, note=args.note)
    print(f"alert #{args.id} resolved")
    return 0


def _mute(args: Namespace) -> int:
    until = parse_time(args.until, field="--until")
    if until is None:
        raise ValidationError("--until needs a date or time")
    with db.write_session() as session:
        tuning.mute(session, actor=CLI_ACTOR, series=args.series, until=until, reason=args.reason)
    print(f"{args.series} muted until {until:%Y-%m-%d %H:%M} UTC")
    return 0


def _sensitivity(args: Namespace) -> int:
    with db.write_session() as session:
        team_id = identity.team_by_name(session, args.team).id if args.team else 0
        tuning.set_sensitivity(
            session, actor=CLI_ACTOR, detector=args.detector, team_id=team_id or 0, factor=args.factor
        )
    print(f"{args.detector}: factor {args.factor:g} for {args.team or 'every team'}")
    return 0


def _webhook(args: Namespace) -> int:
    with db.write_session() as session:
        if args.team:
            scope, ref = "team", str(identity.team_by_name(session, args.team).id)
        else:
            scope, ref = "role", args.role
        notify.set_webhook(session, actor=CLI_ACTOR, scope=scope, ref=ref, url=args.url)
    print(f"webhook of {args.team or args.role}: {notify.mask(args.url) if args.url else 'removed'}")
    return 0


def _deliveries(args: Namespace) -> int:
    if not 1 <= args.limit <= deliveries.KEEP_PER_TARGET:
        raise ValidationError(f"--limit is between 1 and {deliveries.KEEP_PER_TARGET}")
    with db.session() as session:
        found = deliveries.list_deliveries(session, actor=CLI_ACTOR, per_target=args.limit)
    for target in found:
        flags = [flag for flag, on in (("FAILING", target.failing), ("removed", not target.configured)) if on]
        print(f"webhook of {target.name}{''.join(f' [{flag}]' for flag in flags)}")
        for post in target.deliveries:
            outcome = f"{post.status} ({post.detail})" if post.detail else post.status
            print(
                f"  {post.finished_at:%Y-%m-%d %H:%M:%S} UTC  {post.kind}: {post.about}  {outcome}, "
                f"{post.attempts} attempt(s), to {post.url_masked}"
            )
        if not target.deliveries:
            print("  nothing posted yet")
    if not found:
        print("no webhooks set")
    return 0

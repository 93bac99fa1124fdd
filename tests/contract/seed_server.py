"""Prepare a fresh database for the contract suite's server, and print its keys as JSON.

    DATABASE_URL=... python -m tests.contract.seed_server

Run in its own process (before the server starts) so that the test process's settings
and engines stay its own. Teams: Support (no allow-list, guardrails redact, moderation
block: the simulator serves moderations), Marketing (moderation ``local`` where this build
has it, else off: for an upstream without a moderation endpoint), Legal (allowed only
gpt-4o-mini: the 403 case), Data (a hard budget already spent: the 429 case). The catalog
prompts are imported and approved as the demo does.
"""

from __future__ import annotations

import json

from core import db, demo, migrate
from core.budgets import config as budget_config
from core.catalog.demo_seed import seed_catalog
from core.errors import ValidationError
from core.gateway import policies
from core.guardrails.policy import GuardrailPolicy
from core.identity import keys
from core.identity import people as identity
from core.permissions import Actor

SETUP = Actor.system("contract-setup")


def main() -> None:
    migrate.upgrade()
    with db.session() as session:
        demo.seed_directory(session)
        seed_catalog(session)
        team = {name: identity.team_by_name(session, name).id for name in ("Support", "Marketing", "Legal", "Data")}
        moderation = {"Support": "block", "Marketing": _supported("local"), "Legal": "off", "Data": "off"}
        for name, team_id in team.items():
            policies.set_team_policy(
                session=session, actor=SETUP, team_id=team_id, pii_action="redact", moderation=moderation[name]
            )
        budget_config.set_team_policy(
            session=session, actor=SETUP, team_id=team["Legal"], allowed_models=["gpt-4o-mini"]
        )
        # A hard cap of one micro-dollar: every call's worst case is over it.
        budget_config.set_budget(
            session=session,
            actor=SETUP,
            scope="team",
            target_id=team["Data"],
            data=budget_config.BudgetInput(cap_usd="0.000001", hard=True),
        )
        created = {
            name.lower(): keys.create_key(session=session, actor=SETUP, team_id=team_id, label="contract suite").secret
            for name, team_id in team.items()
        }
        session.commit()
    print(json.dumps({"keys": created, "moderation": moderation}))


def _supported(mode: str) -> str:
    """``local`` where this build has it; otherwise ``off`` (the upstream may serve no moderations)."""
    try:
        GuardrailPolicy.from_dict({"pii_action": "redact", "moderation": mode})
    except (TypeError, ValueError, ValidationError):
        return "off"
    return mode


if __name__ == "__main__":
    main()

"""Finance's part of the demo: the simulated provider's bill for the demo's history, with one
day of traffic that bypassed Quorum and one day billed at a price the book does not know,
then the last two weeks reconciled, so the Reconciliation page is true on first start.

The ledger's history was seeded in bulk, without calls (``budgets.demo_seed``), so the
provider is told here what it would have answered: every ledger row that reached it (not
the response-cache hits), on the day and under the project and key the gateway uses. What
the running app calls from now on reaches the same log through the gateway's simulator.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlmodel import Session, col

from core import clock
from core.finance import reconcile
from core.models.budgets import UsageRecord
from core.permissions import Actor
from core.settings import settings
from core.simulator import SIMULATOR_API_KEY
from core.simulator.billing import shared_log

SEED_ACTOR = Actor.system("demo-seed")
RECONCILED_DAYS = 14
BYPASS_DAYS_AGO = 3
DRIFT_DAYS_AGO = 5


def seed_finance(session: Session) -> None:
    config = settings()
    if not config.uses_simulator:
        return  # a real provider's bill is the provider's
    billing = shared_log(config.simulator_billing_log)
    billing.clear()
    # The columns the bill needs, not whole rows: the demo's history is some 18,000 of them.
    rows = (
        session.connection()
        .execute(
            select(
                col(UsageRecord.occurred_at),
                col(UsageRecord.model),
                col(UsageRecord.input_tokens),
                col(UsageRecord.cached_input_tokens),
                col(UsageRecord.output_tokens),
            ).where(col(UsageRecord.cache_hit).is_(False))
        )
        .all()
    )
    billing.add_usages(
        {
            "at": occurred_at,
            "kind": "embeddings" if "embedding" in model else "completions",
            "model": model,
            "input_tokens": input_tokens,
            "cached_tokens": cached_tokens,
            "output_tokens": output_tokens,
            "api_key": SIMULATOR_API_KEY,
        }
        for occurred_at, model, input_tokens, cached_tokens, output_tokens in rows
    )
    today = clock.now().date()
    # A forgotten script in a marketing sandbox project, calling the provider with its own key.
    billing.add_usage(
        at=clock.now() - timedelta(days=BYPASS_DAYS_AGO),
        kind="completions",
        model="gpt-4o",
        input_tokens=1_850_000,
        output_tokens=240_000,
        requests=412,
        project_id="proj_marketing_sandbox",
        key_id="key_9f2c41d07ab35e18",
    )
    # The provider billed gpt-4.1-mini input at $0.60 instead of $0.40 for one day.
    drift_day = today - timedelta(days=DRIFT_DAYS_AGO)
    billing.set_price(model="gpt-4.1-mini", effective_from=drift_day, input="0.60", cached_input="0.10", output="1.60")
    billing.set_price(
        model="gpt-4.1-mini",
        effective_from=drift_day + timedelta(days=1),
        input="0.40",
        cached_input="0.10",
        output="1.60",
    )
    session.commit()
    reconcile.reconcile_days(
        actor=SEED_ACTOR, first=today - timedelta(days=RECONCILED_DAYS), last=today - timedelta(days=1)
    )

"""The features' parts of the demo seed, run in order after the teams and people exist.

Each step takes a session and seeds one feature (prompts, budgets, usage...) through that
feature's own audited services.
"""

from collections.abc import Callable

from sqlmodel import Session

from core.anomalies.demo_seed import seed_anomalies
from core.budgets.demo_seed import seed_budgets
from core.catalog.demo_seed import seed_catalog
from core.experiments.demo_seed import seed_experiments
from core.finance.demo_seed import seed_finance
from core.gateway.demo_seed import seed_gateway
from core.retention.demo_seed import seed_retention

STEPS: list[Callable[[Session], None]] = [
    seed_catalog,
    seed_budgets,
    seed_gateway,
    seed_experiments,
    seed_retention,
    # The incidents are ledger rows the provider billed too: finance's bill is made after them.
    seed_anomalies,
    seed_finance,
]

"""The features' parts of the demo seed, run in order after the teams and people exist.

Each step takes a session and seeds one feature (prompts, budgets, usage...) through that
feature's own audited services.
"""

from collections.abc import Callable

from sqlmodel import Session

STEPS: list[Callable[[Session], None]] = []

from core.budgets.demo_seed import seed_budgets  # noqa: E402

STEPS.append(seed_budgets)

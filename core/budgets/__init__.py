"""Budgets: money, prices, offline token bounds, and the budgets that hold spend to a limit.

Pure arithmetic (``money``, ``pricing``, ``tokens``, ``periods``) beside the stored side
(``config``, ``reservations``, ``counters``, ``usage``, ``alerts``, ``reports``), which owns
the budget, ledger and price tables. Reserve, settle and release are each one conditional
write, so limits hold across processes. May import the ground floor, the models, identity,
audit and guardrails; nothing above (the gateway calls it through ``gateway.ports``).
"""

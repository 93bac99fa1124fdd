"""Finance closes the month: reconciliation of the ledger with the provider's bill
(``reconcile``, reading the provider through ``provider_usage``), month close with a
two-person reopening (``close``), and chargeback statements per team (``statements``).

Above budgets, identity and the simulator; below the demo and the two doors.
"""

"""The governed gateway: every model call takes the one path in `pipeline`.

`call_state` is what one call carries, `settle` its one write transaction, `streaming` a
streamed answer, `held` the requests held for review; `ports` and `adapters` are its seams
to the catalog and the budgets. Owns the call log, stored payloads, cache and held-request
tables. May import every context below it (identity, audit, guardrails, catalog, budgets,
retention, simulator); nothing above, and never core.http, its door.
"""

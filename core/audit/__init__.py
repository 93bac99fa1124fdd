"""The audit trail: every state change in core writes one event, in the change's transaction.

`record` writes and commits events with the change they describe; `chain` hashes each event
onto the one before it; `checkpoints` signs the chain's head so that truncation shows;
`query` and `export` read the log for people; `verify` walks the chain and reports what was
changed, removed, inserted or reordered. Owns the audit tables (core.models.audit).
Imports the ground floor, the models and the guardrails' secret masking; nothing above.
"""

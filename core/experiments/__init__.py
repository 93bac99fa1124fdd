"""Prompt experiments: variants × test cases, assertions, statistics and the result matrix.

The engine (``runner``, ``assertions``, ``stats``, ``results``) is pure: model calls go
through a ``call`` callable (``calls.Call``), in the app the gateway's (``gateway_call``).
The stored side (``service``, ``running``, ``testset_store``, ``live_ab``, ``playground``)
owns the experiment and test-set tables. May import the ground floor, the models and every
context below it (identity, audit, guardrails, catalog, budgets, gateway); nothing above.
"""

"""Retention: classes and rules, legal holds, enforcement runs, payload minimization.

Data-subject requests (access and erasure) live in `privacy`. Owns the retention, legal
hold and privacy-request tables. May import the ground floor, the models, guardrails,
audit, identity and catalog; nothing above (the gateway asks it how to store payloads).
"""

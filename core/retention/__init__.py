"""Retention: classes and rules, legal holds, enforcement runs, payload minimization.

Data-subject requests (access and erasure) live in core.retention.privacy.
"""

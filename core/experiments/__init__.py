"""Prompt experiments: variants × test cases, assertions, statistics and the result matrix.

Pure and database-free; model calls go through a ``call`` callable (``calls.Call``).
"""

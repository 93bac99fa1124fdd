"""Quorum's governance core: the one place that owns the database and the rules.

Nothing in this package imports streamlit; the pages and the command line call into it.
"""

"""HTTP routes served beside the dashboard (the gateway's endpoints live here).

An outer door, like core.cli: it may import every context, and nothing in core imports it.
"""

"""Budgets: money arithmetic, prices and offline token bounds (pure functions, no database)."""

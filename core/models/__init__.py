"""Every table, imported here so `SQLModel.metadata` is complete for migrations."""

from core.models.audit import AuditEvent
from core.models.identity import Membership, Person, RoleGrant, Team
from core.models.budgets import (BudgetAlert, Budget, BudgetHold, BudgetPeriod, PriceOverride,
                                 TeamBudgetPolicy, UsageRecord)

__all__ = ["AuditEvent", "Membership", "Person", "RoleGrant", "Team",
           "Budget", "BudgetAlert", "BudgetHold", "BudgetPeriod", "PriceOverride", "TeamBudgetPolicy",
           "UsageRecord"]

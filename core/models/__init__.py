"""Every table, imported here so `SQLModel.metadata` is complete for migrations."""

from core.models.audit import AuditEvent
from core.models.identity import Membership, Person, RoleGrant, Team

__all__ = ["AuditEvent", "Membership", "Person", "RoleGrant", "Team"]

"""Every table, imported here so `SQLModel.metadata` is complete for migrations."""

from core.models.audit import AuditCheckpoint, AuditEvent, AuditHead
from core.models.identity import Membership, Person, RoleGrant, Team

__all__ = ["AuditCheckpoint", "AuditEvent", "AuditHead", "Membership", "Person", "RoleGrant", "Team"]

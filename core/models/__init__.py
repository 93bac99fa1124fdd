"""Every table, imported here so `SQLModel.metadata` is complete for migrations."""

from core.models.audit import AuditEvent
from core.models.gateway import CacheEntry, GatewayCall, HeldRequest, StoredPayload, TeamGuardrailPolicy
from core.models.identity import Membership, Person, RoleGrant, Team
from core.models.keys import ApiKey

__all__ = ["ApiKey", "AuditEvent", "CacheEntry", "GatewayCall", "HeldRequest", "Membership", "Person",
           "RoleGrant", "StoredPayload", "Team", "TeamGuardrailPolicy"]

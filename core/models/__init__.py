"""Every table, imported here so `SQLModel.metadata` is complete for migrations."""

from core.models.audit import AuditEvent
from core.models.catalog import Prompt, PromptLabel, PromptLabelMove, PromptReview, PromptVersion, ReviewEvidence
from core.models.identity import Membership, Person, RoleGrant, Team

__all__ = ["AuditEvent", "Membership", "Person", "RoleGrant", "Team"]
__all__ += ["Prompt", "PromptLabel", "PromptLabelMove", "PromptReview", "PromptVersion", "ReviewEvidence"]

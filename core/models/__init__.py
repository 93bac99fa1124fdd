"""Every table, imported here so `SQLModel.metadata` is complete for migrations."""

from core.models.anomalies import (
    AlertWebhook,
    AnomalyAlert,
    AnomalyMute,
    AnomalyRun,
    AnomalySensitivity,
    KeyNetwork,
    SchemaCheckRollup,
    WaitingNotice,
    WebhookDelivery,
)
from core.models.audit import AuditCheckpoint, AuditEvent, AuditHead
from core.models.budgets import (
    Budget,
    BudgetAlert,
    BudgetHold,
    BudgetPeriod,
    PriceOverride,
    TeamBudgetPolicy,
    UsageRecord,
)
from core.models.catalog import Prompt, PromptLabel, PromptLabelMove, PromptReview, PromptVersion, ReviewEvidence
from core.models.escalation import EscalationCatch
from core.models.experiments import Experiment, RequestFeedback, TestSet, TestSetCase, TrafficSplit
from core.models.finance import ClosedMonth, FinanceLock, ReconciliationLine, ReconciliationRun, ReopenRequest
from core.models.gateway import (
    CacheEntry,
    GatewayCall,
    HeldRequest,
    RateLimitWindow,
    StoredPayload,
    TeamGuardrailPolicy,
)
from core.models.identity import Membership, Person, RoleGrant, Team
from core.models.keys import ApiKey
from core.models.retention import (
    LegalHold,
    RetentionLock,
    RetentionRule,
    RetentionRun,
    SubjectRequest,
    TeamPayloadPolicy,
)
from core.models.rollups import CallLatencyRollup, CallRollup, UsageRollup

__all__ = [
    "AlertWebhook",
    "AnomalyAlert",
    "AnomalyMute",
    "AnomalyRun",
    "AnomalySensitivity",
    "ApiKey",
    "AuditCheckpoint",
    "AuditEvent",
    "AuditHead",
    "Budget",
    "BudgetAlert",
    "BudgetHold",
    "BudgetPeriod",
    "CacheEntry",
    "EscalationCatch",
    "GatewayCall",
    "HeldRequest",
    "KeyNetwork",
    "Membership",
    "Person",
    "PriceOverride",
    "Prompt",
    "PromptLabel",
    "PromptLabelMove",
    "PromptReview",
    "PromptVersion",
    "RateLimitWindow",
    "ReviewEvidence",
    "RoleGrant",
    "SchemaCheckRollup",
    "StoredPayload",
    "Team",
    "TeamBudgetPolicy",
    "TeamGuardrailPolicy",
    "UsageRecord",
    "UsageRollup",
    "CallRollup",
    "CallLatencyRollup",
    "Experiment",
    "RequestFeedback",
    "TestSet",
    "TestSetCase",
    "TrafficSplit",
    "LegalHold",
    "RetentionLock",
    "RetentionRule",
    "RetentionRun",
    "SubjectRequest",
    "TeamPayloadPolicy",
    "ClosedMonth",
    "FinanceLock",
    "ReconciliationLine",
    "ReconciliationRun",
    "ReopenRequest",
    "WaitingNotice",
    "WebhookDelivery",
]

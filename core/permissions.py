"""Roles, permissions and the one table that links them.

Every state-changing function in core calls `require(...)` itself: a page that hides a
button is a convenience, never the protection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from core.errors import PermissionDenied, ValidationError


class Role(StrEnum):
    ADMIN = "admin"
    GOVERNANCE_LEAD = "governance_lead"
    FINANCE = "finance"
    PROMPT_ENGINEER = "prompt_engineer"
    AUDITOR = "auditor"


ROLE_LABELS = {
    Role.ADMIN: "Admin",
    Role.GOVERNANCE_LEAD: "Governance lead",
    Role.FINANCE: "Finance",
    Role.PROMPT_ENGINEER: "Prompt engineer",
    Role.AUDITOR: "Auditor",
}


class Permission(StrEnum):
    DIRECTORY_READ = "directory.read"
    TEAM_MANAGE = "team.manage"
    PERSON_MANAGE = "person.manage"
    ROLE_GRANT = "role.grant"
    CATALOG_READ = "catalog.read"
    PROMPT_WRITE = "prompt.write"
    PROMPT_REVIEW = "prompt.review"
    LABEL_MOVE = "label.move"
    PLAYGROUND_RUN = "playground.run"
    SPEND_READ = "spend.read"
    BUDGET_MANAGE = "budget.manage"
    PRICE_MANAGE = "price.manage"
    MODEL_MANAGE = "model.manage"  # a team's model allow-list
    KEY_MANAGE = "key.manage"
    REQUEST_REVIEW = "request.review"
    OBSERVABILITY_READ = "observability.read"
    AUDIT_READ = "audit.read"
    AUDIT_VERIFY = "audit.verify"
    RETENTION_READ = "retention.read"
    RETENTION_MANAGE = "retention.manage"
    RECONCILE = "finance.reconcile"  # compare the ledger with the provider's bill
    MONTH_CLOSE = "finance.close"  # close a month, ask for it to be reopened
    MONTH_REOPEN_APPROVE = "finance.reopen.approve"  # the second person of a reopening
    ALERT_READ = "alert.read"  # anomaly alerts
    ALERT_MANAGE = "alert.manage"  # acknowledge, resolve, mute
    ALERT_CONFIGURE = "alert.configure"  # sensitivity and webhooks


_P = Permission
# The one place that says who may do what.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(
        {
            _P.DIRECTORY_READ,
            _P.TEAM_MANAGE,
            _P.PERSON_MANAGE,
            _P.ROLE_GRANT,
            _P.CATALOG_READ,
            _P.SPEND_READ,
            _P.BUDGET_MANAGE,
            _P.PRICE_MANAGE,
            _P.MODEL_MANAGE,
            _P.KEY_MANAGE,
            _P.OBSERVABILITY_READ,
            _P.AUDIT_READ,
            _P.RECONCILE,
            _P.MONTH_REOPEN_APPROVE,
            _P.ALERT_READ,
            _P.ALERT_MANAGE,
            _P.ALERT_CONFIGURE,
        }
    ),
    Role.GOVERNANCE_LEAD: frozenset(
        {
            _P.DIRECTORY_READ,
            _P.CATALOG_READ,
            _P.PROMPT_REVIEW,
            _P.LABEL_MOVE,
            _P.REQUEST_REVIEW,
            _P.OBSERVABILITY_READ,
            _P.AUDIT_READ,
            _P.AUDIT_VERIFY,
            _P.RETENTION_READ,
            _P.RETENTION_MANAGE,
            _P.ALERT_READ,
            _P.ALERT_MANAGE,
        }
    ),
    Role.FINANCE: frozenset(
        {
            _P.CATALOG_READ,
            _P.SPEND_READ,
            _P.BUDGET_MANAGE,
            _P.RECONCILE,
            _P.MONTH_CLOSE,
            _P.ALERT_READ,
            _P.ALERT_MANAGE,
        }
    ),
    Role.PROMPT_ENGINEER: frozenset(
        {
            _P.CATALOG_READ,
            _P.PROMPT_WRITE,
            _P.PLAYGROUND_RUN,
            _P.OBSERVABILITY_READ,
        }
    ),
    Role.AUDITOR: frozenset(
        {
            _P.DIRECTORY_READ,
            _P.CATALOG_READ,
            _P.SPEND_READ,
            _P.OBSERVABILITY_READ,
            _P.AUDIT_READ,
            _P.AUDIT_VERIFY,
            _P.RETENTION_READ,
            _P.ALERT_READ,
        }
    ),
}


def parse_role(value: str) -> Role:
    """A role from its name, or a clear error listing the valid ones."""
    try:
        return Role(value.strip().lower())
    except ValueError:
        valid = ", ".join(r.value for r in Role)
        raise ValidationError(f"Unknown role {value!r}; valid roles are: {valid}") from None


@dataclass(frozen=True)
class Actor:
    """Who is acting: a signed-in person, a team key, or the system itself.

    `ref` is the stable, pseudonymous id written into audit events.
    """

    ref: str
    display_name: str
    roles: frozenset[Role] = frozenset()
    team_ids: frozenset[int] = frozenset()
    person_id: int | None = None
    email: str | None = field(default=None, repr=False)
    is_system: bool = False

    @classmethod
    def system(cls, name: str) -> Actor:
        """The operator at the server's shell (CLI, seed, scheduled jobs): all permissions."""
        return cls(ref=f"system:{name}", display_name=f"system ({name})", is_system=True)

    @property
    def permissions(self) -> frozenset[Permission]:
        if self.is_system:
            return frozenset(Permission)
        granted: set[Permission] = set()
        for role in self.roles:
            granted |= ROLE_PERMISSIONS[role]
        return frozenset(granted)

    def can(self, permission: Permission, *, team_id: int | None = None) -> bool:
        """Whether the actor holds `permission` (for `team_id`, when team-scoped)."""
        if permission not in self.permissions:
            return False
        if team_id is not None and permission in TEAM_SCOPED and not self.is_system:
            return team_id in self.team_ids
        return True


# Permissions that hold only for the teams the person belongs to.
TEAM_SCOPED: frozenset[Permission] = frozenset({Permission.PROMPT_WRITE, Permission.PLAYGROUND_RUN})


def require(actor: Actor, permission: Permission, *, team_id: int | None = None) -> None:
    """Raise `PermissionDenied` with a message naming what is missing."""
    if actor.can(permission, team_id=team_id):
        return
    if permission in actor.permissions:
        raise PermissionDenied(f"{actor.display_name} may not '{permission.value}' for a team they do not belong to")
    holders = sorted(r.value for r, perms in ROLE_PERMISSIONS.items() if permission in perms)
    raise PermissionDenied(
        f"{actor.display_name} may not '{permission.value}': it needs one of the roles {', '.join(holders)}"
    )

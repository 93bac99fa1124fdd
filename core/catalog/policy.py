"""The review policy: how many distinct approvals a version needs, per risk tier.

Read from ``data/review_policy.yaml`` on each decision (a small file; an edit applies at
once without a restart) and validated on load. A missing file or a missing tier means
the defaults below; anything else that is not a positive whole number is refused with
the file and the key named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from core.catalog.spec import RISK_TIERS
from core.catalog.yaml_io import CatalogValidationError, parse_yaml, read_limited
from core.errors import ValidationError
from core.settings import DATA_DIR

POLICY_FILE = DATA_DIR / "review_policy.yaml"
DEFAULT_APPROVALS = {"low": 1, "medium": 1, "high": 2}
_MAX_APPROVALS = 10


@dataclass(frozen=True)
class ReviewPolicy:
    approvals_required: Mapping[str, int]

    def required_for(self, risk_tier: str) -> int:
        return self.approvals_required[risk_tier]


def load_review_policy(path: str | Path | None = None) -> ReviewPolicy:
    path = Path(path) if path is not None else POLICY_FILE
    if not path.exists():
        return ReviewPolicy(dict(DEFAULT_APPROVALS))
    try:
        document = parse_yaml(read_limited(path), str(path)) or {}
    except CatalogValidationError as exc:
        raise ValidationError(f"cannot read the review policy: {exc}") from None
    return parse_review_policy(document, str(path))


def parse_review_policy(document: object, source: str = "review policy") -> ReviewPolicy:
    if not isinstance(document, dict) or set(document) - {"approvals_required"}:
        raise ValidationError(f"{source}: expected one key, 'approvals_required', mapping risk tiers to counts")
    given = document.get("approvals_required") or {}
    if not isinstance(given, dict):
        raise ValidationError(f"{source}: approvals_required must map risk tiers to counts")
    unknown = sorted(str(k) for k in given if k not in RISK_TIERS)
    if unknown:
        raise ValidationError(
            f"{source}: approvals_required: unknown risk tier {', '.join(unknown)} (valid: {', '.join(RISK_TIERS)})"
        )
    counts = dict(DEFAULT_APPROVALS)
    for tier, value in given.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_APPROVALS:
            raise ValidationError(
                f"{source}: approvals_required.{tier} must be a whole number from 1 to {_MAX_APPROVALS}, got {value!r}"
            )
        counts[tier] = value
    return ReviewPolicy(counts)

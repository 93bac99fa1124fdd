"""Retention classes from data/retention.yaml: period, action at expiry, compliance basis.

The file is validated as a whole and every problem is named with its place
("classes.usage_rows.period: ..."), so a typo never silently keeps or deletes data.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import yaml

from core.errors import ValidationError
from core.settings import DATA_DIR

RETENTION_FILE = DATA_DIR / "retention.yaml"
ACTIONS = ("delete", "anonymize")
BASES = ("GDPR", "CCPA", "internal audit")
PAYLOAD_MODES = ("full", "redacted", "none")
AUDIT_CLASS = "audit_events"
_PERIOD = re.compile(r"^(?:(\d+)y)?(?:(\d+)m)?(?:(\d+)d)?$")


@dataclass(frozen=True, order=True)
class Period:
    """A calendar period: years and months move the date (clamped to the month's end), days add."""

    months: int
    days: int

    @classmethod
    def parse(cls, value: object, *, where: str = "period") -> Period:
        text = str(value).strip().lower().replace(" ", "")
        match = _PERIOD.match(text)
        if not text or not match or not any(match.groups()):
            raise ValidationError(f"{where}: {value!r} is not a period; write e.g. '2y', '18m', '90d' or '1y6m'")
        years, months, days = (int(g or 0) for g in match.groups())
        period = cls(months=years * 12 + months, days=days)
        if period.months == 0 and period.days == 0:
            raise ValidationError(f"{where}: a retention period must be longer than zero")
        return period

    def __str__(self) -> str:
        years, months = divmod(self.months, 12)
        return "".join(f"{n}{u}" for n, u in ((years, "y"), (months, "m"), (self.days, "d")) if n) or "0d"

    def approx_days(self) -> float:
        return self.months * 30.44 + self.days

    def cutoff(self, now: datetime) -> datetime:
        """Records created before this instant are past their period at `now`."""
        from datetime import timedelta

        month_index = now.year * 12 + (now.month - 1) - self.months
        year, month = divmod(month_index, 12)
        day = min(now.day, calendar.monthrange(year, month + 1)[1])
        return now.replace(year=year, month=month + 1, day=day) - timedelta(days=self.days)

    def longer_than(self, other: Period) -> bool:
        return self.approx_days() > other.approx_days()


@dataclass(frozen=True)
class RetentionClass:
    key: str
    label: str
    period: Period
    action: str
    basis: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True)
class RetentionConfig:
    classes: dict[str, RetentionClass]
    audit_log_minimum: Period
    default_payload_storage: str

    def get(self, key: str) -> RetentionClass:
        try:
            return self.classes[key]
        except KeyError:
            raise ValidationError(f"Unknown retention class {key!r}; known: {', '.join(self.classes)}") from None


def parse_config(data: object, *, source: str = "retention.yaml") -> RetentionConfig:
    problems: list[str] = []
    if not isinstance(data, dict):
        raise ValidationError(f"{source}: expected a mapping with 'classes'")
    unknown = set(data) - {"classes", "audit_log_minimum", "default_payload_storage"}
    if unknown:
        problems.append(f"unknown key(s) {', '.join(sorted(unknown))}")
    minimum = _period(data.get("audit_log_minimum", "7y"), "audit_log_minimum", problems)
    payload = data.get("default_payload_storage", "full")
    if payload not in PAYLOAD_MODES:
        problems.append(f"default_payload_storage: {payload!r} is not one of {', '.join(PAYLOAD_MODES)}")
    classes: dict[str, RetentionClass] = {}
    raw = data.get("classes")
    if not isinstance(raw, dict) or not raw:
        problems.append("classes: expected a mapping of class names to their rules")
        raw = {}
    for key, spec in raw.items():
        where = f"classes.{key}"
        if not isinstance(spec, dict):
            problems.append(f"{where}: expected a mapping with period, action and basis")
            continue
        extra = set(spec) - {"label", "period", "action", "basis", "note"}
        if extra:
            problems.append(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
        period = _period(spec.get("period"), f"{where}.period", problems)
        action = spec.get("action")
        if action not in ACTIONS:
            problems.append(f"{where}.action: {action!r} is not one of {', '.join(ACTIONS)}")
        basis = spec.get("basis")
        if isinstance(basis, str):
            basis = [basis]
        if not isinstance(basis, list) or not basis or any(b not in BASES for b in basis):
            problems.append(f"{where}.basis: expected a list drawn from {', '.join(BASES)}")
            basis = []
        if period is not None and action in ACTIONS:
            classes[str(key)] = RetentionClass(
                str(key), str(spec.get("label") or key), period, action, tuple(basis), str(spec.get("note") or "")
            )
    audit = classes.get(AUDIT_CLASS)
    if audit is None and not problems:
        problems.append(f"classes.{AUDIT_CLASS}: the audit log needs a retention class")
    elif audit is not None and minimum is not None:
        if minimum.longer_than(audit.period):
            problems.append(f"classes.{AUDIT_CLASS}.period: {audit.period} is shorter than audit_log_minimum {minimum}")
        if audit.action != "delete":
            problems.append(
                f"classes.{AUDIT_CLASS}.action: audit events can only be deleted (pruned behind a "
                "signed checkpoint); anonymizing would break the chain"
            )
    if problems or minimum is None:  # a period that does not parse has named its problem
        raise ValidationError(f"{source}: " + "; ".join(problems))
    return RetentionConfig(classes, minimum, payload)


def _period(value: object, where: str, problems: list[str]) -> Period | None:
    if value is None:
        problems.append(f"{where}: missing")
        return None
    try:
        return Period.parse(value, where=where)
    except ValidationError as error:
        problems.append(str(error))
        return None


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> RetentionConfig:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValidationError(f"{Path(path).name}: not valid YAML ({error})") from None
    return parse_config(data, source=Path(path).name)


def load_config(path: Path | None = None) -> RetentionConfig:
    path = Path(path or RETENTION_FILE)
    if not path.exists():
        raise ValidationError(f"Retention classes file {path} is missing")
    return _load(str(path), path.stat().st_mtime)

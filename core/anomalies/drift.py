"""Answer drift per prompt: output tokens per call, and cost per call, shifting after a
version or model change, with the change named.

A "change" is a (version, model) pair of a prompt first seen in the last `RECENT` that
has calls beside older pairs of the same prompt in the window. Its answers are compared
with the older pairs' (weighted by calls) once it has the minimum number of answered calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlmodel import Session

from core.anomalies.detectors import DETECTORS, WEEK, Finding, Sensitivity
from core.anomalies.wording import amount, hour_to
from core.db import table_of
from core.models.catalog import Prompt
from core.models.rollups import CallRollup

CALLS = table_of(CallRollup).c
PROMPT = table_of(Prompt).c

RECENT = timedelta(hours=24)
SHIFT = 0.5  # a 50 % change per call, up or down, times the sensitivity factor


def answer_drift(session: Session, targets: Sequence[datetime], sensitivity: Sensitivity) -> list[Finding]:
    if not targets:
        return []
    last = max(targets)
    window_start = min(targets) - WEEK
    c = CALLS
    rows = session.execute(
        select(
            c.prompt_name,
            c.prompt_version,
            c.model,
            func.max(c.team_id),
            func.min(c.hour),
            func.sum(c.ok),
            func.sum(c.output_tokens),
            func.sum(c.cost_micro),
        )
        .where(c.hour >= window_start, c.hour <= last, c.prompt_name != "")
        .group_by(c.prompt_name, c.prompt_version, c.model)
    ).all()
    frame = pd.DataFrame(rows, columns=["prompt", "version", "model", "team_id", "first", "ok", "output", "cost"])
    if frame.empty:
        return []
    teams: dict[str, int] = {name: team for name, team in session.execute(select(PROMPT.name, PROMPT.team_id))}
    findings = []
    for prompt, pairs in frame.groupby("prompt"):
        fresh = pairs[(pairs["first"] >= last - RECENT) & (pairs["first"] > window_start + timedelta(days=1))]
        for row in fresh.itertuples():
            older = pairs[pairs["first"] < row.first]
            if older.empty or older["ok"].sum() == 0 or row.ok == 0:
                continue
            team = int(teams.get(str(prompt), row.team_id))
            findings.extend(_compare(str(prompt), row, older, team, last, sensitivity))
    return findings


def _compare(
    prompt: str, new: Any, older: pd.DataFrame, team: int, hour: datetime, sensitivity: Sensitivity
) -> list[Finding]:
    before = older.loc[older["ok"].idxmax()]
    change = change_words(before, new)
    old_ok = float(older["ok"].sum())
    results = []
    for detector, column, unit, what in (
        ("answer_drift", "output", "tokens", "output tokens per answer"),
        ("cost_drift", "cost", "usd", "cost per answer"),
    ):
        factor = sensitivity.factor(detector, team)
        if new.ok < DETECTORS[detector].minimum * factor:
            continue
        was = float(older[column].sum()) / old_ok
        now = float(getattr(new, column)) / float(new.ok)
        if was <= 0:
            continue
        ratio = now / was
        if 1 / (1 + SHIFT * factor) < ratio < 1 + SHIFT * factor:
            continue
        direction = "rose" if ratio > 1 else "fell"
        sentence = (
            f"Prompt `{prompt}`: {what} {direction} from {_per_call(was, unit)} to {_per_call(now, unit)} "
            f"({ratio:.1f}×) after {change}, over {int(new.ok):,} answers up to {hour_to(hour)}."
        )
        series = f"prompt:{prompt}:{new.version}:{new.model}"
        results.append(Finding(detector, series, team, hour, now, was, was, sentence))
    return results


def _per_call(value: float, unit: str) -> str:
    if unit == "usd":
        return f"${value / 1_000_000:.4f}"
    return amount(value, unit)


def change_words(before: pd.Series, new: Any) -> str:
    """ "the change of version 3 → 4 and model `a` → `b`": what differs between two pairs."""
    parts = []
    if before["version"] != new.version:
        parts.append(f"version {before['version'] or '(none)'} → {new.version or '(none)'}")
    if before["model"] != new.model:
        parts.append(f"model `{before['model']}` → `{new.model}`")
    return "the change of " + " and ".join(parts) if parts else "a change"

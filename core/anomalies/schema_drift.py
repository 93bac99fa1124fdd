"""Drift of the JSON-schema failure rate per prompt after a version, label or model change,
with the change named.

Read from `schema_check_rollup` (core.gateway.schema_checks). As in `drift.py`, a "change"
is a (version, model) pair of a prompt first checked in the last `RECENT`, compared with
the older pairs of the same prompt over the week before once it has the minimum number of
checked answers. Only a rise fires: answers meeting their schema more often need no one.
A label moved to another version shows here as that version's pair starting.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import func, select
from sqlmodel import Session

from core.anomalies.detectors import DETECTORS, WEEK, Finding, Sensitivity
from core.anomalies.drift import RECENT, change_words
from core.anomalies.wording import amount, hour_to
from core.db import table_of
from core.models.anomalies import SchemaCheckRollup
from core.models.catalog import Prompt

CHECKS = table_of(SchemaCheckRollup).c
PROMPT = table_of(Prompt).c
# Fires when the failure rate rose by this many points (of 1) times the sensitivity factor,
# and to at least twice what it was: 1 % -> 3 % is not news, 2 % -> 15 % is.
RISE = 0.10
TIMES = 2.0


def schema_drift(session: Session, targets: Sequence[datetime], sensitivity: Sensitivity) -> list[Finding]:
    if not targets:
        return []
    last = max(targets)
    window_start = min(targets) - WEEK
    c = CHECKS
    rows = session.execute(
        select(
            c.prompt_name,
            c.prompt_version,
            c.model,
            func.max(c.team_id),
            func.min(c.hour),
            func.sum(c.checked),
            func.sum(c.failed),
        )
        .where(c.hour >= window_start, c.hour <= last)
        .group_by(c.prompt_name, c.prompt_version, c.model)
    ).all()
    frame = pd.DataFrame(rows, columns=["prompt", "version", "model", "team_id", "first", "ok", "failed"])
    if frame.empty:
        return []
    # A pair first seen in the window's first day may simply be older than the window.
    frame["fresh"] = (frame["first"] >= last - RECENT) & (frame["first"] > window_start + timedelta(days=1))
    if not frame["fresh"].any():
        return []  # the usual hour: no change anywhere, and no loop over every prompt
    changed = frame[frame["prompt"].isin(set(frame.loc[frame["fresh"], "prompt"]))]
    teams: dict[str, int] = {name: team for name, team in session.execute(select(PROMPT.name, PROMPT.team_id))}
    spec = DETECTORS["schema_drift"]
    findings = []
    for prompt, pairs in changed.groupby("prompt"):
        for row in pairs[pairs["fresh"]].itertuples():
            older = pairs[pairs["first"] < row.first]
            team = int(teams.get(str(prompt), row.team_id))
            factor = sensitivity.factor("schema_drift", team)
            if older.empty or older["ok"].sum() < spec.minimum or row.ok < spec.minimum * factor:
                continue
            was = float(older["failed"].sum()) / float(older["ok"].sum())
            now = float(row.failed) / float(row.ok)
            if now - was < RISE * factor or now < was * TIMES:
                continue
            change = change_words(older.loc[older["ok"].idxmax()], row)
            sentence = (
                f"Prompt `{prompt}`: {amount(now, 'rate')} of answers failed its JSON schema after {change}, "
                f"against {amount(was, 'rate')} before, over {int(row.ok):,} checked answers up to {hour_to(last)}."
            )
            series = f"prompt:{prompt}:{row.version}:{row.model}"
            findings.append(Finding("schema_drift", series, team, last, now, was, was, sentence))
    return findings

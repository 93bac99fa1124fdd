"""Answer drift per prompt in what its users say: the mean feedback score (0 to 1) of a
prompt's new (version, model) pair against the older pairs' over the week before.

Feedback is sparse beside calls (one rating in many), so it is read straight from
`request_feedback` joined to the calls it rates, not from a roll-up. As in `drift.py`, a
"change" is a pair whose first rated call is in the last `RECENT`, compared once it has the
minimum number of ratings, and its alert names the change.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd
from sqlalchemy import func, select
from sqlmodel import Session

from core.anomalies.detectors import DETECTORS, HOUR, WEEK, Finding, Sensitivity
from core.anomalies.drift import RECENT, change_words
from core.anomalies.wording import hour_to
from core.db import table_of
from core.models.catalog import Prompt
from core.models.experiments import RequestFeedback
from core.models.gateway import GatewayCall

FEEDBACK = table_of(RequestFeedback).c
CALL = table_of(GatewayCall).c
PROMPT = table_of(Prompt).c
SHIFT = 0.15  # points of mean score (0 to 1), times the sensitivity factor


def feedback_drift(session: Session, targets: Sequence[datetime], sensitivity: Sensitivity) -> list[Finding]:
    if not targets:
        return []
    last = max(targets)
    window_start = min(targets) - WEEK
    rows = session.execute(
        select(
            CALL.prompt_name,
            CALL.prompt_version,
            CALL.model,
            func.max(CALL.team_id),
            func.min(CALL.created_at),
            func.count(),
            func.sum(FEEDBACK.score),
        )
        .join(table_of(GatewayCall), CALL.request_id == FEEDBACK.request_id)
        .where(CALL.created_at >= window_start, CALL.created_at < last + HOUR)
        .where(CALL.prompt_name.is_not(None), CALL.prompt_name != "")
        .group_by(CALL.prompt_name, CALL.prompt_version, CALL.model)
    ).all()
    frame = pd.DataFrame(rows, columns=["prompt", "version", "model", "team_id", "first", "ok", "score"])
    if frame.empty:
        return []
    frame["version"] = frame["version"].fillna("")
    frame["first"] = pd.to_datetime(frame["first"], utc=True)
    teams = {name: team for name, team in session.execute(select(PROMPT.name, PROMPT.team_id))}
    spec = DETECTORS["feedback_drift"]
    findings = []
    for prompt, pairs in frame.groupby("prompt"):
        fresh = pairs[pairs["first"] >= pd.Timestamp(last - RECENT)]
        for row in fresh.itertuples():
            older = pairs[pairs["first"] < row.first]
            team = int(teams.get(str(prompt), row.team_id or 0))
            factor = sensitivity.factor("feedback_drift", team)
            if older["ok"].sum() < spec.minimum or row.ok < spec.minimum * factor:
                continue
            was = float(older["score"].sum()) / float(older["ok"].sum())
            now = float(row.score) / float(row.ok)
            if abs(now - was) < SHIFT * factor:
                continue
            change = change_words(older.loc[older["ok"].idxmax()], row)
            sentence = (
                f"Prompt `{prompt}`: the mean feedback score {'rose' if now > was else 'fell'} from {was:.2f} "
                f"to {now:.2f} after {change}, over {int(row.ok):,} rated answers up to {hour_to(last)}."
            )
            series = f"prompt:{prompt}:{row.version}:{row.model}"
            findings.append(Finding("feedback_drift", series, team, last, now, was, was, sentence))
    return findings

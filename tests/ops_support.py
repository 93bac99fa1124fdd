"""Helpers of the tests of running Quorum as a service: reading /metrics, and the call log it must equal."""

from __future__ import annotations

from collections import Counter

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from core.models.gateway import GatewayCall
from core.models.identity import Team


def scrape(base_url: str, **headers: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """/metrics as {sample name: {sorted labels: value}}."""
    response = httpx.get(f"{base_url}/metrics", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def by(samples: dict[tuple[tuple[str, str], ...], float], *names: str) -> Counter:
    """Sum the samples over every label but `names`."""
    summed: Counter = Counter()
    for labels, value in samples.items():
        found = dict(labels)
        summed[tuple(found.get(n, "") for n in names)] += value
    return +summed


def call_log(session, *columns) -> Counter:
    """The call log grouped by team name and `columns`: {(team, *values): (calls, input, output, cost)}."""
    session.rollback()
    rows = session.execute(
        select(
            Team.name,
            *columns,
            func.count(),
            func.sum(GatewayCall.input_tokens),
            func.sum(GatewayCall.output_tokens),
            func.sum(GatewayCall.cost_micro),
        )
        .join(Team, Team.id == GatewayCall.team_id)
        .group_by(Team.name, *columns)
    ).all()
    return {tuple(row[: 1 + len(columns)]): tuple(int(v or 0) for v in row[1 + len(columns) :]) for row in rows}

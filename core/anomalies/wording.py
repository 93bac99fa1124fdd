"""Alerts in words: names instead of ids, amounts in their units, hours as people say them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlmodel import Session

from core.budgets.money import format_cents
from core.db import table_of
from core.models.catalog import Prompt
from core.models.identity import Team
from core.models.keys import ApiKey

TEAM = table_of(Team).c
KEY = table_of(ApiKey).c
PROMPT = table_of(Prompt).c
DAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


@dataclass
class Names:
    """Teams, keys and prompts by id, read once per detection run (small tables)."""

    teams: dict[int, str] = field(default_factory=dict)
    keys: dict[int, tuple[str, int]] = field(default_factory=dict)  # id -> (label, team)
    prompts: dict[int, tuple[str, int]] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session) -> Names:
        teams = {row.id: row.name for row in session.execute(select(TEAM.id, TEAM.name))}
        keys = {
            row.id: (row.label or row.prefix, row.team_id)
            for row in session.execute(select(KEY.id, KEY.label, KEY.prefix, KEY.team_id))
        }
        prompts = {
            row.id: (row.name, row.team_id) for row in session.execute(select(PROMPT.id, PROMPT.name, PROMPT.team_id))
        }
        return cls(teams, keys, prompts)

    def team(self, team_id: int) -> str:
        return self.teams.get(team_id, f"team {team_id}")

    def key(self, key_id: int) -> str:
        label, team_id = self.keys.get(key_id, (f"#{key_id}", 0))
        return f"Key `{label}` ({self.team(team_id)})"

    def prompt(self, prompt_id: int) -> str:
        name, team_id = self.prompts.get(prompt_id, (f"#{prompt_id}", 0))
        return f"Prompt `{name}` ({self.team(team_id)})"

    def series(self, kind: str, ref: int) -> str:
        """'key', 'team' or 'prompt' and its id, in words."""
        if kind == "key":
            return self.key(ref)
        if kind == "prompt":
            return self.prompt(ref)
        return f"Team {self.team(ref)}"


def hour_to(hour: datetime) -> str:
    """The hour that starts at `hour`, named by its end: "the hour to 03:00 UTC on Tue 24 Nov"."""
    end = hour + timedelta(hours=1)
    return f"the hour to {end:%H:%M} UTC on {end:%a %d %b}"


def same_hour_of_week(hour: datetime) -> str:
    end = hour + timedelta(hours=1)
    return f"a {DAY_NAMES[end.weekday()]} {end:%H:%M}"


def amount(value: float, unit: str) -> str:
    """A detector's amount in its unit: dollars (from micro-dollars), tokens, calls or a rate."""
    if unit == "usd":
        return format_cents(round(value))
    if unit == "rate":
        return f"{value * 100:.1f}%"
    if unit == "tokens":
        return f"{round(value):,} tokens"
    if unit == "score":
        return f"{value:.2f}"
    return f"{round(value):,} calls"


def band(low: float, high: float, unit: str) -> str:
    if unit == "tokens":
        return f"{round(low):,}–{round(high):,} tokens"
    if unit == "calls":
        return f"{round(low):,}–{round(high):,} calls"
    return f"{amount(low, unit)}–{amount(high, unit)}"

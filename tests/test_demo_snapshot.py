"""The page tests' copy of the demo (tests/demo_snapshot.py) is the seeded demo: every row of
every table, a chain that verifies, the provider's bill, and a clock at the seed's time."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from sqlmodel import SQLModel

from core import clock, demo
from core.settings import settings
from core.simulator.billing import BillingLog
from tests import demo_snapshot
from tests.audit_helpers import problems


def test_a_copied_demo_has_every_seeded_row_a_verified_chain_and_the_bill(demo_data):
    session = demo_data
    [snapshot] = [s for s in demo_snapshot._snapshots.values()]
    assert sum(len(rows) for rows in snapshot.rows.values()) > 30_000  # the whole demo, not a part
    demo.wipe(session)  # and copied back into the emptied database, whichever way it was filled
    assert sum(len(demo_snapshot._take(session).rows[t.name]) for t in SQLModel.metadata.sorted_tables) == 0
    demo_snapshot._restore(session, snapshot)
    copied = demo_snapshot._take(session)
    for table in SQLModel.metadata.sorted_tables:
        assert copied.rows[table.name] == snapshot.rows[table.name], table.name
    assert problems(session) == []
    assert copied.files["billing"] == snapshot.files["billing"]
    bill = BillingLog(settings().simulator_billing_log)  # the copied file, as the simulator reads it
    today = clock.now().date()
    assert list(bill.usage("completions", today - timedelta(days=30), today))


def test_a_copied_demo_runs_on_the_clock_of_its_seed(demo_data, monkeypatch):
    """A copy made three hours after its seed sees the time of the seed, ticking on from there."""
    session = demo_data
    [(environment, snapshot)] = demo_snapshot._snapshots.items()
    long_ago = snapshot.seeded_at - timedelta(hours=3)
    monkeypatch.setitem(demo_snapshot._snapshots, environment, dataclasses.replace(snapshot, seeded_at=long_ago))
    demo.wipe(session)
    demo_snapshot.seeded_demo(session)
    assert timedelta(0) <= clock.now() - long_ago < timedelta(seconds=30)
    assert datetime.now(UTC) - clock.now() > timedelta(hours=2, minutes=59)

"""Roll-ups: always what the ledger and the call log say, after concurrent settles, a crash in
the middle of one, a rebuild and a retention run; and the pages that read them show the
ledger's figures to the micro-dollar."""

from __future__ import annotations

import threading
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import column, delete, insert, select, table, update

from core import clock, db, formatting
from core.budgets import config as budget_config
from core.budgets import ledger_pages, pending_rollups, periods, reports, rollups
from core.budgets.latency_histogram import unpack
from core.budgets.money import format_micro
from core.cli.main import main as cli
from core.errors import BudgetExceeded
from core.gateway import policies, writeback
from core.gateway.adapters import BudgetsGate
from core.gateway.pipeline import Caller, GatewayRequest, PromptCall
from core.identity import key_auth, keys
from core.identity.people import team_by_name
from core.models.budgets import UsageRecord
from core.models.gateway import GatewayCall
from core.models.rollups import (
    CallDailyRollup,
    CallHourlyRollup,
    CallLatencyRollup,
    CallRollup,
    CallSixHourRollup,
    CallVersionDailyRollup,
    RollupPending,
    UsageRollup,
)
from core.models.types import UtcDateTime
from core.permissions import Actor, Role
from tests.gateway_support import RecordingTransport, make_gateway
from tests.test_pages import EMAIL_BY_ROLE, errors_of, signed_in

ADMIN = Actor.system("test")
LEDGER, CALLS = UsageRecord.__table__, GatewayCall.__table__
USAGE, CALL, LATENCY = UsageRollup.__table__, CallRollup.__table__, CallLatencyRollup.__table__
DAILY, HOURLY, SIX_HOURLY = CallDailyRollup.__table__, CallHourlyRollup.__table__, CallSixHourRollup.__table__
VERSIONS = CallVersionDailyRollup.__table__
PENDING = RollupPending.__table__


# ---- what the sources say, computed independently of core/budgets/rollups.py ---------------


def _hour(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def source_rows(table, folded_only: bool):
    """A source's rows: all of them, or only those whose call is in the roll-ups already (the
    others wait in rollup_pending for a fold)."""
    query = select(table)
    if folded_only:
        query = query.where(~table.c.request_id.in_(select(PENDING.c.request_id)) | table.c.request_id.is_(None))
    return query


def ledger_says(session, folded_only: bool = False) -> dict:
    session.rollback()
    result: dict = {}
    for r in session.execute(source_rows(LEDGER, folded_only)).mappings():
        key = (_hour(r["occurred_at"]), r["team_id"], r["person_id"] or 0, r["key_id"] or 0, r["prompt_id"] or 0)
        key += (r["model"],)
        sums = result.setdefault(key, [0] * 7)
        for i, value in enumerate(
            (
                1,
                r["input_tokens"],
                r["cached_input_tokens"],
                r["output_tokens"],
                r["reasoning_tokens"],
                r["cost_micro"],
                int(r["cache_hit"]),
            )
        ):
            sums[i] += value
    return result


def usage_rollups_say(session) -> dict:
    session.rollback()
    return {
        (r.hour, r.team_id, r.person_id, r.key_id, r.prompt_id, r.model): [
            r.calls,
            r.input_tokens,
            r.cached_input_tokens,
            r.output_tokens,
            r.reasoning_tokens,
            r.cost_micro,
            r.cache_hits,
        ]
        for r in session.execute(select(USAGE))
    }


def call_log_says(session, folded_only: bool = False) -> dict:
    session.rollback()
    result: dict = {}
    for r in session.execute(source_rows(CALLS, folded_only)).mappings():
        key = (_hour(r["created_at"]), r["team_id"] or 0, r["key_id"] or 0, r["actor"], r["prompt_name"] or "")
        key += (r["prompt_version"] or "", r["model"])
        sums = result.setdefault(key, [0] * 9)
        ok = r["status"] == "ok"
        for i, value in enumerate(
            (
                1,
                ok,
                r["http_status"] >= 500,
                r["http_status"] == 429,
                r["status"] == "blocked",
                r["status"] == "held",
                bool(r["cache_hit"]),
                r["cost_micro"],
                ok,  # answered calls, which the latency histogram counts
            )
        ):
            sums[i] += int(value)
    return result


def call_rollups_say(session) -> dict:
    session.rollback()
    histogram: dict = {}
    for r in session.execute(select(LATENCY)):
        key = (r.hour, r.team_id, r.prompt_name, r.prompt_version, r.model)
        histogram[key] = histogram.get(key, 0) + r.calls
    result = {
        (r.hour, r.team_id, r.key_id, r.actor, r.prompt_name, r.prompt_version, r.model): [
            r.calls,
            r.ok,
            r.errors,
            r.rejected_429,
            r.blocked,
            r.held,
            r.cache_hits,
            r.cost_micro,
        ]
        for r in session.execute(select(CALL))
    }
    # The histogram has no key or actor: compare its answered calls per (hour, team, prompt, model).
    answered: dict = {}
    for key, sums in result.items():
        short = (key[0], key[1], key[4], key[5], key[6])
        answered[short] = answered.get(short, 0) + sums[1]
    for key, sums in result.items():
        sums.append(histogram.get((key[0], key[1], key[4], key[5], key[6]), 0) if sums[1] else 0)
    assert {k: v for k, v in histogram.items() if v} == {k: v for k, v in answered.items() if v}
    return result


def per_day(hourly: dict) -> dict:
    """Hourly call counts (call_log_says' shape) summed per UTC day, team, prompt and model."""
    result: dict = {}
    for (hour, team, _key, _actor, prompt, _version, model), sums in hourly.items():
        day = hour.replace(hour=0)
        into = result.setdefault((day, team, prompt, model), [0] * 8)
        for i, value in enumerate(sums[:8]):
            into[i] += value
    return {k: v for k, v in result.items() if v[0]}


def per_six_hours(hourly: dict) -> dict:
    """Hourly call counts (call_log_says' shape) summed per six UTC hours, team, prompt and model."""
    result: dict = {}
    for (hour, team, _key, _actor, prompt, _version, model), sums in hourly.items():
        six = hour.replace(hour=hour.hour - hour.hour % 6)
        into = result.setdefault((six, team, prompt, model), [0] * 8)
        for i, value in enumerate(sums[:8]):
            into[i] += value
    return {k: v for k, v in result.items() if v[0]}


def per_hour(hourly: dict) -> dict:
    """Hourly call counts (call_log_says' shape) summed per UTC hour, team, prompt and model."""
    result: dict = {}
    for (hour, team, _key, _actor, prompt, _version, model), sums in hourly.items():
        into = result.setdefault((hour, team, prompt, model), [0] * 8)
        for i, value in enumerate(sums[:8]):
            into[i] += value
    return {k: v for k, v in result.items() if v[0]}


def packed_histograms(rows) -> dict:
    """{(day or hour, team, prompt, model, bucket): answered calls} of the rows' packed histograms."""
    return {
        (r[0], r.team_id, r.prompt_name, r.model, bucket): calls
        for r in rows
        for bucket, calls in unpack(r.latency_histogram).items()
    }


def daily_counts(rows) -> dict:
    """The daily (or hourly) roll-up's counts per (day or hour, team, prompt, model)."""
    return {
        (r[0], r.team_id, r.prompt_name, r.model): [
            r.calls,
            r.ok,
            r.errors,
            r.rejected_429,
            r.blocked,
            r.held,
            r.cache_hits,
            r.cost_micro,
        ]
        for r in rows
    }


def daily_rollups_say(session) -> tuple[dict, dict]:
    """The daily counts, and the daily histogram next to the hourly one summed per day."""
    session.rollback()
    counts = daily_counts(session.execute(select(DAILY)))
    daily = packed_histograms(session.execute(select(DAILY)))
    hourly: dict = {}
    for r in session.execute(select(LATENCY)):
        key = (r.hour.replace(hour=0), r.team_id, r.prompt_name, r.model, r.bucket)
        hourly[key] = hourly.get(key, 0) + r.calls
    return counts, {"daily": daily, "hourly summed per day": hourly}


def hourly_rollups_say(session, table=None, start_of=lambda hour: hour) -> tuple[dict, dict]:
    """The counts at Observability's hourly grain (or another grain of hours: `table`, whose
    rows start at `start_of` an hour), and its histogram next to call_latency_rollup's summed
    per (hour, team, prompt, model)."""
    session.rollback()
    table = HOURLY if table is None else table
    counts = daily_counts(session.execute(select(table)))
    packed = packed_histograms(session.execute(select(table)))
    per_bucket: dict = {}
    for r in session.execute(select(LATENCY)):
        key = (start_of(r.hour), r.team_id, r.prompt_name, r.model, r.bucket)
        per_bucket[key] = per_bucket.get(key, 0) + r.calls
    return counts, {"packed": packed, "call_latency_rollup": {k: v for k, v in per_bucket.items() if v}}


def call_log_per_version(session, folded_only: bool = False) -> tuple[dict, dict]:
    """The call log's calls naming a prompt, per (UTC day, prompt, version): [calls, answered,
    cost, answered latency summed], and the answered calls per latency bucket."""
    session.rollback()
    rows = session.execute(source_rows(CALLS, folded_only).where(CALLS.c.prompt_name != "")).mappings()
    return per_version_days(rows)


def per_version_days(rows) -> tuple[dict, dict]:
    """`call_log_per_version`'s shapes, from call-log rows (mappings); calls naming no prompt are left out."""
    counts: dict = {}
    buckets: dict = {}
    for r in rows:
        if not r["prompt_name"]:
            continue
        key = (_hour(r["created_at"]).replace(hour=0), r["prompt_name"], r["prompt_version"] or "")
        sums = counts.setdefault(key, [0, 0, 0, 0.0])
        ok = r["status"] == "ok"
        sums[0] += 1
        sums[1] += ok
        sums[2] += r["cost_micro"]
        if ok:
            sums[3] += float(r["latency_ms"])
            bucket = (*key, rollups.latency_bucket(float(r["latency_ms"])))
            buckets[bucket] = buckets.get(bucket, 0) + 1
    return counts, buckets


def version_rollups_say(session) -> tuple[dict, dict]:
    """call_version_daily_rollup's rows in call_log_per_version's shapes."""
    session.rollback()
    rows = session.execute(select(VERSIONS)).all()
    counts = {(r.day, r.prompt_name, r.prompt_version): [r.calls, r.ok, r.cost_micro, r.ok_latency_ms] for r in rows}
    buckets = {
        (r.day, r.prompt_name, r.prompt_version, bucket): n
        for r in rows
        for bucket, n in unpack(r.latency_histogram).items()
    }
    return counts, buckets


def assert_versions_match(session, folded_only: bool = False) -> None:
    """The per-version days equal the call log: counts, cost, latency sum (to float rounding)
    and histogram; no row for calls without a prompt."""
    expected, expected_buckets = call_log_per_version(session, folded_only)
    found, found_buckets = version_rollups_say(session)
    assert {k: v[:3] for k, v in found.items()} == {k: v[:3] for k, v in expected.items()}
    assert {k: v[3] for k, v in found.items()} == pytest.approx({k: v[3] for k, v in expected.items()})
    assert found_buckets == expected_buckets


def assert_rollups_match(session) -> None:
    """Every roll-up equals its sources' rows of the calls already folded, whatever is still
    waiting; and once a reader catches up, nothing waits and they equal all the rows."""
    session.rollback()
    with no_fold_meanwhile():  # the sources and the roll-ups are read in several statements
        _assert_rollups_match(session, folded_only=True)
    session.rollback()
    pending_rollups.catch_up(session.connection())
    session.rollback()
    assert session.execute(select(PENDING)).first() is None
    _assert_rollups_match(session, folded_only=False)


@contextmanager
def no_fold_meanwhile():
    """Hold off every fold (a background one included) until the block ends: the roll-up tables
    locked on PostgreSQL, SQLite's one write lock held."""
    with db.write_session() as holder:
        connection = holder.connection()
        rollups.lock(connection)
        connection.execute(select(1))
        yield
        holder.rollback()


def _assert_rollups_match(session, folded_only: bool) -> None:
    ledger, usage = ledger_says(session, folded_only), usage_rollups_say(session)
    assert usage == ledger
    calls, rolled = call_log_says(session, folded_only), call_rollups_say(session)
    # The histogram check above already holds; compare the counts without the last column.
    assert {k: v[:8] for k, v in rolled.items()} == {k: v[:8] for k, v in calls.items()}
    # Daily = the call log per day = the hourly roll-ups per day, histogram included.
    daily, histograms = daily_rollups_say(session)
    assert daily == per_day(calls) == per_day(rolled)
    assert histograms["daily"] == histograms["hourly summed per day"]
    # Observability's hourly grain = the call log per (hour, team, prompt, model), histogram included.
    hourly, packed = hourly_rollups_say(session)
    assert hourly == per_hour(calls) == per_hour(rolled)
    assert packed["packed"] == packed["call_latency_rollup"]
    # The six-hour grain = the call log per six hours, histogram included.
    six, packed = hourly_rollups_say(session, SIX_HOURLY, lambda h: h.replace(hour=h.hour - h.hour % 6))
    assert six == per_six_hours(calls) == per_six_hours(rolled)
    assert packed["packed"] == packed["call_latency_rollup"]
    # The per-version days = the call log per (day, prompt, version), histogram included.
    assert_versions_match(session, folded_only)


# ---- traffic through the real gateway and the simulator ------------------------------------

# support-answer's variables.
ANSWER = {
    "customer_name": "Ana",
    "customer_id": "C-1",
    "question": "Where is my parcel?",
    "kb_snippets": [],
    "channel": "email",
}


@pytest.fixture
def traffic(session, directory):
    """Two teams, people and a team key calling at once; Support's budget refuses some (429).
    Every fourth call runs Support's catalog prompt, version 1 or 2 (the others name none)."""
    from core.catalog.demo_seed import seed_catalog

    policies.forget()
    seed_catalog(session)
    support, legal = team_by_name(session, "Support").id, team_by_name(session, "Legal").id
    for team in (support, legal):
        policies.set_team_policy(session=session, actor=ADMIN, team_id=team, pii_action="redact", moderation="off")
    budget_config.set_budget(
        session=session,
        actor=ADMIN,
        scope="team",
        target_id=support,
        data=budget_config.BudgetInput(cap_usd="0.004"),
    )
    key = keys.create_key(session=session, actor=ADMIN, team_id=legal, label="app")
    key_identity = key_auth.authenticate(key.secret)
    gateway = make_gateway(RecordingTransport())
    engineer = directory.by_email("tom.becker@example.com")
    callers = [
        Caller(actor=engineer, team_id=support),
        Caller(actor=directory.by_email("sofia.rossi@example.com"), team_id=legal),
        Caller.for_key(key_identity),
    ]

    def run(count: int = 24, threads: int = 6) -> dict[str, int]:
        outcomes: dict[str, int] = {}
        lock = threading.Lock()

        def one(index: int) -> None:
            caller = callers[index % len(callers)]
            content = f"Question {index}: when does the shop open?"
            if index % 11 == 5:
                content = "here is my key sk-proj-" + "a1B2c3D4e5" * 4  # blocked: a secret
            request = GatewayRequest(
                kind="chat",
                body={
                    "model": ("gpt-4o", "gpt-4o-mini")[index % 2],
                    "max_tokens": 200,
                    "messages": [{"role": "user", "content": content}],
                },
            )
            if index % 4 == 3:
                caller = callers[0]
                request = GatewayRequest(
                    kind="chat",
                    body={},
                    prompt=PromptCall(name="support-answer", variables=ANSWER, version=1 + index % 8 // 4),
                )
            try:
                gateway.call(caller=caller, request=request)
                outcome = "ok"
            except BudgetExceeded:
                outcome = "refused"
            except Exception as error:  # noqa: BLE001 - a refusal or a crash, counted by its kind
                outcome = type(error).__name__
            with lock:
                outcomes[outcome] = outcomes.get(outcome, 0) + 1

        pending = list(range(count))
        workers = [
            threading.Thread(target=lambda part=pending[i::threads]: [one(n) for n in part]) for i in range(threads)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return outcomes

    return run


def test_rollups_equal_the_ledger_and_the_call_log_after_concurrent_settles(session, traffic):
    outcomes = traffic(36)
    assert outcomes.get("ok", 0) >= 3 and outcomes.get("refused", 0) >= 1 and len(outcomes) >= 3, outcomes
    assert_rollups_match(session)
    versions, buckets = version_rollups_say(session)
    assert {k[2] for k in versions} == {"v1", "v2"} and sum(buckets.values()) >= 2  # the check above was not empty
    session.rollback()
    total = session.execute(select(LEDGER.c.cost_micro)).scalars().all()
    rolled = session.execute(select(USAGE.c.cost_micro)).scalars().all()
    assert sum(rolled) == sum(total) > 0
    statuses = {r.status for r in session.execute(select(CALLS.c.status))}
    assert {"ok", "budget_exceeded", "blocked"} <= statuses


def waiting_calls(session) -> int:
    session.rollback()
    return len(session.execute(select(PENDING)).all())


def fold_once(session) -> int:
    """One fold transaction, as the background folder or a reader runs it."""
    with db.write_session() as writer:
        claimed = pending_rollups.fold(writer.connection())
        writer.commit()
    return claimed


def test_a_crash_inside_a_settle_or_a_fold_leaves_nothing_half_applied(session, traffic, monkeypatch):
    # Only this test folds: no background fold, no reader's catch-up in between.
    monkeypatch.setattr(pending_rollups, "fold_all", lambda engine=None: 0)
    traffic(6, threads=1)
    fold_once(session)
    folded = usage_rollups_say(session)
    real_record = writeback.record_rows
    audit_crashes = []

    def crash_in_the_audit_write(*args, **kwargs):
        if not audit_crashes:
            audit_crashes.append(1)
            raise RuntimeError("the audit write failed")
        return real_record(*args, **kwargs)

    monkeypatch.setattr(writeback, "record_rows", crash_in_the_audit_write)
    traffic(6, threads=1)
    assert audit_crashes
    # A settle that failed after its call and pending rows left neither: every waiting call has its rows.
    session.rollback()
    waiting = {r for (r,) in session.execute(select(PENDING.c.request_id))}
    logged = {r for (r,) in session.execute(select(CALLS.c.request_id))}
    assert waiting and waiting <= logged
    assert usage_rollups_say(session) == folded  # nothing folded yet

    real_add = rollups.add_groups
    crashes = []

    def crash_after_the_call_rollup(connection, table, groups):
        real_add(connection, table, groups)
        if table.name == "call_rollup" and not crashes:
            crashes.append(table.name)
            raise RuntimeError("the process died here")

    monkeypatch.setattr(rollups, "add_groups", crash_after_the_call_rollup)
    with pytest.raises(RuntimeError, match="died here"):
        fold_once(session)
    # The fold that died is rolled back whole: its calls still wait, no roll-up counts them.
    assert waiting_calls(session) == len(waiting)
    _assert_rollups_match(session, folded_only=True)
    assert fold_once(session) == len(waiting)
    assert waiting_calls(session) == 0
    _assert_rollups_match(session, folded_only=False)


def test_rebuild_recomputes_exactly_and_from_a_date_on_only(session, traffic, capsys, monkeypatch):
    traffic(12, threads=3)
    session.rollback()
    pending_rollups.catch_up(session.connection())
    # Damage: a roll-up lost, one inflated, one invented long before.
    with db.write_session() as s:
        first = s.execute(select(USAGE.c.hour, USAGE.c.team_id).limit(1)).one()
        s.execute(delete(USAGE).where(USAGE.c.hour == first.hour, USAGE.c.team_id == first.team_id))
        s.execute(update(CALL).values(calls=CALL.c.calls + 5))
        s.execute(update(DAILY).values(held=DAILY.c.held + 1))
        s.execute(update(DAILY).values(latency_histogram=b""))
        s.execute(update(HOURLY).values(errors=HOURLY.c.errors + 2, latency_histogram=b""))
        s.execute(update(SIX_HOURLY).values(cache_hits=SIX_HOURLY.c.cache_hits + 3, latency_histogram=b""))
        s.execute(update(VERSIONS).values(ok=VERSIONS.c.ok + 1, latency_histogram=b""))
        long_ago = datetime(2020, 1, 6, 9, tzinfo=UTC)
        s.execute(
            insert(USAGE),
            {
                "hour": long_ago,
                "team_id": first.team_id,
                "person_id": 0,
                "key_id": 0,
                "prompt_id": 0,
                "model": "gpt-4o",
                **dict.fromkeys(rollups.USAGE_SUMS, 0),
                "cost_micro": 999,
            },
        )
        s.commit()
    # And calls that wait for their fold while the rebuild runs: it leaves them to it.
    traffic(6, threads=2)
    waiting = waiting_calls(session)
    assert waiting > 0
    with pytest.raises(AssertionError):
        _assert_rollups_match(session, folded_only=True)

    assert cli(["rollups", "rebuild", "--from", "2021-01-01"]) == 0
    assert "rebuilt from 2021-01-01 00:00 UTC" in capsys.readouterr().out
    session.rollback()
    kept = usage_rollups_say(session).pop((long_ago, first.team_id, 0, 0, 0, "gpt-4o"))
    assert kept[5] == 999  # before --from: untouched
    assert cli(["rollups", "rebuild"]) == 0
    assert waiting_calls(session) == waiting
    assert_rollups_match(session)  # the rebuild's roll-ups leave out exactly the waiting calls
    assert session.execute(select(USAGE).where(USAGE.c.hour == long_ago)).first() is None


def test_a_bad_from_date_is_refused_clearly(session, capsys):
    assert cli(["rollups", "rebuild", "--from", "last tuesday"]) != 0
    assert "--from" in capsys.readouterr().err


def test_a_retention_run_keeps_the_rollups_equal_to_the_anonymized_ledger(session, directory):
    from core.retention import enforce
    from tests.retention_support import T0, Clock, add_usage

    person = directory.by_email("tom.becker@example.com").person_id
    support = team_by_name(session, "Support").id
    session.rollback()
    clock_ = Clock(T0)
    add_usage(7, at=T0, team_id=support, person_id=person)
    add_usage(2, at=T0 + timedelta(minutes=30), team_id=support)
    with db.write_session() as s:
        rollups.rebuild(s.connection())
        s.commit()
    assert_rollups_match(session)
    clock_.set(T0 + timedelta(days=8 * 365))
    assert enforce.enforce(actor=ADMIN, batch_size=3).counts["usage_record"]["anonymized"] == 7
    assert_rollups_match(session)
    (row,) = session.execute(select(USAGE)).all()
    assert (row.person_id, row.calls, row.cost_micro) == (0, 9, 9 * 42)


def test_deleting_ledger_rows_rebuilds_their_hours(session, traffic):
    traffic(12, threads=3)
    session.rollback()
    with db.write_session() as s:
        connection = s.connection()
        ids = [r.id for r in connection.execute(select(LEDGER.c.id).limit(3))]
        hours = rollups.hours_of(connection, "usage_record", "id", ids)
        connection.execute(delete(LEDGER).where(LEDGER.c.id.in_(ids)))
        rollups.rebuild_hours(connection, "usage_record", hours)
        s.commit()
    assert_rollups_match(session)


def test_deleting_call_log_rows_rebuilds_their_hours_and_days(session, traffic):
    traffic(12, threads=3)
    session.rollback()
    with db.write_session() as s:
        connection = s.connection()
        ids = [r.request_id for r in connection.execute(select(CALLS.c.request_id).limit(4))]
        hours = rollups.hours_of(connection, "gateway_call", "request_id", ids)
        connection.execute(delete(CALLS).where(CALLS.c.request_id.in_(ids)))
        rollups.rebuild_hours(connection, "gateway_call", hours)
        s.commit()
    assert_rollups_match(session)


# ---- the pages read the roll-ups and show the ledger's figures ---------------------------


def month_total(session) -> int:
    session.rollback()
    month = periods.period_at("month", clock.now())
    return sum(
        session.execute(
            select(LEDGER.c.cost_micro).where(LEDGER.c.occurred_at >= month.start, LEDGER.c.occurred_at < month.end)
        ).scalars()
    )


def test_spend_shows_the_ledger_and_a_new_settle_shows_at_once(session, traffic):
    traffic(12, threads=3)
    at = signed_in(session, EMAIL_BY_ROLE[Role.FINANCE])
    at.switch_page("pages/spend.py").run()
    assert not at.exception and not errors_of(at)
    total = month_total(session)
    assert total > 0 and at.metric[0].value == formatting.money(total)
    for by in ["model", "person", "day", "prompt", "team"]:
        at.selectbox(key="breakdown_by").select(by).run()
        assert at.metric[1].value == formatting.money(total), by  # the sum of the breakdown's rows
    # Cached per (period, filters) - but never past a new settle.
    traffic(6, threads=2)
    at.run()
    assert at.metric[0].value == formatting.money(month_total(session)) != formatting.money(total)


def test_spend_pages_through_a_rows_calls_with_a_cursor(session, traffic, directory):
    traffic(18, threads=3)
    session.rollback()
    finance = directory.with_role(Role.FINANCE)
    month = periods.period_at("month", clock.now())
    breakdown = reports.breakdown(session, actor=finance, period=month, by="model")
    group = breakdown.frame["model"].iloc[0]
    seen, cursor, pages = [], None, 0
    while True:
        page = ledger_pages.calls_page(session, actor=finance, breakdown=breakdown, group=group, after=cursor, limit=2)
        seen += list(page.frame["Request"])
        pages += 1
        if pages == 1:
            traffic(3, threads=1)  # settles between pages do not shift the pages still to come
            session.rollback()
        if page.next is None:
            break
        cursor = page.next
    session.rollback()
    expected = session.execute(
        select(LEDGER.c.request_id)
        .where(LEDGER.c.model == group, LEDGER.c.occurred_at >= month.start)
        .order_by(LEDGER.c.occurred_at.desc(), LEDGER.c.id.desc())
    ).scalars()
    expected = [r for r in expected]
    assert len(seen) == len(set(seen)) == int(breakdown.frame["calls"].iloc[0]) and pages > 1
    assert seen == [r for r in expected if r in set(seen)]


def test_observability_and_home_show_the_call_log(session, traffic):
    traffic(12, threads=3)
    session.rollback()
    since = clock.now() - timedelta(days=14)
    rows = session.execute(select(CALLS.c.cost_micro).where(CALLS.c.created_at >= since)).scalars().all()
    at = signed_in(session, EMAIL_BY_ROLE[Role.ADMIN])
    at.switch_page("pages/observability.py").run()
    assert not at.exception and not errors_of(at)
    shown = {m.label: m.value for m in at.metric}
    assert shown["Calls"] == f"{len(rows):,}"
    assert shown["Cost"] == format_micro(sum(rows))
    at.switch_page("pages/home.py").run()
    assert not at.exception and not errors_of(at)


@pytest.fixture
def prompts(session, directory):
    from core.catalog.demo_seed import seed_catalog
    from core.experiments import testset_store

    seed_catalog(session)
    testset_store.import_directory(session=session, actor=ADMIN, only={"ticket-triage"})
    return directory


def test_live_ab_equals_the_call_log_whatever_the_age_of_the_split(session, prompts):
    """Calls before the split, in its first partial hour and in whole hours after it: the
    comparison counts exactly the call log's calls since the split began."""
    import random

    from core.experiments import live_ab
    from core.models.experiments import RequestFeedback
    from core.models.gateway import GatewayCall as Call

    began = datetime(2026, 11, 3, 10, 40, tzinfo=UTC)
    prompt, v2, v3 = start_split(session, prompts, began, percent_b=30)
    clock.set_clock(lambda: datetime(2026, 11, 27, 12, tzinfo=UTC))
    rng = random.Random(3)
    team = prompt.team_id
    rows = split_call_rows(prompt, (v2, v3), began, [-50, -5, 1, 7, 19, 25, *range(30, 60 * 24 * 20, 97)], rng)
    with db.write_session() as s:
        s.execute(insert(Call.__table__), rows)
        rollups.add_call_rows(s.connection(), rows)
        for row in rows[::3]:
            s.add(RequestFeedback(request_id=row["request_id"], team_id=team, score=rng.choice([0.0, 1.0])))
        s.commit()
    session.rollback()
    stats = {s.version_id: s for s in live_ab.compare_live(session, actor=prompts.admin, prompt_id=prompt.id)}
    scores = {f.request_id: f.score for f in session.execute(select(RequestFeedback)).scalars()}
    for version in (v2, v3):
        names = live_ab.version_keys(version)
        mine = [r for r in rows if r["created_at"] >= began and r["prompt_version"] in names]
        answered = [r["latency_ms"] for r in mine if r["status"] == "ok"]
        shown = stats[version.id]
        assert shown.calls == len(mine) > 10
        assert shown.cost_micro == sum(r["cost_micro"] for r in mine)
        assert shown.error_rate == pytest.approx(sum(r["status"] != "ok" for r in mine) / len(mine))
        assert shown.mean_latency_ms == pytest.approx(sum(answered) / len(answered))
        exact_p95 = sorted(answered)[max(0, -(-len(answered) * 95 // 100) - 1)]
        assert abs(shown.p95_latency_ms - exact_p95) / exact_p95 <= 0.025
        feedback = [scores[r["request_id"]] for r in mine if r["request_id"] in scores]
        assert shown.feedback_count == len(feedback)
        assert shown.mean_feedback == pytest.approx(sum(feedback) / len(feedback))


def start_split(session, directory, began, *, percent_b):
    """A catalog prompt with two approved versions (v2, v3) under a live split begun at `began`."""
    from core.catalog import traffic as splits
    from core.catalog import workflow
    from tests.test_experiment_service import TOM, _approved_pair

    prompt, v2, v3 = _approved_pair(session, directory)
    workflow.submit(session=session, actor=directory.by_email(TOM), version_id=v3.id)
    workflow.approve(
        session=session, actor=directory.by_email("rafael.gomez@example.com"), version_id=v3.id, comment="fine"
    )
    clock.set_clock(lambda: began)
    splits.approve_split(
        session=session,
        actor=directory.by_email("lena.fischer@example.com"),
        prompt_id=prompt.id,
        version_a_id=v2.id,
        version_b_id=v3.id,
        percent_b=percent_b,
    )
    return prompt, v2, v3


def split_call_rows(prompt, versions, began, minutes, rng, *, actors=("key:1",), models=("gpt-4o-mini",)) -> list[dict]:
    """Call-log rows of a prompt under a live split, one per offset in `minutes` from `began`:
    each names one of `versions` by id or by number, as the prompt source may, and some fail."""
    rows = []
    for offset in minutes:
        version = rng.choice(versions)
        status = rng.choice(["ok", "ok", "ok", "held", "upstream_error"])
        rows.append(
            {
                "request_id": f"req_{uuid.uuid4().hex[:24]}",
                "created_at": began + timedelta(minutes=offset, seconds=rng.randint(0, 59)),
                "team_id": prompt.team_id,
                "key_id": None,
                "actor": rng.choice(actors),
                "endpoint": "prompt",
                "model": rng.choice(models),
                "prompt_name": prompt.name,
                "prompt_version": rng.choice([str(version.id), f"v{version.number}"]),
                "status": status,
                "http_status": 502 if status == "upstream_error" else 200,
                "cache_hit": False,
                "latency_ms": rng.lognormvariate(6, 0.5),
                "cost_micro": rng.randint(10, 900),
                "input_tokens": 10,
                "output_tokens": 20,
            }
        )
    return rows


def test_a_month_that_starts_mid_hour_still_sums_exactly(session, directory, monkeypatch):
    """Asia/Kolkata is UTC+05:30: its November starts at 18:30 UTC, inside a roll-up hour."""
    from tests.budget_support import spend, use_timezone

    use_timezone(monkeypatch, "Asia/Kolkata")
    clock.set_clock(lambda: datetime(2026, 11, 20, tzinfo=UTC))
    support = team_by_name(session, "Support").id
    spend(session, support, 1_000, datetime(2026, 10, 31, 18, 10, tzinfo=UTC))  # 23:40 on 31 October there
    spend(session, support, 20_000, datetime(2026, 10, 31, 18, 50, tzinfo=UTC))  # 00:20 on 1 November
    spend(session, support, 300_000, datetime(2026, 11, 10, 9, tzinfo=UTC))
    spend(session, support, 5_000, datetime(2026, 11, 12, 18, 20, tzinfo=UTC))  # 23:50 on 12 November there
    spend(session, support, 60_000, datetime(2026, 11, 12, 18, 40, tzinfo=UTC))  # 00:10 on 13 November
    spend(session, support, 4_000_000, datetime(2026, 11, 30, 18, 40, tzinfo=UTC))  # 1 December there
    november = periods.period_at("month", clock.now())
    assert november.start == datetime(2026, 10, 31, 18, 30, tzinfo=UTC)
    finance = directory.with_role(Role.FINANCE)
    session.rollback()
    by_day = reports.breakdown(session, actor=finance, period=november, by="day").frame
    assert by_day["cost_micro"].sum() == 385_000
    assert dict(zip(by_day["day"], by_day["cost_micro"], strict=True)) == {
        "2026-11-01": 20_000,
        "2026-11-10": 300_000,
        "2026-11-12": 5_000,
        "2026-11-13": 60_000,
    }
    [row] = [t for t in reports.team_overview(session, actor=finance) if t.team_id == support]
    assert row.spent_micro == 385_000
    curve = reports.burndown(session, actor=finance, team_id=support)
    assert curve[curve["day"] == "2026-11-12"]["cumulative_micro"].iloc[0] == 325_000
    day = reports.breakdown(session, actor=finance, period=november, by="day")
    shown = ledger_pages.calls_page(session, actor=finance, breakdown=day, group="2026-11-13").frame
    assert list(shown["Cost"]) == ["$0.06"]
    assert list(shown["Time"]) == ["2026-11-13 00:10:00 IST"]


def varied_call_rows(start: datetime, minutes: list[int], *, cost=lambda index: 7) -> list[dict]:
    """Call-log rows at `start` + each of `minutes`: two teams, three keys, four outcomes,
    two models, some cache hits and rising latencies (what the roll-up upgrades fill from)."""
    return [
        {
            "created_at": start + timedelta(minutes=offset),
            "team_id": 1 + index % 2,
            "key_id": index % 3,
            "actor": f"key:{index % 3}",
            "prompt_name": ("", "support-answer")[index % 2],
            "prompt_version": str(index % 4),
            "model": ("gpt-4o", "gpt-4o-mini")[index % 2],
            "status": ("ok", "ok", "blocked", "upstream_error")[index % 4],
            "http_status": (200, 200, 400, 502)[index % 4],
            "cache_hit": index % 5 == 0,
            "input_tokens": 10,
            "output_tokens": 5,
            "cost_micro": cost(index),
            "latency_ms": 50.0 + index * 13,
        }
        for index, offset in enumerate(minutes)
    ]


def test_the_upgrade_fills_the_daily_rollups_from_the_hourly_ones(tmp_path):
    """An installation with hourly roll-ups gets its daily ones from the migration, hour for hour:
    calls on both sides of a UTC midnight land on their own days."""
    from core import migrate

    url = f"sqlite:///{tmp_path / 'before.db'}"
    migrate.upgrade(url, "0021")
    engine = db.get_engine(url)
    midnight = datetime(2026, 11, 20, tzinfo=UTC)
    rows = varied_call_rows(midnight, [-61, -1, 0, 1, 59, 60, 23 * 60 + 59, 24 * 60, 3000, -3000, -2, 2])
    groups, latencies = rollups.call_groups(rows)
    with engine.begin() as connection:
        rollups.add_groups(connection, CALL, groups)
        rollups.add_groups(connection, LATENCY, latencies)
    migrate.upgrade(url)
    with engine.connect() as connection:
        daily = daily_counts(connection.execute(select(DAILY)))
        histogram = packed_histograms(connection.execute(select(DAILY)))
    hourly = {key: [sums[i] for i in (0, 1, 2, 3, 4, 5, 6, 9)] for key, sums in groups.items()}
    assert daily == per_day(hourly) and len({key[0] for key in daily}) == 5
    expected: dict = {}
    for (hour, team, prompt, _version, model, bucket), (calls,) in latencies.items():
        key = (hour.replace(hour=0), team, prompt, model, bucket)
        expected[key] = expected.get(key, 0) + calls
    assert histogram == expected
    # Down to 0025 the packed histograms come back a row per bucket, and up again packed.
    from alembic import command

    command.downgrade(migrate.alembic_config(url), "0025")
    with engine.connect() as connection:
        names = ("team_id", "prompt_name", "model", "bucket", "calls")
        buckets = table("call_latency_daily_rollup", column("day", UtcDateTime()), *(column(n) for n in names))
        assert {tuple(r[:5]): r[5] for r in connection.execute(select(buckets))} == expected
    migrate.upgrade(url)
    with engine.connect() as connection:
        assert packed_histograms(connection.execute(select(DAILY))) == expected
    db.dispose_engines()


def test_rollups_equal_the_ledger_when_the_budget_gate_settles_call_by_call(session, traffic, monkeypatch):
    """A gate of its own, with no batched settle: the fold reads the ledger rows themselves, so
    the roll-ups still hold exactly what the ledger holds."""
    monkeypatch.setattr(BudgetsGate, "settle_many", None)
    outcomes = traffic(18)
    assert outcomes.get("ok", 0) >= 3, outcomes
    assert_rollups_match(session)
    session.rollback()
    assert (
        sum(session.execute(select(USAGE.c.cost_micro)).scalars())
        == sum(session.execute(select(LEDGER.c.cost_micro)).scalars())
        > 0
    )

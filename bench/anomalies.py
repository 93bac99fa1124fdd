"""How well and how fast the anomaly detectors work, on labelled synthetic traffic.

Accuracy: 8 weeks of hourly roll-ups for 20 keys in 4 teams (a weekly rhythm: busy weekday
office hours, quiet nights and weekends; multiplicative noise; a few keys used in office
hours only), written straight into the roll-up tables from a seeded RNG. From week 4 on,
incidents of several kinds and sizes are injected: spend surges of 2x to 20x, failure-rate
jumps, a key calling a new model, a key calling again a model its team rarely uses, a key
used at 03:00, a key used from a network it never was (calls from it: 3 to 40, or 1 to 2,
under the minimum), prompts whose answers change length or fail their JSON schema more often
after a new version. Detection then runs the way cron runs it, once per hour, through
`core.anomalies.run.detect`. Printed: recall per detector and size (an incident counts as
caught when an alert of that kind opens for its key, team or prompt within 1 hour of its
start), and false alarms per key per week (alerts matching no incident).

Speed: 1,000 keys with 6 weeks of history; the time to detect one hour, and one hour
within a 24-hour catch-up, over all of them.

Run: python bench/anomalies.py [--database-url URL] [--seed 7] [--noise 0.15] [--speed-keys 1000] [--no-speed]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, text  # noqa: E402

from core import clock, db, migrate  # noqa: E402
from core.anomalies import run  # noqa: E402
from core.anomalies.detectors import DETECTORS  # noqa: E402
from core.db import table_of  # noqa: E402
from core.models.anomalies import KeyNetwork, SchemaCheckRollup  # noqa: E402
from core.models.rollups import CallRollup, UsageRollup  # noqa: E402

HOUR = timedelta(hours=1)
START = datetime(2026, 9, 7, tzinfo=UTC)  # a Monday
WEEKS = 8
EVAL_FROM = START + timedelta(weeks=3)  # three weeks of same-hour history first
END = START + timedelta(weeks=WEEKS)
TEAMS = 4
KEYS = 20
PROMPTS = 5
COST_PER_CALL = 4_000  # micro-dollars
MODEL = "gpt-4o-mini"


@dataclass(frozen=True)
class Incident:
    kind: str  # the detector expected to catch it
    size: str
    key: int
    team: int
    start: datetime
    hours: int
    prompt: str = ""


def rhythm(hours: list[datetime], office_only: bool) -> np.ndarray:
    """Expected calls per hour, relative: office hours on weekdays, quiet nights and weekends."""
    out = []
    for hour in hours:
        weekday = hour.weekday() < 5
        office = 8 <= hour.hour < 18
        if office_only:
            out.append(1.0 if weekday and office else 0.0)
        else:
            level = 1.0 if office else 0.35 if 6 <= hour.hour < 22 else 0.1
            out.append(level * (1.0 if weekday else 0.4))
    return np.array(out)


def build(url: str, rng: np.random.Generator, noise: float = 0.15) -> list[Incident]:
    hours = [START + i * HOUR for i in range(int((END - START) / HOUR))]
    index = {hour: i for i, hour in enumerate(hours)}
    keys = []
    for key in range(1, KEYS + 1):
        team = (key - 1) % TEAMS + 1
        peak_calls = float(rng.uniform(150, 900))
        keys.append((key, team, peak_calls, key % 5 == 0))  # every fifth key: office hours only
    calls = np.zeros((KEYS, len(hours)))
    for k, (_key, _team, peak, office_only) in enumerate(keys):
        expected = peak * rhythm(hours, office_only)
        calls[k] = rng.poisson(expected * rng.lognormal(0, noise, len(hours)))
    cost = calls * COST_PER_CALL * rng.lognormal(0, 0.1, calls.shape)
    errors_rate = np.full(calls.shape, 0.01)
    blocked_rate = np.full(calls.shape, 0.005)
    models: dict[tuple[int, int], str] = {}

    incidents: list[Incident] = []
    busy_hours = [h for h in hours if h >= EVAL_FROM + timedelta(days=1) and h.weekday() < 5 and 9 <= h.hour < 17]
    used: set[tuple[int, datetime]] = set()

    def free_hour(key: int, draw: np.random.Generator = rng) -> datetime:
        while True:
            hour = busy_hours[int(draw.integers(len(busy_hours)))]
            if all((key, hour + d * HOUR) not in used for d in range(-3, 6)):
                used.update((key, hour + d * HOUR) for d in range(0, 3))
                return hour

    for size in (2, 3, 5, 10, 20):
        for _ in range(20):
            k = int(rng.integers(KEYS))
            key, team = keys[k][0], keys[k][1]
            hour = free_hour(key)
            length = int(rng.integers(1, 4))
            for d in range(length):
                i = index[hour + d * HOUR]
                cost[k, i] *= size
                calls[k, i] *= size
            incidents.append(Incident("spend_surge", f"{size}x", key, team, hour, length))
    for kind, rates, column in (("error_rate", (0.1, 0.3), errors_rate), ("blocked_rate", (0.1, 0.3), blocked_rate)):
        for rate in rates:
            for _ in range(10):
                k = int(rng.integers(KEYS))
                hour = free_hour(keys[k][0])
                column[k, index[hour]] = rate
                incidents.append(Incident(kind, f"{rate:.0%}", keys[k][0], keys[k][1], hour, 1))
    # A model new to the key each time (a second call of the same one is no longer new).
    for n in range(10):
        k = int(rng.integers(KEYS))
        hour = free_hour(keys[k][0])
        models[(k, index[hour])] = f"new-model-{n}"
        incidents.append(Incident("new_model", "one hour", keys[k][0], keys[k][1], hour, 1))
    # A model one key tried for an hour, used again a week later: the first time it is new to
    # the key; the second it is no longer new to the key but still rare for its team. Drawn
    # from a side stream, so the other incidents stay where they were without these.
    side = np.random.default_rng(int(rng.bit_generator.state["state"]["state"] % 2**32))
    for n in range(10):
        k = int(side.integers(KEYS))
        while True:
            hour = free_hour(keys[k][0], side)
            # A week later, a few hours off: not the same hour of the week, which would be a habit.
            again = hour + timedelta(days=7, hours=2 if hour.hour <= 13 else -3)
            if again < END and all((keys[k][0], again + d * HOUR) not in used for d in range(-3, 6)):
                used.update((keys[k][0], again + d * HOUR) for d in range(0, 3))
                break
        models[(k, index[hour])] = models[(k, index[again])] = f"rare-model-{n}"
        incidents.append(Incident("new_model", "tried once", keys[k][0], keys[k][1], hour, 1))
        incidents.append(Incident("rare_model", "a week later", keys[k][0], keys[k][1], again, 1))
    office_keys = [k for k in range(KEYS) if keys[k][3]]
    night = [h for h in hours if h >= EVAL_FROM + timedelta(days=1) and h.hour == 3]
    odd: set[tuple[int, int]] = set()  # (key, weekday): once used there, that hour is no longer new
    while len(odd) < 10:
        k = office_keys[int(rng.integers(len(office_keys)))]
        hour = night[int(rng.integers(len(night)))]
        if (k, hour.weekday()) in odd:
            continue
        odd.add((k, hour.weekday()))
        calls[k, index[hour]] = float(rng.integers(20, 60))
        cost[k, index[hour]] = calls[k, index[hour]] * COST_PER_CALL
        incidents.append(Incident("odd_hour", "20-60 calls", keys[k][0], keys[k][1], hour, 1))
    network_rows = _networks(keys, free_hour, incidents, seed_of(rng))

    usage_rows, call_rows = [], []
    errors = rng.binomial(calls.astype(int), errors_rate)
    blocked = rng.binomial(calls.astype(int), blocked_rate)
    for k, (key, team, _peak, _office) in enumerate(keys):
        for i, hour in enumerate(hours):
            n = int(calls[k, i])
            if n == 0:
                continue
            c = int(cost[k, i])
            model = models.get((k, i), MODEL)
            usage_rows.append(
                dict(
                    hour=hour,
                    team_id=team,
                    person_id=0,
                    key_id=key,
                    prompt_id=0,
                    model=model,
                    calls=n,
                    input_tokens=n * 400,
                    cached_input_tokens=0,
                    output_tokens=c // 20,
                    reasoning_tokens=0,
                    cost_micro=c,
                    cache_hits=0,
                )
            )
            bad = int(errors[k, i] + blocked[k, i])
            call_rows.append(
                dict(
                    hour=hour,
                    team_id=team,
                    key_id=key,
                    actor="",
                    prompt_name="",
                    prompt_version="",
                    model=model,
                    calls=n,
                    ok=max(n - bad, 0),
                    errors=int(errors[k, i]),
                    rejected_429=0,
                    blocked=int(blocked[k, i]),
                    held=0,
                    cache_hits=0,
                    input_tokens=n * 400,
                    output_tokens=c // 20,
                    cost_micro=c,
                    ok_latency_ms=0.0,
                )
            )
    schema_rows: list[dict] = []
    incidents.extend(_prompts(rng, hours, call_rows, schema_rows, np.random.default_rng(seed_of(rng) + 1)))
    engine = db.get_engine(url)
    with engine.begin() as conn:
        tables = (
            (UsageRollup, usage_rows),
            (CallRollup, call_rows),
            (KeyNetwork, network_rows),
            (SchemaCheckRollup, schema_rows),
        )
        for table, rows in tables:
            for offset in range(0, len(rows), 20_000):
                conn.execute(insert(table_of(table)), rows[offset : offset + 20_000])
    return incidents


def seed_of(rng: np.random.Generator) -> int:
    """A seed for a side stream: what is drawn from it leaves the main stream's incidents where they were."""
    return int(rng.bit_generator.state["state"]["state"] % 2**32)


def _networks(keys: list[tuple], free_hour, incidents: list[Incident], seed: int) -> list[dict]:
    """Each key's two usual networks, recorded from the start; then keys used from a new one."""
    side = np.random.default_rng(seed)
    rows = []
    for key, team, _peak, _office in keys:
        for n in range(2):
            rows.append(
                dict(
                    key_id=key,
                    team_id=team,
                    network=f"10.{key}.{n}.0/24",
                    first_seen=START + n * HOUR,
                    last_seen=END,
                    calls=1000,
                )
            )
    for n, (low, high, size) in enumerate([(3, 40, "3-40 calls")] * 10 + [(1, 2, "1-2 calls (under the minimum)")] * 5):
        k = int(side.integers(len(keys)))
        key, team = keys[k][0], keys[k][1]
        hour = free_hour(key, side)
        seen = hour + timedelta(minutes=int(side.integers(0, 50)))
        calls = int(side.integers(low, high + 1))
        rows.append(
            dict(key_id=key, team_id=team, network=f"203.0.{n}.0/24", first_seen=seen, last_seen=seen, calls=calls)
        )
        incidents.append(Incident("new_network", size, key, team, hour, 1))
    return rows


def _prompts(
    rng: np.random.Generator,
    hours: list[datetime],
    call_rows: list[dict],
    schema_rows: list[dict],
    side: np.random.Generator,
) -> list[Incident]:
    """Prompts called all along; each changes version twice, once shifting its answers' length;
    one of the two changes makes 25 % of its answers fail the JSON schema (1 % before), the
    other 3 % (not reported)."""
    incidents = []
    for p in range(PROMPTS):
        failing = [0.25, 0.03] if p % 2 else [0.03, 0.25]
        failure = 0.01
        name = f"prompt-{p}"
        changes = sorted(
            hours[int(i)] for i in rng.choice(np.arange(len(hours) // 2, len(hours) - 48), 2, replace=False)
        )
        shifts = [(2.0, "answers 2x longer"), (1.1, "answers 1.1x (no change)")]
        rng.shuffle(shifts)
        version, tokens = 1, 150.0
        for hour in hours:
            while changes and hour >= changes[0]:
                changes.pop(0)
                factor, label = shifts.pop(0)
                version += 1
                tokens *= factor
                if factor >= 1.5:
                    incidents.append(Incident("answer_drift", label, 0, p % TEAMS + 1, hour, 1, prompt=name))
                failure = failing.pop(0)
                if failure >= 0.2:
                    incidents.append(
                        Incident("schema_drift", "1% -> 25% failing", 0, p % TEAMS + 1, hour, 1, prompt=name)
                    )
            n = int(rng.poisson(40 * rhythm([hour], False)[0]))
            if n == 0:
                continue
            out = int(n * tokens * rng.lognormal(0, 0.1))
            call_rows.append(
                dict(
                    hour=hour,
                    team_id=p % TEAMS + 1,
                    key_id=0,
                    actor="",
                    prompt_name=name,
                    prompt_version=str(version),
                    model=MODEL,
                    calls=n,
                    ok=n,
                    errors=0,
                    rejected_429=0,
                    blocked=0,
                    held=0,
                    cache_hits=0,
                    input_tokens=n * 300,
                    output_tokens=out,
                    cost_micro=n * 2_000,
                    ok_latency_ms=0.0,
                )
            )
            schema_rows.append(
                dict(
                    hour=hour,
                    team_id=p % TEAMS + 1,
                    prompt_name=name,
                    prompt_version=str(version),
                    model=MODEL,
                    checked=n,
                    failed=int(side.binomial(n, failure)),
                )
            )
    return incidents


def _matches(incident: Incident, detector: str, series: str, first_hour: datetime) -> bool:
    # A surge's tokens surge too: a token alert for a surged key is no false alarm.
    kinds = {"spend_surge": {"spend_surge", "token_surge"}}.get(incident.kind, {incident.kind})
    if detector not in kinds:
        return False
    if not incident.start <= first_hour <= incident.start + (incident.hours) * HOUR:
        return False
    if incident.prompt:
        return series.startswith(f"prompt:{incident.prompt}:")
    return series in (f"key:{incident.key}", f"team:{incident.team}") or series.startswith(f"key:{incident.key}:")


def accuracy(url: str, seed: int, noise: float) -> None:
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    incidents = build(url, rng, noise)
    print(
        f"built 8 weeks x {KEYS} keys, {PROMPTS} prompts, {len(incidents)} incidents "
        f"in {time.perf_counter() - started:.1f} s"
    )
    engine = db.get_engine(url)
    hour = EVAL_FROM
    clock.set_clock(lambda: hour + HOUR + timedelta(minutes=5))
    started = time.perf_counter()
    steps = 0
    while hour < END:
        clock.set_clock(lambda h=hour: h + HOUR + timedelta(minutes=5))
        run.detect(actor=run.SYSTEM, engine=engine)
        hour += HOUR
        steps += 1
    elapsed = time.perf_counter() - started
    with engine.connect() as conn:
        alerts = conn.execute(text("SELECT detector, series, first_hour FROM anomaly_alert")).all()
    print(f"detected {steps} hours one by one in {elapsed:.1f} s ({elapsed / steps * 1000:.0f} ms per hourly run)")
    evaluate(incidents, alerts)
    clock.set_clock(None)


def evaluate(incidents: list[Incident], alerts: list) -> None:
    caught: dict[tuple[str, str], list[bool]] = defaultdict(list)
    explained = set()
    for incident in incidents:
        hits = [
            i
            for i, (detector, series, first) in enumerate(alerts)
            if _matches(incident, detector, series, _first(alerts[i]))
        ]
        # Caught within 1 hour: an alert of its kind whose first hour is its start or the next.
        within = [i for i in hits if _first(alerts[i]) <= incident.start + HOUR]
        caught[(incident.kind, incident.size)].append(bool(within))
        explained.update(hits)
    print("\nrecall (caught within 1 hour), per detector and size:")
    for (kind, size), results in sorted(caught.items()):
        print(f"  {kind:<14} {size:<26} {sum(results):>3}/{len(results):<3} {sum(results) / len(results):6.0%}")
    false = [a for i, a in enumerate(alerts) if i not in explained]
    key_weeks = KEYS * (END - EVAL_FROM) / timedelta(weeks=1)
    by_detector: dict[str, int] = defaultdict(int)
    for detector, _series, _hour in false:
        by_detector[detector] += 1
    print(f"\nfalse alarms: {len(false)} in {key_weeks:.0f} key-weeks = {len(false) / key_weeks:.3f} per key per week")
    for detector in sorted(set(DETECTORS) | set(by_detector)):
        count = by_detector.get(detector, 0)
        print(f"  {detector:<14} {count:>4}  ({count / key_weeks:.3f} per key per week)")


def _first(alert) -> datetime:
    first = alert[2]
    if isinstance(first, str):  # SQLite hands back text for a raw query
        first = datetime.fromisoformat(first)
    return first.replace(tzinfo=UTC) if first.tzinfo is None else first


def speed(url: str, keys: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    hours = [END - timedelta(weeks=6) + i * HOUR for i in range(6 * 168)]
    started = time.perf_counter()
    engine = db.get_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM usage_rollup"))
        conn.execute(text("DELETE FROM call_rollup"))
        conn.execute(text("DELETE FROM key_network"))
        conn.execute(text("DELETE FROM schema_check_rollup"))
        # Every key's usual network, and a few keys seen from a new one in the last day.
        conn.execute(
            insert(table_of(KeyNetwork)),
            [
                dict(
                    key_id=key + 1,
                    team_id=key % 40 + 1,
                    network=f"10.{key // 250}.{key % 250}.0/24",
                    first_seen=hours[0],
                    last_seen=END,
                    calls=5000,
                )
                for key in range(keys)
            ]
            + [
                dict(
                    key_id=key + 1,
                    team_id=key % 40 + 1,
                    network=f"203.0.{key % 250}.0/24",
                    first_seen=END - (key % 24 + 1) * HOUR,
                    last_seen=END,
                    calls=10,
                )
                for key in range(0, keys, max(keys // 30, 1))
            ],
        )
        for offset in range(0, len(hours), 48):
            usage_rows, call_rows = [], []
            for hour in hours[offset : offset + 48]:
                level = rhythm([hour], False)[0]
                counts = rng.poisson(300 * level, keys) + 1
                for key in range(keys):
                    n = int(counts[key])
                    usage_rows.append(
                        dict(
                            hour=hour,
                            team_id=key % 40 + 1,
                            person_id=0,
                            key_id=key + 1,
                            prompt_id=key % 200 + 1,
                            model=MODEL,
                            calls=n,
                            input_tokens=n * 400,
                            cached_input_tokens=0,
                            output_tokens=n * 200,
                            reasoning_tokens=0,
                            cost_micro=n * COST_PER_CALL,
                            cache_hits=0,
                        )
                    )
                    if hour >= END - timedelta(days=8):
                        call_rows.append(
                            dict(
                                hour=hour,
                                team_id=key % 40 + 1,
                                key_id=key + 1,
                                actor="",
                                prompt_name="",
                                prompt_version="",
                                model=MODEL,
                                calls=n,
                                ok=n,
                                errors=0,
                                rejected_429=0,
                                blocked=0,
                                held=0,
                                cache_hits=0,
                                input_tokens=n * 400,
                                output_tokens=n * 200,
                                cost_micro=n * COST_PER_CALL,
                                ok_latency_ms=0.0,
                            )
                        )
            conn.execute(insert(table_of(UsageRollup)), usage_rows)
            if call_rows:
                conn.execute(insert(table_of(CallRollup)), call_rows)
                conn.execute(
                    insert(table_of(SchemaCheckRollup)),
                    [
                        dict(
                            hour=row["hour"],
                            team_id=row["team_id"],
                            prompt_name=f"prompt-{row['key_id'] % 200}",
                            prompt_version="1",
                            model=MODEL,
                            checked=row["calls"],
                            failed=0,
                        )
                        for row in call_rows
                        if row["key_id"] <= 200
                    ],
                )
    print(
        f"\nspeed: {keys:,} keys x 6 weeks ({keys * len(hours):,} usage roll-up rows) written in "
        f"{time.perf_counter() - started:.0f} s"
    )
    series = keys + 40 + min(keys, 200)
    timings = []
    with db.session(engine) as session:
        for back in range(1, 6):
            target = END - back * HOUR
            started = time.perf_counter()
            run.find(session, [target])
            timings.append(time.perf_counter() - started)
        started = time.perf_counter()
        run.find(session, [END - (24 - i) * HOUR for i in range(24)])
        batch = (time.perf_counter() - started) / 24
    print(
        f"  one hour, {series:,} series (keys, teams, prompts): median {np.median(timings) * 1000:.0f} ms, "
        f"max {max(timings) * 1000:.0f} ms"
    )
    print(f"  per hour within a 24-hour catch-up: {batch * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="Default: a fresh SQLite file in a temporary directory.")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--speed-keys", type=int, default=1000)
    parser.add_argument("--noise", type=float, default=0.15, help="Hour-to-hour noise (lognormal sigma).")
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/anomalies.db"
    if url.startswith("postgresql"):
        migrate.recreate(url)
    else:
        migrate.upgrade(url)
    accuracy(url, args.seed, args.noise)
    if not args.no_speed:
        speed(url, args.speed_keys, args.seed)


if __name__ == "__main__":
    main()

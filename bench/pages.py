"""Every page timed through AppTest over a year of a mid-size company's traffic.

Builds a fresh database: the demo data, then 8 teams and 189 people, two team keys per team,
and `--calls` gateway calls (default 1,000,061) spread over the last 365 days in time order,
each with its ledger row when it was billed (answered or held): 85 % from team keys and 15 %
from people, 4 models, the catalog's prompts (one of them in a live A/B split begun 300 days
ago), a few errors, 429s, blocks, holds and cache hits. Rows go in by bulk inserts; the
roll-ups are then built by `quorum rollups rebuild` (timed: that is what an existing
installation runs once after upgrading).

Then every page the bench user (admin, finance, governance lead and auditor) may open is
run through Streamlit's AppTest: the first run (cold caches) and the median of `--repeat`
warm reruns; Spend's and Observability's selectors are changed one at a time and each
change is timed. The table printed at the end is the one in the README.

Run: python bench/pages.py [--calls 1000061] [--repeat 3] [--url postgresql+psycopg://...]
Use --calls 200000 on a busy machine: the page figures barely move with the call count
(that is the point), the build time does.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

# This file's own folder off the path: its name would hide the app's `pages` package.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select  # noqa: E402

from core import clock, db, demo, migrate  # noqa: E402
from core.budgets import rollups  # noqa: E402
from core.catalog import traffic, workflow  # noqa: E402
from core.catalog.spec import MessageSpec  # noqa: E402
from core.catalog.store import create_version, prompt_by_name, version_spec, versions_of  # noqa: E402
from core.models.budgets import UsageRecord  # noqa: E402
from core.models.catalog import Prompt, PromptVersion  # noqa: E402
from core.models.gateway import GatewayCall  # noqa: E402
from core.models.identity import Membership, Person, RoleGrant, Team  # noqa: E402
from core.models.keys import ApiKey  # noqa: E402
from core.permissions import Actor, Role  # noqa: E402
from core.settings import PROJECT_ROOT, reset_settings  # noqa: E402

TEAMS = 8
PEOPLE = 189
YEAR_S = 365 * 86400
SPLIT_PROMPT = "ticket-triage"
# model: (micro-dollars per input token, per output token), weight
MODELS = {"gpt-4o-mini": ((0.15, 0.6), 55), "gpt-4o": ((2.5, 10.0), 20), "gpt-4.1": ((2.0, 8.0), 15)}
MODELS["text-embedding-3-small"] = ((0.02, 0.0), 10)
OUTCOMES = [("ok", 200)] * 93 + [("upstream_error", 502), ("budget_exceeded", 429), ("budget_exceeded", 429)]
OUTCOMES += [("blocked", 400), ("held", 202), ("ok", 200), ("ok", 200), ("ok", 200)]
BENCH_EMAIL = "bench.reader@example.com"

TARGETS = {
    "Spend": 300,
    "Observability": 300,
    "Live A/B": 100,
}


# ---- building the year --------------------------------------------------------------------


def build(url: str, calls: int) -> dict:
    started = time.perf_counter()
    migrate.recreate(url)
    engine = db.get_engine(url)
    with db.session(engine) as session:
        demo.seed(session)
    with engine.begin() as conn:
        teams = dict(conn.execute(select(Team.id, Team.name)).all())
        for n in range(len(teams), TEAMS):
            name = f"Unit {n + 1}"
            conn.execute(insert(Team.__table__), {"name": name, "name_key": name.lower(), "created_at": clock.now()})
        teams = dict(conn.execute(select(Team.id, Team.name)).all())
        existing = conn.execute(select(func.count()).select_from(Person)).scalar_one()
        people = [
            {"email": f"person{n}@example.com", "display_name": f"Person {n}", "created_at": clock.now()}
            for n in range(existing, PEOPLE - 1)
        ]
        people.append({"email": BENCH_EMAIL, "display_name": "Bench Reader", "created_at": clock.now()})
        conn.execute(insert(Person.__table__), people)
        everyone = [p for (p,) in conn.execute(select(Person.id))]
        bench = conn.execute(select(Person.id).where(Person.email == BENCH_EMAIL)).scalar_one()
        conn.execute(
            insert(RoleGrant.__table__),
            [
                {"person_id": bench, "role": r.value, "granted_at": clock.now()}
                for r in (Role.ADMIN, Role.FINANCE, Role.GOVERNANCE_LEAD, Role.AUDITOR)
            ],
        )
        member_of: dict[int, list[int]] = {t: [] for t in teams}
        known = {(m, t) for m, t in conn.execute(select(Membership.person_id, Membership.team_id))}
        for index, person in enumerate(everyone):
            team = list(teams)[index % len(teams)]
            member_of[team].append(person)
            if (person, team) not in known:
                conn.execute(insert(Membership.__table__), {"person_id": person, "team_id": team})
        key_rows = [
            {
                "team_id": t,
                "label": f"app {k}",
                "prefix": f"qk_bench{t}{k}",
                "key_hash": f"{t:032d}{k:032d}",
                "created_by": "system:bench",
                "created_at": clock.now(),
                "allowed_cidrs": "",
            }
            for t in teams
            for k in range(2)
        ]
        conn.execute(insert(ApiKey.__table__), key_rows)
        keys_of: dict[int, list[int]] = {t: [] for t in teams}
        for key_id, team_id in conn.execute(select(ApiKey.id, ApiKey.team_id)):
            keys_of[team_id].append(key_id)
    split = _live_split(engine)
    with engine.connect() as conn:
        prompts = {p.id: (p.name, p.team_id) for p in conn.execute(select(Prompt.id, Prompt.name, Prompt.team_id))}
        versions: dict[int, list[str]] = {}
        approved = select(PromptVersion.id, PromptVersion.prompt_id).where(PromptVersion.state == "approved")
        for vid, pid in conn.execute(approved):
            versions.setdefault(pid, []).append(str(vid))
    prompts_of: dict[int, list[tuple[int, str, list[str]]]] = {t: [] for t in teams}
    for pid, (name, team_id) in prompts.items():
        if versions.get(pid):
            prompts_of.setdefault(team_id, []).append((pid, name, versions[pid]))
    built = time.perf_counter() - started
    inserted = _calls(engine, calls, teams, member_of, keys_of, prompts_of, split)
    return {"setup_s": built, "insert_s": inserted, "bench_person": bench, "split_prompt": split["prompt_id"]}


def _live_split(engine) -> dict:
    """ticket-triage: a second approved version, split 70/30 with the first since 300 days ago."""
    with db.session(engine) as session:
        prompt = prompt_by_name(session, SPLIT_PROMPT)
        base = [v for v in versions_of(session, prompt.id) if v.state == "approved"][-1]
        spec = version_spec(base)
        first = spec.messages[0]
        import dataclasses

        edited = dataclasses.replace(
            spec, change_note="Shorter", messages=(MessageSpec(first.role, first.content + "\nBe brief.\n"),)
        )
        engineer = _actor(session, "tom.becker@example.com")
        second = create_version(session=session, actor=engineer, prompt_id=prompt.id, version=edited)
        workflow.submit(session=session, actor=engineer, version_id=second.id)
        for lead in ("rafael.gomez@example.com", "lena.fischer@example.com", BENCH_EMAIL):  # as the policy needs
            approved = workflow.approve(
                session=session, actor=_actor(session, lead), version_id=second.id, comment="ok"
            )
            if approved.state == "approved":
                break
        began = clock.now() - timedelta(days=300)
        clock.set_clock(lambda: began)
        try:
            traffic.approve_split(
                session=session,
                actor=_actor(session, "lena.fischer@example.com"),
                prompt_id=prompt.id,
                version_a_id=base.id,
                version_b_id=second.id,
                percent_b=30,
            )
        finally:
            clock.set_clock(None)
        return {"prompt_id": prompt.id, "versions": (str(base.id), str(second.id))}


def _actor(session, email: str) -> Actor:
    from core.identity import people

    actor = people.actor_for_email(session, email)
    assert actor is not None, email
    return actor


def _calls(engine, count: int, teams, member_of, keys_of, prompts_of, split) -> float:
    started = time.perf_counter()
    rng = random.Random(1)
    now = datetime.now(UTC)
    team_ids = list(teams)
    team_weights = [2 ** (i % 4) for i in range(len(team_ids))]
    models = list(MODELS)
    model_weights = [MODELS[m][1] for m in models]
    offsets = sorted((rng.uniform(0, YEAR_S) for _ in range(count)), reverse=True)
    chunk = 20_000
    for start in range(0, count, chunk):
        call_rows, ledger_rows = [], []
        for i in range(start, min(start + chunk, count)):
            at = now - timedelta(seconds=offsets[i])
            team = rng.choices(team_ids, team_weights)[0]
            by_key = rng.random() < 0.85
            key_id = rng.choice(keys_of[team]) if by_key else None
            person = None if by_key else rng.choice(member_of[team] or [None])
            model = rng.choices(models, model_weights)[0]
            prompt = rng.choice(prompts_of.get(team) or [None]) if rng.random() < 0.6 else None
            version = None
            if prompt is not None:
                version = split["versions"][rng.random() < 0.3] if prompt[0] == split["prompt_id"] else prompt[2][-1]
            status, http_status = OUTCOMES[rng.randrange(len(OUTCOMES))]
            answered = status in ("ok", "held")
            cache_hit = answered and rng.random() < 0.05
            input_tokens = int(rng.lognormvariate(6, 0.7))
            output_tokens = 0 if model.startswith("text-") or not answered else int(rng.lognormvariate(5, 0.6))
            (p_in, p_out), _w = MODELS[model]
            cost = 0 if cache_hit or not answered else math.ceil(input_tokens * p_in + output_tokens * p_out)
            latency = rng.lognormvariate(math.log(600), 0.6) if answered else rng.uniform(1, 30)
            request_id = f"req_{i:012d}"
            call_rows.append(
                {
                    "request_id": request_id,
                    "created_at": at + timedelta(milliseconds=latency),
                    "team_id": team,
                    "key_id": key_id,
                    "actor": f"key:{key_id}" if by_key else f"person:{person}",
                    "endpoint": "prompt" if prompt else "chat",
                    "model": model,
                    "prompt_name": prompt[1] if prompt else None,
                    "prompt_version": version,
                    "status": status,
                    "http_status": http_status,
                    "rule": None,
                    "stream": False,
                    "cache_hit": cache_hit,
                    "simulated": True,
                    "attempts": 1,
                    "input_tokens": input_tokens if answered else 0,
                    "output_tokens": output_tokens,
                    "usage_estimated": False,
                    "cost_micro": cost,
                    "latency_ms": round(latency, 3),
                    "upstream_ms": round(latency * 0.95, 3),
                    "response_id": None,
                }
            )
            if answered:
                ledger_rows.append(
                    {
                        "occurred_at": at,
                        "team_id": team,
                        "person_id": person,
                        "key_id": key_id,
                        "prompt_id": prompt[0] if prompt else None,
                        "prompt_version_id": int(version) if version else None,
                        "model": model,
                        "input_tokens": input_tokens,
                        "cached_input_tokens": 0,
                        "output_tokens": output_tokens,
                        "reasoning_tokens": 0,
                        "cost_micro": cost,
                        "latency_ms": int(latency),
                        "status": status,
                        "cache_hit": cache_hit,
                        "request_id": request_id,
                    }
                )
        with engine.begin() as conn:
            conn.execute(insert(GatewayCall.__table__), call_rows)
            conn.execute(insert(UsageRecord.__table__), ledger_rows)
    return time.perf_counter() - started


# ---- timing the pages ---------------------------------------------------------------------


def _timed(run) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) * 1000


def time_pages(
    bench_person: int, split_prompt: int, repeat: int, only: tuple[str, ...] = ()
) -> list[tuple[str, str, float, float]]:
    from streamlit.testing.v1 import AppTest

    from core.identity import people
    from pages.ui.registry import pages_for

    app = str(PROJECT_ROOT / "app.py")
    rows = []
    warm_cpu.clear()

    def fresh() -> AppTest:
        at = AppTest.from_file(app, default_timeout=600)
        at.session_state["demo_person_id"] = bench_person
        at.run()
        return at

    def check(at, what: str) -> None:
        if at.exception:
            raise SystemExit(f"{what}: {at.exception[0].value}")

    def warm(at, what: str) -> float:
        timings, cpu = [], []
        for _ in range(repeat):
            started = time.process_time()
            timings.append(_timed(at.run))
            cpu.append((time.process_time() - started) * 1000)
            check(at, what)
        warm_cpu[what] = statistics.median(cpu)
        return statistics.median(timings)

    with db.session() as session:
        reader = people.actor_for_person(session, bench_person)
    for spec in pages_for(reader):
        if only and spec.title not in only:
            continue
        at = fresh()
        first = _timed(lambda at=at, spec=spec: at.switch_page(spec.path).run())
        check(at, spec.title)
        rows.append((spec.title, "open", first, warm(at, spec.title)))
        if spec.title == "Spend":
            rows += _spend_changes(at, check, warm)
        elif spec.title == "Observability":
            rows += _observability_changes(at, check, warm)
        elif spec.title == "Live A/B":
            change = _timed(lambda at=at: at.selectbox(key="live_prompt").set_value(split_prompt).run())
            check(at, "Live A/B split")
            rows.append((spec.title, "the 300-day split", change, warm(at, "Live A/B the 300-day split")))
    return rows


# The warm reruns' CPU time (this process: the page's script and the database driver; the
# PostgreSQL server's own work is not in it), median per page and action: on a shared
# machine it moves with the load far less than the wall-clock time does.
warm_cpu: dict[str, float] = {}


def _spend_changes(at, check, warm) -> list:
    rows = []
    changes = [(f"by {by}", "breakdown_by", by) for by in ("person", "day", "prompt", "team", "model")]
    months = at.selectbox(key="breakdown_month").options
    teams = at.selectbox(key="breakdown_team").options
    changes += [("previous month", "breakdown_month", months[1]), ("one team", "breakdown_team", teams[1])]
    changes += [("burn-down of another team", "burndown_team", at.selectbox(key="burndown_team").options[1])]
    for label, key, value in changes:
        box = at.selectbox(key=key)
        took = _timed(lambda box=box, value=value: box.select(value).run())
        check(at, f"Spend {label}")
        rows.append(("Spend", label, took, warm(at, f"Spend {label}")))
    took = _timed(lambda: at.button(key="calls_older").click().run())
    check(at, "Spend calls page 2")
    rows.append(("Spend", "calls, next page", took, float("nan")))
    return rows


def _observability_changes(at, check, warm) -> list:
    rows = []
    changes = [
        ("90 days", lambda: at.slider(key="obs_days").set_value(90).run()),
        ("90 days, team x model", lambda: at.multiselect(key="obs_by").set_value(["team", "model"]).run()),
        ("90 days, by prompt", lambda: at.multiselect(key="obs_by").set_value(["prompt"]).run()),
        ("90 days per hour, by prompt", lambda: at.radio(key="obs_granularity").set_value("hour").run()),
        ("90 days per hour, team x model", lambda: at.multiselect(key="obs_by").set_value(["team", "model"]).run()),
    ]
    for label, change in changes:
        took = _timed(change)
        check(at, f"Observability {label}")
        rows.append(("Observability", label, took, warm(at, f"Observability {label}")))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_061)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--url", default=None, help="Database (default: a fresh SQLite file; it is wiped).")
    parser.add_argument("--reuse", action="store_true", help="Time the pages of a database built before (--url).")
    parser.add_argument("--only", action="append", default=[], help="Time only this page (by title; repeatable).")
    args = parser.parse_args()
    url = args.url or f"sqlite:///{tempfile.mkdtemp()}/pages.db"
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("QUORUM_DEMO", "1")
    reset_settings()
    engine = db.get_engine(url)
    kind = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    if args.reuse:
        with engine.connect() as conn:
            person = conn.execute(select(Person.id).where(Person.email == BENCH_EMAIL)).scalar_one()
            prompt = conn.execute(select(Prompt.id).where(Prompt.name == SPLIT_PROMPT)).scalar_one()
            calls = conn.execute(select(func.count()).select_from(GatewayCall)).scalar_one()
        built = {"bench_person": person, "split_prompt": prompt}
        print(f"{kind}: {calls:,} calls in {url}")
    else:
        built = build(url, args.calls)
        started = time.perf_counter()
        with db.write_session(engine) as session:
            result = rollups.rebuild_rollups(session, actor=Actor.system("bench"), since=None)
        rebuilt = time.perf_counter() - started
        print(
            f"{kind} ({url}): {args.calls:,} calls ({result.ledger_rows:,} ledger rows), {TEAMS} teams, "
            f"{PEOPLE} people; setup {built['setup_s']:.0f} s, bulk insert {built['insert_s']:.0f} s, "
            f"`rollups rebuild` {rebuilt:.1f} s into {result.usage_groups:,} + {result.call_groups:,} roll-ups"
        )
    rows = time_pages(built["bench_person"], built["split_prompt"], args.repeat, tuple(args.only))
    print(f"\n| page | action | first (ms) | warm, median of {args.repeat} (ms) | warm CPU (ms) | target |")
    print("|---|---|---|---|---|---|")
    for page, action, first, warm in rows:
        target = TARGETS.get(page)
        warm_text = "" if warm != warm else f"{warm:,.0f}"
        what = page if action == "open" else f"{page} {action}"
        cpu = f"{warm_cpu[what]:,.0f}" if what in warm_cpu else ""
        limit = f"<= {target} ms" if target else ""
        print(f"| {page} | {action} | {first:,.0f} | {warm_text} | {cpu} | {limit} |")
    print(f"load average: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()

"""Fixtures: a fresh, migrated database per test, on SQLite or on PostgreSQL.

With DATABASE_URL pointing at PostgreSQL the schema is migrated once per run and every
table is emptied before each test; otherwise each test gets its own SQLite file, copied
from a template migrated once.
"""

from __future__ import annotations

import os
import shutil

import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy import text

from core import clock, db, demo, migrate
from core.budgets import ledger_sums
from core.catalog.spec import MessageSpec, ModelParams, VariableSpec, VersionSpec
from core.gateway import policies
from core.gateway.wiring import set_gateway
from core.permissions import Actor, Role
from core.settings import PROJECT_ROOT, reset_settings
from core.simulator import SimulatorConfig
from tests.gateway_support import RecordingTransport, Server, make_gateway

# In CI the property tests run a fixed set of examples, so a red run can be reproduced;
# elsewhere each run explores new ones.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

BASE_URL = os.environ.get("DATABASE_URL", "")
ON_POSTGRES = BASE_URL.startswith("postgresql")
# Under pytest-xdist each worker gets a PostgreSQL database of its own ("test_gw0"...).
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
ENV_URL = f"{BASE_URL}_{WORKER}" if ON_POSTGRES and WORKER else BASE_URL


def pytest_collection_modifyitems(items):
    """Browser tests last: they are the slowest, and Playwright's event loop should not
    be alive while other tests use asyncio."""
    items.sort(key=lambda item: "tests/e2e/" in str(item.fspath))


APP = str(PROJECT_ROOT / "app.py")
REPO_ROOT = PROJECT_ROOT
PROMPTS_DIR = REPO_ROOT / "prompts"
TESTSETS_DIR = PROMPTS_DIR / "testsets"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch, tmp_path):
    """No test sees the developer's secrets file or writes the project's checkpoint files, and
    the clock is real unless a test sets it."""
    monkeypatch.setenv("QUORUM_SECRETS_FILE", str(tmp_path / "no-secrets.toml"))
    monkeypatch.setenv("QUORUM_DEMO", "1")
    # Checkpoint files are the test's own: never the project's data/checkpoints/.
    monkeypatch.setenv("QUORUM_AUDIT_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    # The simulated provider's bill is the test's own too.
    monkeypatch.setenv("QUORUM_SIMULATOR_BILLING_LOG", str(tmp_path / "simulator_billing.jsonl"))
    reset_settings()
    yield
    clock.set_clock(None)
    reset_settings()


@pytest.fixture(autouse=True)
def _folds_when_read(request, monkeypatch):
    """In this process, settled calls are folded into the roll-ups by their readers only, unless
    a test is marked `background_fold`: a fold that commits in the background between a test's
    own read and write (SQLite's deferred transaction of the `session` fixture) would fail that
    write at random. Servers the tests start in processes of their own fold as deployed."""
    if request.node.get_closest_marker("background_fold") is None:
        from core.gateway import rollup_folder

        monkeypatch.setattr(rollup_folder, "settled", lambda engine: None)


@pytest.fixture(scope="session")
def _template_db(tmp_path_factory) -> str:
    if ON_POSTGRES:
        if ENV_URL != BASE_URL:
            _create_database(BASE_URL, ENV_URL.rsplit("/", 1)[1])
        _commit_without_flush(ENV_URL)
        migrate.recreate(ENV_URL)
        db.dispose_engines()
        return ENV_URL
    path = tmp_path_factory.mktemp("template") / "quorum.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    db.dispose_engines()
    return str(path)


def _commit_without_flush(url: str) -> None:
    """A commit in the test database does not wait for the WAL to reach the disk.

    Each commit costs about 5 ms of fsync here, and the suite commits tens of thousands of
    times. Nothing a test checks depends on the flush: a commit stays atomic and visible
    to every other connection at once, and a killed server process (the crash tests) loses
    nothing committed; only a crash of the machine itself could lose the last commits."""
    from sqlalchemy import create_engine

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        name = conn.exec_driver_sql("SELECT current_database()").scalar()
        conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    admin.dispose()


def _empty_postgres(engine) -> None:
    """Every table emptied and every id sequence restarted, as a fresh database has them.

    DELETE with the foreign-key checks off (`session_replication_role = replica`, so the
    order of the tables does not matter) costs about 20 ms here, where a TRUNCATE of the 54
    tables cost about a second: TRUNCATE gives each table new files."""
    with engine.connect() as conn:
        tables = [t for t in engine.dialect.get_table_names(conn) if t != "alembic_version"]
    if not tables:
        return
    with engine.begin() as conn:
        superuser = conn.exec_driver_sql("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").scalar()
        if not superuser:  # the replica role needs a superuser; TRUNCATE does not
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
            return
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        conn.exec_driver_sql("; ".join(f'DELETE FROM "{t}"' for t in tables))
        conn.exec_driver_sql(
            "SELECT setval(c.oid, 1, false) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind = 'S' AND n.nspname = current_schema()"
        )


def _create_database(admin_url: str, name: str) -> None:
    from sqlalchemy import create_engine

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.exec_driver_sql("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).scalar()
        if not exists:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()


@pytest.fixture
def db_url(_template_db, tmp_path, monkeypatch) -> str:
    """The URL of an empty, migrated database that settings() and the pages now use."""
    if ON_POSTGRES:
        url = ENV_URL
        _empty_postgres(db.get_engine(url))
    else:
        target = tmp_path / "quorum.db"
        shutil.copy(_template_db, target)
        url = f"sqlite:///{target}"
    monkeypatch.setenv("DATABASE_URL", url)
    reset_settings()
    ledger_sums.clear_cache()  # on PostgreSQL every test has the same URL and restarts the ids
    migrate._upgraded.add(url)
    yield url
    db.dispose_engines()


@pytest.fixture
def session(db_url):
    # Deferred transactions: a test's session must not hold SQLite's write lock while
    # the page under test (another connection) writes.
    s = db.session()
    yield s
    s.close()


@pytest.fixture
def demo_data(session):
    """The full demo in this test's database (tests/demo_snapshot.py: seeded once per worker)."""
    from tests.demo_snapshot import seeded_demo

    return seeded_demo(session)


@pytest.fixture
def directory(session):
    """The demo teams and people; returns a lookup of actors by role (first person with it)."""
    demo.seed_directory(session)
    return People(session)


class People:
    """Actors of the seeded directory, by role or by e-mail."""

    def __init__(self, session):
        from core.identity import people as identity

        self._identity = identity
        self._session = session

    def by_email(self, email: str) -> Actor:
        return self._identity.actor_for_email(self._session, email)

    def with_role(self, role: Role) -> Actor:
        for _name, email, roles, _teams in demo.PEOPLE:
            if role in roles:
                return self.by_email(email)
        raise LookupError(role)

    @property
    def admin(self) -> Actor:
        return self.with_role(Role.ADMIN)


@pytest.fixture
def simple_version() -> VersionSpec:
    return VersionSpec(
        messages=(
            MessageSpec("system", "You answer questions about {{ product }}."),
            MessageSpec("user", "{{ question }} (attempt {{ attempt }})"),
        ),
        variables=(
            VariableSpec("product", "string"),
            VariableSpec("question", "string"),
            VariableSpec("attempt", "integer"),
        ),
        model="gpt-4o-mini",
        params=ModelParams(temperature=0.2, max_tokens=200),
    )


# ---- the gateway's HTTP tests: a real server on a free port over a recording simulator -----


@pytest.fixture
def server(db_url):
    server = Server().start()
    yield server
    server.stop()
    set_gateway(None)
    policies.forget()


@pytest.fixture
def sim():
    return RecordingTransport(SimulatorConfig(retry_after_s=0.01))


@pytest.fixture
def gateway(sim, directory):
    policies.forget()
    gw = make_gateway(sim)
    set_gateway(gw)
    return gw


@pytest.fixture(params=["serial", "parallel"])
def verify_mode(request, monkeypatch):
    """Audit tests run twice: with the serial walk, and with ranges of two events checked by three workers."""
    from core.audit import ranges, verify

    workers = 1 if request.param == "serial" else 3
    monkeypatch.setattr(verify, "default_workers", lambda: workers)
    monkeypatch.setattr(ranges, "MIN_RANGE", 2)
    return request.param

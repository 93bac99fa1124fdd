"""The real product in a real browser: the app served as `quorum run` serves it, on a free
port with a fresh demo database, driven by Playwright through Debian's Chromium.

On the PostgreSQL pass the server gets its own database (`<name>_e2e`), so the other
tests' per-test truncation never pulls the data from under it.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from core.settings import PROJECT_ROOT
from tests.e2e.timing import TIMES_TO_USABLE, record_time_to_usable, start_clock

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(os.environ.get("QUORUM_SCREENSHOTS_DIR") or PROJECT_ROOT / "docs" / "screenshots")
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _e2e_database_url(tmp_dir: Path, suffix: str = "e2e") -> str:
    """SQLite in `tmp_dir`, or on the PostgreSQL pass a fresh database `<name>_<suffix>`.

    Each server gets its own suffix: recreating a database drops it from under a server
    still running on it.
    """
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgresql"):
        return f"sqlite:///{tmp_dir / f'{suffix}.db'}"
    from sqlalchemy import create_engine

    base, name = url.rsplit("/", 1)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    e2e_name = f"{name}_{suffix}{('_' + worker) if worker else ''}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{e2e_name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{e2e_name}"')
    admin.dispose()
    return f"{base}/{e2e_name}"


@dataclass(frozen=True)
class Server:
    base: str
    database_url: str
    port: int


def require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium is not installed at {CHROMIUM}; .ci/run installs it")
        pytest.skip("Chromium is not installed (apt-get install chromium)")


@contextmanager
def start_server(
    tmp: Path,
    env_overrides: dict[str, str],
    *,
    port: int | None = None,
    secrets_file: Path | None = None,
    db_suffix: str = "e2e",
) -> Iterator[Server]:
    """Seed a fresh database with the demo data and serve Quorum on it until the block ends.

    `env_overrides` go over the test run's environment (e.g. QUORUM_DEMO). `secrets_file`
    is read both by Quorum's settings and by Streamlit itself (`st.login` takes its [auth]
    section from Streamlit's secrets); without one, neither sees any secrets. The server's
    log is checked for tracebacks at the end.
    """
    secrets = secrets_file or tmp / "no-secrets.toml"
    env = {
        **os.environ,
        "DATABASE_URL": _e2e_database_url(tmp, db_suffix),
        "QUORUM_SECRETS_FILE": str(secrets),
        # The simulated provider's bill of this server, not the project's data/ file.
        "QUORUM_SIMULATOR_BILLING_LOG": str(tmp / "simulator_billing.jsonl"),
        **env_overrides,
    }
    subprocess.run(
        [sys.executable, "-m", "core.cli.main", "demo", "seed"],
        cwd=PROJECT_ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    port = port or free_port()
    log_path = tmp / "server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pages.ui.server",
                "run",
                "app.py",
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--server.headless",
                "true",
                "--secrets.files",
                str(secrets),
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, process, log_path)
        yield Server(base, env["DATABASE_URL"], port)
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """A running Quorum in demo mode, seeded with the demo data."""
    require_chromium()
    with start_server(tmp_path_factory.mktemp("e2e"), {"QUORUM_DEMO": "1"}) as running:
        yield running


def _wait_until_up(base: str, process, log_path: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("server exited:\n" + log_path.read_text()[-3000:])
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError("server did not come up:\n" + log_path.read_text()[-3000:])


@pytest.fixture(scope="module")
def browser():
    # Module scope: Playwright's sync API keeps an event loop running while it is open.
    from playwright.sync_api import sync_playwright

    require_chromium()  # before the launch: a module whose own fixtures come later skips too
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield instance
        instance.close()


LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]"}


def keep_on_this_machine(context) -> list[str]:
    """Block every request to another host; the returned list collects what was attempted.

    The app promises to make no request that leaves the machine (fonts, icons, telemetry):
    a test that ends with an entry here fails."""
    attempted: list[str] = []

    def route(request_route):
        url = request_route.request.url
        if url.startswith(("data:", "blob:")) or httpx.URL(url).host in LOCAL_HOSTS:
            request_route.continue_()
        else:
            attempted.append(url)
            request_route.abort()

    context.route("**/*", route)
    return attempted


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=server.base)
    outside = keep_on_this_machine(context)
    tab = context.new_page()
    # Generous: on a loaded two-core machine a Streamlit run can take many seconds.
    tab.set_default_timeout(60_000)
    yield tab
    context.close()
    assert not outside, f"the page asked for something outside this machine: {sorted(set(outside))}"


def sign_in(page, name: str) -> None:
    """Demo sign-in as the seeded person called `name`."""
    page.goto("/")
    page.get_by_text("Sign in to Quorum (demo)").wait_for()
    page.get_by_role("combobox").first.click()
    page.get_by_role("option", name=re.compile(f"^{re.escape(name)} ")).click()
    start_clock(page)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Signed in as").wait_for()
    record_time_to_usable(page, "Home")


def open_page(page, title: str) -> None:
    """Open a page from the sidebar, as a person would, and record its time to usable."""
    from pages.ui.registry import PAGES

    url_path = next(Path(p.path).stem for p in PAGES if p.title == title)
    start_clock(page)
    page.locator('[data-testid="stSidebarNavLink"]', has_text=title).first.click()
    page.wait_for_url(re.compile(f"/{url_path}(\\?.*)?$"))  # a demo session carries ?as=…
    record_time_to_usable(page, title)
    settle(page)


def settle(page) -> None:
    """Wait until Streamlit has finished the run (no 'Running...' indicator)."""
    page.wait_for_timeout(500)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=60_000)
    page.locator('[data-testid="stMain"] h1').first.wait_for()
    # Elements of the previous run linger, marked stale, until the new run replaces them.
    page.wait_for_function("document.querySelectorAll('[data-stale=\"true\"]').length === 0", timeout=60_000)


def assert_no_errors(page, where: str) -> None:
    exceptions = page.locator('[data-testid="stException"]')
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert exceptions.count() == 0, f"{where}: exception shown: {exceptions.first.inner_text()}"
    assert errors.count() == 0, f"{where}: error shown: {errors.first.inner_text()}"


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def choose(page, label: str, text: str) -> None:
    """Pick the first option matching `text` in the selectbox called `label`, as a keyboard user.

    Typing filters the options; the dropdown list itself re-renders while the mouse moves,
    which makes clicking an option flaky.
    """
    box = page.get_by_role("combobox", name=label)
    box.click()
    box.fill(text)
    box.press("Enter")
    settle(page)


def pytest_sessionfinish(session):
    worker_output = getattr(session.config, "workeroutput", None)
    if worker_output is not None:  # an xdist worker: hand the times to the controller
        worker_output["times_to_usable"] = TIMES_TO_USABLE


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    for title, seconds in node.workeroutput.get("times_to_usable", {}).items():
        TIMES_TO_USABLE.setdefault(title, []).extend(seconds)


def pytest_terminal_summary(terminalreporter):
    if not TIMES_TO_USABLE:
        return
    write = terminalreporter.write_line
    terminalreporter.section("time to usable per page (browser, from the click to a calm page)")
    write(f"{'page':<24} {'opens':>5} {'median s':>9} {'max s':>7}")
    for title, seconds in sorted(TIMES_TO_USABLE.items()):
        ordered = sorted(seconds)
        write(f"{title:<24} {len(ordered):>5} {ordered[len(ordered) // 2]:>9.2f} {ordered[-1]:>7.2f}")

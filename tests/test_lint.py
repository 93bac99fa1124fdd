"""The code passes the linter with the rule set in pyproject.toml ([tool.ruff])."""

from __future__ import annotations

import subprocess
import sys

from core.settings import PROJECT_ROOT


def test_ruff_finds_nothing():
    run = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "core", "pages", "tests", "bench", "docs", "app.py"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_code_is_laid_out_by_the_formatter():
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "format",
            "--check",
            "--no-cache",
            "core",
            "pages",
            "tests",
            "bench",
            "docs",
            "app.py",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, "run `ruff format`; it would change:\n" + run.stdout + run.stderr


def test_mypy_finds_nothing_in_the_checked_contexts():
    """Strict typing on the contexts [tool.mypy] checks; the rest join as they are cleaned.

    With mypy's own cache (.mypy_cache, which it checks against every file's contents), so
    a second run (CI's PostgreSQL pass, a developer's) rechecks only what changed."""
    run = subprocess.run(
        [sys.executable, "-m", "mypy"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr

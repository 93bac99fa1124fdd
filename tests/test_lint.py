"""The code passes the linter with the rule set in pyproject.toml ([tool.ruff])."""

from __future__ import annotations

import subprocess
import sys

from core.settings import PROJECT_ROOT


def test_ruff_finds_nothing():
    run = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "core", "pages", "tests", "bench",
                          "docs", "app.py"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr

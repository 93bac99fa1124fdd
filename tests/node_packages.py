"""Node.js packages the tests run (a local OpenID provider, the official OpenAI Node SDK),
installed with `npm ci` from the lock file committed beside each package.json."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest


def node_and_npm(needed_for: str) -> tuple[str, str]:
    """Node.js and npm, or a skip (a failure in CI, where they must be there)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not (node and npm):
        message = f"Node.js and npm are needed for {needed_for}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return node, npm


def npm_ci(npm: str, folder: Path, package: str) -> None:
    """`npm ci` in `folder` from its lock file, unless the pinned `package` is already installed."""
    wanted = json.loads((folder / "package.json").read_text())["dependencies"][package]
    installed = folder / "node_modules" / package / "package.json"
    if installed.exists() and json.loads(installed.read_text())["version"] == wanted:
        return
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=folder, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"npm ci failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"

"""Shared fixtures for the prompt catalog tests."""

from pathlib import Path

import pytest

from core.catalog.spec import MessageSpec, ModelParams, VariableSpec, VersionSpec

REPO_ROOT = Path(__file__).resolve().parent.parent
PROMPTS_DIR = REPO_ROOT / "prompts"
TESTSETS_DIR = PROMPTS_DIR / "testsets"


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

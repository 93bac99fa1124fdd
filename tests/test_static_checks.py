"""Static checks at submission: template problems, secrets, schemas and parameters."""

import dataclasses

import pytest

from core.catalog.checks import ERROR, WARNING, has_errors, static_checks
from core.catalog.files import load_directory
from core.catalog.spec import MessageSpec, ModelParams, ToolSpec, VariableSpec, VersionSpec
from core.guardrails import find_secrets
from tests.conftest import PROMPTS_DIR

# Built from parts so this file itself holds no key-shaped string for scanners to trip on.
OPENAI_KEY = "sk-proj-" + "Ab3dEf6hIj9lMn2pQr5t" + "Uv8xYz1bCd4fGh7jKl0n" + "T3BlbkFJ" + "Pq3sTu6wXy9aBc2eFg5i"


def version_with(*contents, variables=(), **changes):
    base = VersionSpec(
        messages=tuple(MessageSpec("user", c) for c in contents),
        variables=tuple(VariableSpec(n, "string") for n in variables),
        model="gpt-4o-mini",
    )
    return dataclasses.replace(base, **changes)


def codes(findings):
    return {f.code for f in findings}


def test_seed_prompts_have_no_findings():
    for prompt, version in load_directory(PROMPTS_DIR):
        assert static_checks(version) == [], prompt.name


def test_plain_english_triggers_nothing():
    text = (
        "Please reset your password from the sign-in page, then ask your admin for a new "
        "access token if the API still says 'unauthorised'. Keys rotate every 90 days."
    )
    assert find_secrets(text) == []
    assert static_checks(version_with(text)) == []


def test_openai_key_in_template_is_found_and_not_echoed():
    findings = static_checks(version_with(f"Use the key {OPENAI_KEY} when calling."))
    [finding] = findings
    assert (finding.severity, finding.code) == (ERROR, "secret-in-template")
    assert "OpenAI" in finding.message
    assert OPENAI_KEY not in finding.message
    assert OPENAI_KEY[8:20] not in finding.message


@pytest.mark.parametrize(
    "secret",
    [
        "AKIA" + "IOSFODNN7EXAMPLE",
        "ghp_" + "x" * 36,
        "xoxb-" + "123456789012-1234567890123-" + "abcdefghijABCDEFGHIJabcd",
        "-----BEGIN RSA " + "PRIVATE KEY-----",
        "sk-proj-" + "abcDEF123_" * 4,
    ],
)
def test_other_secret_kinds_are_found(secret):
    assert has_errors(static_checks(version_with(f"token: {secret}")))


def test_secret_in_tool_schema_is_found():
    tool = ToolSpec("lookup", "Look up an order", {"type": "object", "properties": {"k": {"default": OPENAI_KEY}}})
    findings = static_checks(dataclasses.replace(version_with("hi"), tools=(tool,)))
    assert codes(findings) == {"secret-in-tool-schema"}
    assert OPENAI_KEY not in findings[0].message


def test_undeclared_and_unused_variables():
    findings = static_checks(version_with("Hello {{ name }}", variables=["unused"]))
    by_code = {f.code: f for f in findings}
    assert by_code["undeclared-variable"].severity == ERROR and "'name'" in by_code["undeclared-variable"].message
    assert by_code["unused-variable"].severity == WARNING and "'unused'" in by_code["unused-variable"].message


def test_template_syntax_error_names_message_and_line():
    [finding] = static_checks(version_with("ok", "one\ntwo {% if %}"))
    assert finding.code == "template-syntax" and "message 1 (user), line 2" in finding.message


def test_dunder_access_is_flagged():
    assert "unsafe-attribute" in codes(static_checks(version_with("{{ x.__class__ }}", variables=["x"])))


def test_invalid_response_schema_and_tool_schema():
    params = ModelParams(
        response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "nonsense"}}}
    )
    tool = ToolSpec("create_ticket", "Open a ticket", {"type": "object", "required": "title"})
    findings = static_checks(version_with("Reply in JSON.", params=params, tools=(tool,)))
    assert codes(findings) == {"invalid-response-schema", "invalid-tool-schema"}


@pytest.mark.parametrize(
    ("params", "code"),
    [
        (ModelParams(temperature=2.5), "temperature-range"),
        (ModelParams(temperature=-0.1), "temperature-range"),
        (ModelParams(max_tokens=0), "max-tokens"),
        (ModelParams(max_tokens=-5), "max-tokens"),
    ],
)
def test_parameter_ranges(params, code):
    assert codes(static_checks(version_with("hi", params=params))) == {code}


def test_parameter_bounds_are_inclusive():
    assert static_checks(version_with("hi", params=ModelParams(temperature=2.0, max_tokens=1))) == []

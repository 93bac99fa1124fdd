"""Test sets: every seed set is valid, large enough, and renders against its prompt."""

import pytest

from core.catalog.files import load_directory
from core.catalog.render import render_messages
from core.catalog.testsets import (
    case_variable_problems,
    cases_from_csv,
    cases_to_csv,
    dump_testset,
    load_testset_directory,
    load_testset_file,
    load_testset_text,
)
from core.errors import ValidationError
from tests.conftest import PROMPTS_DIR, TESTSETS_DIR

GOOD_SET = """\
prompt: faq-answer
cases:
  - id: hours
    variables: {question: 'When are you open?'}
    assertions:
      - {type: icontains, value: '08:00'}
      - {type: llm-rubric, value: Polite and short., weight: 2}
"""


@pytest.fixture(scope="module")
def prompts():
    return {prompt.name: version for prompt, version in load_directory(PROMPTS_DIR)}


@pytest.fixture(scope="module")
def testsets():
    return load_testset_directory(TESTSETS_DIR)


def test_every_seed_prompt_has_a_testset_of_at_least_20_cases(prompts, testsets):
    assert {t.prompt for t in testsets} == set(prompts)
    for testset in testsets:
        assert len(testset.cases) >= 20, testset.prompt


def test_every_case_renders_against_its_prompt(prompts, testsets):
    for testset in testsets:
        version = prompts[testset.prompt]
        assert case_variable_problems(testset, version, testset.prompt) == []
        for case in testset.cases:
            assert render_messages(version, case.variables), case.id


def test_triage_asks_for_clarification_on_a_vague_ticket(testsets):
    triage = next(t for t in testsets if t.prompt == "ticket-triage")
    vague = next(c for c in triage.cases if c.variables["body"] == "it doesn't work")
    assert any(a.path == "needs_clarification" and a.value is True for a in vague.assertions)


def test_dump_then_load_is_identical(testsets):
    for testset in testsets:
        assert load_testset_text(dump_testset(testset)) == testset


def test_csv_round_trip_keeps_cases_and_types(prompts, testsets):
    for testset in testsets:
        variables = prompts[testset.prompt].variables
        assert cases_from_csv(cases_to_csv(testset.cases, variables), variables) == list(testset.cases)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (("type: icontains", "type: fuzzy-match"), "cases.0.assertions.0.type: 'fuzzy-match' is not one of"),
        (("type: icontains, value: '08:00'", "type: regex, value: '(['"), "invalid regex"),
        (("id: hours", "id: Hours Case"), "cases.0.id"),
        # YAML's floats that no JSON can hold: a case's variables are stored and sent as JSON.
        (("{question: 'When are you open?'}", "{question: 'When?', limit: .nan}"), ".nan is not a number JSON"),
        (("{question: 'When are you open?'}", "{question: 'When?', limit: -.inf}"), "-.inf is not a number JSON"),
        (
            ("cases:\n", "cases:\n  - id: hours\n    variables: {}\n    assertions: [{type: is-json}]\n"),
            "id is used by an earlier case",
        ),
    ],
)
def test_bad_testset_is_refused_with_file_and_reason(tmp_path, change, reason):
    path = tmp_path / "faq-answer.yaml"
    path.write_text(GOOD_SET.replace(*change), encoding="utf-8")
    with pytest.raises(ValidationError, match="faq-answer.yaml") as raised:
        load_testset_file(path)
    assert reason in str(raised.value)


def test_directory_with_one_bad_file_returns_nothing(tmp_path):
    (tmp_path / "faq-answer.yaml").write_text(GOOD_SET, encoding="utf-8")
    (tmp_path / "other.yaml").write_text("prompt: other\ncases: [", encoding="utf-8")
    with pytest.raises(ValidationError, match="other.yaml: line"):
        load_testset_directory(tmp_path)


def test_csv_errors_name_row_and_column(prompts):
    variables = prompts["marketing-copy-review"].variables
    header = (
        "id,description,pass_threshold,var.copy_text,var.channel,var.max_characters,"
        "var.brand_voice,var.approved_facts,assertions\n"
    )
    row = 'ok-case,,,Hello,email,seventy,[],[],"[{""type"": ""is-json""}]"\n'
    with pytest.raises(ValidationError, match=r"row 2: var.max_characters: not valid JSON"):
        cases_from_csv(header + row, variables)
    with pytest.raises(ValidationError, match="column 'var.tone' is not a declared variable"):
        cases_from_csv(header.replace("assertions", "var.tone,assertions") + row, variables)

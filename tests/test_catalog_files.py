"""The prompt file format: seeds load, round trips keep the hash, bad files are refused."""

import dataclasses

import pytest

from core.catalog.files import dump_prompt_file, load_directory, load_prompt_file, load_prompt_text
from core.catalog.spec import RISK_TIERS, content_hash, version_content, version_from_content
from core.errors import ValidationError
from tests.conftest import PROMPTS_DIR

SEED_NAMES = {
    "support-answer",
    "document-summary",
    "ticket-triage",
    "marketing-copy-review",
    "contract-clause-extract",
    "sql-explain",
}

GOOD_FILE = """\
name: faq-answer
team: Support
purpose: Answer a frequently asked question.
risk_tier: low
data_classification: public
model: gpt-4o-mini
params: {temperature: 0.2, max_tokens: 200}
variables:
  question: {type: string, description: The customer's question.}
messages:
  - role: user
    content: "{{ question }}"
"""


def write(tmp_path, name, text):
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_seed_prompt_loads_with_its_metadata():
    loaded = load_directory(PROMPTS_DIR)
    assert {prompt.name for prompt, _ in loaded} == SEED_NAMES
    assert {prompt.risk_tier for prompt, _ in loaded} == set(RISK_TIERS)
    support = next(v for p, v in loaded if p.name == "support-answer")
    assert [tool.name for tool in support.tools] == ["create_ticket"]
    triage = next(v for p, v in loaded if p.name == "ticket-triage")
    assert triage.params.response_format["type"] == "json_schema"


@pytest.mark.parametrize("name", sorted(SEED_NAMES))
def test_dump_then_load_keeps_the_content_hash(name):
    prompt, version = load_prompt_file(PROMPTS_DIR / f"{name}.yaml")
    again_prompt, again_version = load_prompt_text(dump_prompt_file(prompt, version))
    assert again_prompt == prompt
    assert content_hash(again_version) == content_hash(version)
    assert again_version.change_note == version.change_note


def test_hash_ignores_key_order_yaml_style_and_change_note(tmp_path):
    _, version = load_prompt_text(GOOD_FILE)
    reordered = """\
messages: [{content: "{{ question }}", role: user}]
variables: {question: {description: "The customer's question.", type: string}}
params: {max_tokens: 200, temperature: 0.2}
model: gpt-4o-mini
data_classification: public
risk_tier: low
purpose: Answer a frequently asked question.
team: Support
name: faq-answer
change_note: Same content, written differently.
"""
    _, same = load_prompt_text(reordered)
    assert content_hash(same) == content_hash(version)
    assert content_hash(dataclasses.replace(version, change_note="other")) == content_hash(version)


def test_hash_changes_with_content_and_treats_1_and_1_0_alike():
    _, version = load_prompt_text(GOOD_FILE)
    content = version_content(version)
    content["params"]["temperature"] = 1
    one = version_from_content(content)
    content["params"]["temperature"] = 1.0
    assert content_hash(version_from_content(content)) == content_hash(one)
    assert content_hash(one) != content_hash(version)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "faq-answer", GOOD_FILE.replace("team: Support", "team: [Support"))
    with pytest.raises(ValidationError) as raised:
        load_prompt_file(path)
    assert str(path) in str(raised.value)
    assert "line " in str(raised.value)


def test_missing_field_is_named(tmp_path):
    path = write(tmp_path, "faq-answer", GOOD_FILE.replace("risk_tier: low\n", ""))
    with pytest.raises(ValidationError, match="'risk_tier' is a required property") as raised:
        load_prompt_file(path)
    assert str(raised.value).startswith(str(path))


def test_unknown_variable_type_is_named_with_its_path(tmp_path):
    path = write(tmp_path, "faq-answer", GOOD_FILE.replace("{type: string,", "{type: date,"))
    with pytest.raises(ValidationError) as raised:
        load_prompt_file(path)
    message = str(raised.value)
    assert f"{path}: variables.question.type: 'date' is not one of" in message


def test_duplicate_key_is_refused(tmp_path):
    text = GOOD_FILE.replace("variables:\n", "variables:\n  question: {type: integer}\n")
    with pytest.raises(ValidationError, match="duplicate key 'question'"):
        load_prompt_file(write(tmp_path, "faq-answer", text))


def test_name_must_match_file_name(tmp_path):
    with pytest.raises(ValidationError, match="does not match the file name"):
        load_prompt_file(write(tmp_path, "other-name", GOOD_FILE))


def test_directory_with_one_bad_file_returns_nothing_and_lists_every_problem(tmp_path):
    write(tmp_path, "faq-answer", GOOD_FILE)
    write(tmp_path, "broken", "name: broken\nteam: [\n")
    write(tmp_path, "no-team", GOOD_FILE.replace("faq-answer", "no-team").replace("team: Support\n", ""))
    with pytest.raises(ValidationError) as raised:
        load_directory(tmp_path)
    problems = raised.value.problems
    assert len(problems) == 2
    assert any("broken.yaml" in p and "YAML syntax error" in p for p in problems)
    assert any("no-team.yaml" in p and "'team'" in p for p in problems)


def test_good_directory_loads(tmp_path):
    write(tmp_path, "faq-answer", GOOD_FILE)
    [(prompt, version)] = load_directory(tmp_path)
    assert prompt.name == "faq-answer" and version.variable_names == ("question",)

"""JSON log lines: one per gateway call and per governance action, each parses, none holds a secret or payload text."""

from __future__ import annotations

import io
import json
import logging
import random
import string

import openai
import pytest

from core.audit import record as audit
from core.gateway import policies
from core.identity import people as teams
from core.ops import logs, names
from core.settings import ConfigError, load_settings, reset_settings
from tests.gateway_support import ADMIN, MODEL, client, new_key, team_id

PAYLOAD = "Tell me about the lighthouse keeper Marguerite Quillfeather and her seventeen herons"


@pytest.fixture
def json_lines():
    """Logging as QUORUM_LOG_FORMAT=json sets it up, into a buffer; the parsed lines."""
    buffer = io.StringIO()
    levels = {name: logging.getLogger(name).level for name in ("", logs.CALL_LOGGER, logs.AUDIT_LOGGER)}
    names.forget()
    logs.configure("json", stream=buffer)

    def lines() -> list[dict]:
        return [json.loads(line) for line in buffer.getvalue().splitlines()]

    lines.raw = buffer  # type: ignore[attr-defined]
    yield lines
    logs.configure("text")
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _canary_key() -> str:
    return "sk-proj-" + "".join(random.choice(string.ascii_letters + string.digits) for _ in range(44))


def test_each_call_and_each_governance_action_is_one_json_line(server, gateway, session, directory, json_lines):
    policies.set_team_policy(
        session=session, actor=ADMIN, team_id=team_id(session), pii_action="redact", moderation="off"
    )
    key = new_key(session)
    answer = client(server, key).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": PAYLOAD}])
    canary = _canary_key()
    with pytest.raises(openai.BadRequestError):
        client(server, key).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"{PAYLOAD}: my key is {canary}"}]
        )
    teams.create_team(session=session, actor=ADMIN, name="Lighthouses")

    lines = json_lines()
    raw = json_lines.raw.getvalue()
    assert canary not in raw and canary[8:40] not in raw and key.secret not in raw
    assert "Marguerite" not in raw and "herons" not in raw
    assert answer.choices[0].message.content[:30] not in raw
    calls = [line for line in lines if line.get("event") == "gateway.call"]
    assert [(c["outcome"], c["http_status"], c["team"], c["model"]) for c in calls] == [
        ("ok", 200, "Support", MODEL),
        ("blocked", 400, "Support", MODEL),
    ]
    ok = calls[0]
    assert ok["input_tokens"] > 0 and ok["output_tokens"] > 0 and ok["cost_micro"] > 0 and ok["latency_ms"] > 0
    assert ok["level"] == "info" and ok["request_id"] and ok["time"].endswith("+00:00")
    actions = [line["action"] for line in lines if line.get("event") == "audit"]
    # The key's creation and the policy change were before logging started; the team's after it.
    assert "team.create" in actions and "gateway.call" not in actions
    [created] = [line for line in lines if line.get("action") == "team.create"]
    assert created["actor"] == ADMIN.ref and created["target_type"] == "team" and created["seq"] > 0


def test_an_action_rolled_back_is_not_logged_and_one_committed_is(session, directory, json_lines):
    audit.record(session, actor=ADMIN, action="team.rename", target_type="team", target_id=1)
    session.rollback()
    assert [line for line in json_lines() if line.get("event") == "audit"] == []
    audit.record(session, actor=ADMIN, action="team.rename", target_type="team", target_id=2, after={"name": PAYLOAD})
    session.commit()
    [line] = [line for line in json_lines() if line.get("event") == "audit"]
    assert (line["action"], line["target_id"]) == ("team.rename", "2")
    assert "Marguerite" not in json_lines.raw.getvalue()


def test_an_error_line_names_the_exception_but_not_its_message(json_lines):
    try:
        raise ValueError(f"upstream said: {PAYLOAD}")
    except ValueError:
        logging.getLogger("quorum.gateway").exception("the call failed")
    [line] = json_lines()
    assert line["error"] == "ValueError" and line["level"] == "error" and "stack" in line
    assert "Marguerite" not in json_lines.raw.getvalue()


def test_text_stays_the_default_and_unknown_formats_are_refused():
    assert load_settings({}).log_format == "text"
    assert load_settings({"QUORUM_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(ConfigError, match="QUORUM_LOG_FORMAT"):
        load_settings({"QUORUM_LOG_FORMAT": "xml"})


def test_a_cli_command_logs_its_governance_action_as_json(db_url, monkeypatch, capsys):
    from core.cli.main import main

    monkeypatch.setenv("QUORUM_LOG_FORMAT", "json")
    reset_settings()
    levels = {name: logging.getLogger(name).level for name in ("", logs.CALL_LOGGER, logs.AUDIT_LOGGER)}
    try:
        assert main(["people", "add", "--email", "keeper@example.com", "--name", "Lighthouse Keeper"]) == 0
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    finally:
        logs.configure("text")
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    [added] = [line for line in lines if line.get("event") == "audit"]
    assert added["action"] == "person.create" and added["actor"] == "system:cli"

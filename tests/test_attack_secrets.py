"""Canary secrets, sent the way an application team or an insider would send them.

Each canary is a real-format credential built at run time (never a literal in the
repository). It goes through every field of every gateway endpoint, over HTTP with the
official openai SDK and with raw httpx, and through every core function that stores
text. Then the whole database (every column of every table, read with plain SQL), the
audit checkpoint file and the log are searched: no raw copy may be anywhere, and the
recording simulator must never have received one.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import random
import string
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import MetaData, select

from core import db
from core.audit import checkpoints as audit_checkpoints
from core.budgets import config as budget_config
from core.budgets import prices
from core.catalog import store, workflow
from core.catalog.demo_seed import seed_catalog
from core.catalog.spec import MessageSpec, PromptSpec, VariableSpec
from core.catalog.testsets import Assertion, TestCaseSpec, TestSetSpec
from core.errors import QuorumError, ValidationError
from core.experiments import service as experiment_service
from core.experiments import testset_store
from core.experiments.runner import VariantChoice
from core.gateway import policies
from core.gateway.held import decide
from core.identity import key_auth, keys
from core.identity import people as identity
from core.retention import holds
from core.settings import reset_settings
from tests.audit_helpers import SYSTEM, TEST_KEY
from tests.gateway_support import ADMIN, MODEL, client, new_key, team_id

TOM, LENA = "tom.becker@example.com", "lena.fischer@example.com"


@dataclass(frozen=True)
class Canary:
    rule: str
    kind_name: str  # as a refusal names it
    secret: str
    needle: str  # the part no masked form shows: finding it anywhere means a raw copy


def _random(alphabet: str, length: int, rng=random.SystemRandom()) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


def make_canaries() -> list[Canary]:
    letters = string.ascii_letters + string.digits
    openai_key = "sk-proj-" + _random(letters, 44)
    github = "ghp_" + _random(letters, 36)
    aws = "AKIA" + _random(string.ascii_uppercase + string.digits, 16)
    pem_body = _random(letters, 64)
    pem = "-----BEGIN RSA " + "PRIVATE KEY-----\n" + pem_body + "\n-----END RSA " + "PRIVATE KEY-----"
    return [
        Canary("secret.openai_api_key", "an OpenAI API key", openai_key, openai_key[8:-4]),
        Canary("secret.github_token", "a GitHub token", github, github[4:-4]),
        Canary("secret.aws_access_key_id", "an AWS access key id", aws, aws[4:-4]),
        Canary("secret.private_key", "a private key", pem, pem_body),
    ]


CANARY_KINDS = ["openai", "github", "aws", "pem"]


@pytest.fixture(params=CANARY_KINDS)
def canary(request) -> Canary:
    return make_canaries()[CANARY_KINDS.index(request.param)]


@pytest.fixture
def checkpoint_dir(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    monkeypatch.setenv("QUORUM_AUDIT_CHECKPOINT_DIR", str(folder))
    monkeypatch.setenv("QUORUM_AUDIT_SIGNING_KEY", TEST_KEY)
    reset_settings()
    return folder


class LogCapture(logging.Handler):
    """Every log record of the server side, at every level.

    The client's own libraries (the openai SDK, httpx) log the URLs they call, and the
    access log of whatever server or proxy fronts the gateway holds request paths: a
    secret a caller puts in a URL is in those, out of Quorum's reach. What Quorum logs
    itself, and the server's error log, are searched.
    """

    LOGGERS = ("", "uvicorn", "uvicorn.error", "core", "starlette")
    CLIENT_SIDE = ("httpx", "httpcore", "openai")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in self.CLIENT_SIDE:
            return
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


@pytest.fixture
def captured_log():
    handler = LogCapture()
    saved = []
    for name in LogCapture.LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield handler
    for logger, level in saved:
        logger.removeHandler(handler)
        logger.setLevel(level)


# ---- where a raw copy could hide --------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _reflected(url: str) -> MetaData:
    # What the database holds, read from the database itself (not from the models): a
    # table or column the models do not know is searched too.
    metadata = MetaData()
    metadata.reflect(db.get_engine(url))
    return metadata


def raw_copies_in_database(needles: list[str]) -> list[str]:
    """``table.column`` of every stored value holding a needle: every table, every column."""
    engine = db.get_engine()
    metadata = _reflected(str(engine.url))
    hits = []
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                for column, value in zip(table.columns, row):
                    if value is not None and any(needle in str(value) for needle in needles):
                        hits.append(f"{table.name}.{column.name}")
    return sorted(set(hits))


def assert_nowhere(needles: list[str], *, sim=None, log=None, checkpoint_dir=None) -> None:
    assert raw_copies_in_database(needles) == []
    if sim is not None:
        sent = [(path, body.decode(errors="replace")) for path, body in sim.received]
        assert [path for path, body in sent if any(needle in body for needle in needles)] == []
    if log is not None:
        assert [line for line in log.lines if any(needle in line for needle in needles)] == []
    if checkpoint_dir is not None:
        for file in checkpoint_dir.glob("*"):
            assert not any(needle in file.read_text() for needle in needles)


def refusal(error: dict, field: str, canary: Canary) -> str:
    """How a 400 reads: the outcome the tests want, or what is wrong with it."""
    if (error.get("code"), error.get("param")) != ("guardrail_blocked", canary.rule):
        return f"refused otherwise: {error.get('code')} {error.get('param')}"
    if canary.needle in json.dumps(error):
        return "refused, quoting the secret"
    if f" in {field};" not in error["message"]:
        return f"refused without naming the field: {error['message']}"
    return "refused, naming the field"


# ---- every field of every gateway endpoint ---------------------------------------------------

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Find an order by its id",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "description": "The id", "enum": ["A-1", "B-2"]}},
            "required": ["order_id"],
        },
    },
}


def _tool(**changes):
    tool = json.loads(json.dumps(WEATHER_TOOL))
    for path, value in changes.items():
        target = tool["function"]
        *parents, last = path.split("__")
        for part in parents:
            target = target[part]
        target[last] = value
    return tool


def chat_cases(s: str) -> list[tuple[str, dict]]:
    """(the field a refusal must name, the SDK's create() arguments) for a secret ``s``."""
    user = {"role": "user", "content": "Where is my order?"}
    asked = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "lookup_order", "arguments": json.dumps({"order_id": s})},
            }
        ],
    }
    schema = {
        "type": "json_schema",
        "json_schema": {
            "name": "answer",
            "description": f"key {s}",
            "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
        },
    }
    schema_property = {
        "type": "json_schema",
        "json_schema": {
            "name": "answer",
            "schema": {"type": "object", "properties": {"a": {"type": "string", "description": f"use {s}"}}},
        },
    }
    return [
        ("messages[0].content", {"messages": [{"role": "user", "content": f"my key is {s} thanks"}]}),
        (
            "messages[0].content[1].text",
            {
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "text", "text": s}]}
                ]
            },
        ),
        (
            "messages[0].content[0].image_url.url",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": f"https://img.example.com/a.png?token={s}"}}
                        ],
                    }
                ]
            },
        ),
        ("messages[0].name", {"messages": [{**user, "name": s}]}),
        (
            "messages[1].tool_calls[0].function.arguments",
            {
                "messages": [user, asked, {"role": "tool", "tool_call_id": "call_1", "content": "shipped"}],
                "tools": [WEATHER_TOOL],
            },
        ),
        (
            "messages[2].content",
            {
                "messages": [
                    user,
                    {
                        **asked,
                        "tool_calls": [
                            {**asked["tool_calls"][0], "function": {"name": "lookup_order", "arguments": "{}"}}
                        ],
                    },
                    {"role": "tool", "tool_call_id": "call_1", "content": f"order note: {s}"},
                ],
                "tools": [WEATHER_TOOL],
            },
        ),
        ("tools[0].function.description", {"messages": [user], "tools": [_tool(description=f"Uses {s}")]}),
        (
            "tools[0].function.parameters.properties.order_id.description",
            {"messages": [user], "tools": [_tool(parameters__properties__order_id__description=s)]},
        ),
        (
            "tools[0].function.parameters.properties.order_id.enum[1]",
            {"messages": [user], "tools": [_tool(parameters__properties__order_id__enum=["A-1", s])]},
        ),
        ("tools[0].function.name", {"messages": [user], "tools": [_tool(name=s)]}),
        ("user", {"messages": [user], "user": s}),
        ("metadata.note", {"messages": [user], "metadata": {"note": f"deploy with {s}"}, "store": True}),
        ("metadata[…]", {"messages": [user], "metadata": {s: "x"}, "store": True}),
        ("response_format.json_schema.description", {"messages": [user], "response_format": schema}),
        (
            "response_format.json_schema.schema.properties.a.description",
            {"messages": [user], "response_format": schema_property},
        ),
        ("stop[1]", {"messages": [user], "stop": ["END", s]}),
        ("prediction.content", {"messages": [user], "prediction": {"type": "content", "content": s}}),
        ("model", {"messages": [user], "model": s}),
        ("x_trace.note", {"messages": [user], "extra_body": {"x_trace": {"note": s}}}),
        ("messages[0].content", {"messages": [{"role": "user", "content": s}], "stream": True}),
    ]


def test_a_secret_in_any_field_of_a_chat_request_is_refused_and_never_sent_stored_or_logged(
    server, gateway, session, sim, canary, captured_log, checkpoint_dir
):
    sdk = client(server, new_key(session))
    outcomes = {}
    for field, arguments in chat_cases(canary.secret):
        try:
            sdk.chat.completions.create(**{"model": MODEL, **arguments})
            outcomes[field] = "answered"
        except openai.APIStatusError as refused:
            outcomes[field] = (
                refusal(refused.body, field, canary) if refused.status_code == 400 else f"HTTP {refused.status_code}"
            )
    # One line per field, so that a failure lists every field that let the secret through.
    assert outcomes == {field: "refused, naming the field" for field, _ in chat_cases(canary.secret)}
    audit_checkpoints.create_checkpoint(session=session, actor=SYSTEM)
    assert sim.received == []
    assert_nowhere([canary.needle], sim=sim, log=captured_log, checkpoint_dir=checkpoint_dir)


def test_a_secret_in_any_field_of_an_embeddings_request_is_refused_and_never_stored(
    server, gateway, session, sim, canary, captured_log
):
    sdk = client(server, new_key(session))
    s = canary.secret
    cases = [
        ("input", {"input": f"index this: {s}"}),
        ("input[1]", {"input": ["fine", s]}),
        ("user", {"input": "fine", "user": s}),
        ("model", {"input": "fine", "model": s}),
        ("x_note", {"input": "fine", "extra_body": {"x_note": s}}),
    ]
    outcomes = {}
    for field, arguments in cases:
        try:
            sdk.embeddings.create(**{"model": "text-embedding-3-small", **arguments})
            outcomes[field] = "answered"
        except openai.APIStatusError as refused:
            outcomes[field] = (
                refusal(refused.body, field, canary) if refused.status_code == 400 else f"HTTP {refused.status_code}"
            )
    assert outcomes == {field: "refused, naming the field" for field, _ in cases}
    assert sim.received == []
    assert_nowhere([canary.needle], sim=sim, log=captured_log)


def test_a_secret_in_a_prompt_calls_variables_label_user_or_name_is_refused_and_never_stored(
    server, gateway, session, sim, canary, captured_log
):
    seed_catalog(session)
    key = new_key(session)
    s = canary.secret
    variables = {
        "customer_name": "Ana",
        "customer_id": "C-1001",
        "question": "Where is my parcel?",
        "kb_snippets": [
            {"id": "KB-1", "title": "Shipping", "url": "https://kb.example.com/1", "text": "Parcels ship in 2 days."}
        ],
        "channel": "email",
    }
    cases = [
        ("variables.question", "support-answer", {"variables": {**variables, "question": f"my key: {s}"}}),
        (
            "variables.kb_snippets[0].text",
            "support-answer",
            {"variables": {**variables, "kb_snippets": [{**variables["kb_snippets"][0], "text": s}]}},
        ),
        ("variables.unknown", "support-answer", {"variables": {**variables, "unknown": s}}),
        ("label", "support-answer", {"variables": variables, "label": s}),
        ("user", "support-answer", {"variables": variables, "user": s}),
        ("prompt", s, {"variables": variables}),
    ]
    outcomes = {}
    for field, name, body in cases:
        response = httpx.post(
            f"{server.base_url}/prompts/{quote(name, safe='')}/completions",
            headers={"Authorization": f"Bearer {key.secret}"},
            json=body,
        )
        outcomes[field] = (
            refusal(response.json()["error"], field, canary)
            if response.status_code == 400
            else f"HTTP {response.status_code}"
        )
    assert outcomes == {field: "refused, naming the field" for field, _, _ in cases}
    assert sim.received == []
    assert_nowhere([canary.needle], sim=sim, log=captured_log)


def test_a_secret_in_a_feedback_comment_is_refused_naming_the_field(server, gateway, session, canary):
    key = new_key(session)
    answered = client(server, key).chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}]
    )
    response = httpx.post(
        f"{server.base_url}/feedback",
        headers={"Authorization": f"Bearer {key.secret}"},
        json={
            "request_id": answered.headers["x-request-id"],
            "score": 1,
            "comment": f"great, and here is {canary.secret}",
        },
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        f"The feedback comment contains {canary.kind_name}; remove it before saving"
    )
    assert_nowhere([canary.needle])


def test_a_request_that_is_blocked_is_stored_as_masked_findings_with_the_field(server, gateway, session, canary):
    from core.models.gateway import StoredPayload

    sdk = client(server, new_key(session))
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "hi"}],
            tools=[_tool(description=f"Uses {canary.secret}")],
        )
    request_id = refused.value.response.headers["x-request-id"]
    session.rollback()
    stored = json.loads(session.get(StoredPayload, request_id).request_json)
    assert stored["request"] is None
    [finding] = stored["findings"]
    assert (finding["rule"], finding["action"], finding["fields"]) == (
        canary.rule,
        "block",
        ["tools[0].function.description"],
    )
    assert canary.needle not in json.dumps(finding)


# ---- personal data in the other fields is redacted as in a message ----------------------------


def test_personal_data_in_tools_metadata_and_user_is_redacted_before_it_is_sent(server, gateway, session, sim):
    policies.set_team_policy(
        session=session, actor=ADMIN, team_id=team_id(session), pii_action="redact", moderation="off"
    )
    client(server, new_key(session)).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Where is my order?"}],
        tools=[_tool(description="Escalate to ana.lopez@example.com")],
        user="ana.lopez@example.com",
        metadata={"contact": "ana.lopez@example.com"},
        store=True,
    )
    [sent] = [json.loads(body) for body in sim.bodies("/chat/completions")]
    assert "ana.lopez" not in json.dumps(sent)
    assert sent["tools"][0]["function"]["description"] == "Escalate to [EMAIL_1]"
    assert sent["user"] == sent["metadata"]["contact"] == "[EMAIL_1]"  # one value, one placeholder
    assert sent["tools"][0]["function"]["name"] == "lookup_order"  # identifiers are left alone


# ---- every core function that stores text -------------------------------------------------------


def _save_paths(session, directory, simple_version, s):
    """(what the refusal names, a call that tries to store ``s``): every form that saves text."""
    tom, lena, admin = directory.by_email(TOM), directory.by_email(LENA), directory.admin
    support = team_id(session)
    prompt = store.create_prompt(
        session=session,
        actor=tom,
        version=simple_version,
        prompt=PromptSpec("faq-answer", "Support", "Answer questions", "low", "internal"),
    )
    workflow.submit(session=session, actor=tom, version_id=prompt.id)
    prompt_id = prompt.prompt_id

    def version(**changes):
        import dataclasses

        spec = dataclasses.replace(simple_version, change_note="Shorter answers", **changes)
        return lambda: store.create_version(session=session, actor=tom, prompt_id=prompt_id, version=spec)

    case = TestCaseSpec(
        "c1", "a case", {"product": "Quorum", "question": "q", "attempt": 1}, (Assertion("contains", "Quorum"),)
    )
    testset = TestSetSpec("faq-answer", (case,))

    def testset_with(**changes):
        import dataclasses

        spec = dataclasses.replace(testset, cases=(dataclasses.replace(case, **changes),))
        return lambda: testset_store.save_testset(session=session, actor=tom, prompt_id=prompt_id, spec=spec)

    return [
        (
            "The draft (messages[0].content)",
            version(messages=(MessageSpec("system", f"Use {s}"), *simple_version.messages[1:])),
        ),
        (
            "The draft (variables.product.description)",
            version(variables=(VariableSpec("product", "string", f"for {s}"), *simple_version.variables[1:])),
        ),
        (
            "The change note",
            lambda: store.create_version(
                session=session,
                actor=tom,
                prompt_id=prompt_id,
                version=__import__("dataclasses").replace(
                    simple_version, change_note=f"rotated {s}", messages=simple_version.messages[:1]
                ),
            ),
        ),
        (
            "The prompt's purpose",
            lambda: store.create_prompt(
                session=session,
                actor=tom,
                version=simple_version,
                prompt=PromptSpec("other-prompt", "Support", f"Calls the API with {s}", "low", "internal"),
            ),
        ),
        (
            "The review comment",
            lambda: workflow.request_changes(
                session=session, actor=lena, version_id=prompt.id, comment=f"Do not paste {s} here"
            ),
        ),
        (
            "The evidence summary",
            lambda: workflow.attach_evidence(
                session=session,
                actor=tom,
                version_id=prompt.id,
                kind="note",
                reference_id="r1",
                summary=f"ran with {s}",
            ),
        ),
        (
            "The test set description",
            lambda: testset_store.save_testset(
                session=session,
                actor=tom,
                prompt_id=prompt_id,
                spec=TestSetSpec("faq-answer", (case,), description=f"uses {s}"),
            ),
        ),
        ("Test case 1 (variables.question)", testset_with(variables={**case.variables, "question": s})),
        ("Test case 1 (description)", testset_with(description=f"about {s}")),
        ("Test case 1 (assertions[0].value)", testset_with(assertions=(Assertion("contains", s),))),
        (
            "Test case 1 (variables.question)",
            lambda: testset_store.import_csv(
                session=session,
                actor=tom,
                testset_id=_saved_testset(session, tom, prompt_id, testset).id,
                text=_csv(
                    [
                        ["id", "var.product", "var.question", "var.attempt", "assertions"],
                        ["c1", "Quorum", s, "1", '[{"type": "contains", "value": "Quorum"}]'],
                    ]
                ),
            ),
        ),
        ("The team name", lambda: identity.create_team(session=session, actor=admin, name=f"Team {s}"[:80])),
        (
            "The team description",
            lambda: identity.create_team(session=session, actor=admin, name="Ops", description=f"key {s}"),
        ),
        (
            "The person's name",
            lambda: identity.add_person(session=session, actor=admin, email="new@example.com", display_name=s),
        ),
        ("The key's name", lambda: keys.create_key(session=session, actor=admin, team_id=support, label=s)),
        (
            "The price's source",
            lambda: prices.add_override(
                session=session,
                actor=admin,
                model="gpt-4o-mini",
                effective_from="2026-01-01",
                input="1",
                output="2",
                source=f"mail from {s}",
            ),
        ),
        (
            "The variants ([0].params.stop)",
            lambda: experiment_service.plan(
                session=session,
                actor=tom,
                testset_id=_saved_testset(session, tom, prompt_id, testset).id,
                variants=[VariantChoice(version_id=prompt.id, params={"stop": s})],
            ),
        ),
        (
            "The case name",
            lambda: holds.add_hold(
                session=session,
                actor=lena,
                case_name=f"case {s}"[:120],
                owner_person_id=lena.person_id,
                team_id=support,
            ),
        ),
    ]


def _csv(rows) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


def _saved_testset(session, actor, prompt_id, spec):
    return testset_store.save_testset(session=session, actor=actor, prompt_id=prompt_id, spec=spec)


def test_every_form_that_saves_text_refuses_a_secret_naming_the_field_and_kind(
    session, directory, simple_version, canary, checkpoint_dir
):
    for field, save in _save_paths(session, directory, simple_version, canary.secret):
        with pytest.raises(ValidationError) as refused:
            save()
        assert str(refused.value) == f"{field} contains {canary.kind_name}; remove it before saving"
        session.rollback()
    audit_checkpoints.create_checkpoint(session=session, actor=SYSTEM)
    assert_nowhere([canary.needle], checkpoint_dir=checkpoint_dir)


def test_a_lead_cannot_answer_a_held_request_with_a_secret(server, gateway, session, directory, canary):
    policies.set_team_policy(
        session=session, actor=ADMIN, team_id=team_id(session), pii_action="redact", moderation="hold"
    )
    sdk = client(server, new_key(session))
    held = sdk.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "I will kill you"}]
    )
    public_id = held.headers["x-quorum-held"]
    with pytest.raises(ValidationError, match=f"^The comment contains {canary.kind_name}; remove it"):
        decide(
            session=session,
            actor=directory.by_email(LENA),
            public_id=public_id,
            release=True,
            comment=f"use {canary.secret}",
        )
    session.rollback()
    assert_nowhere([canary.needle])


def test_a_budget_webhook_is_kept_but_the_audit_log_holds_only_its_host(session, directory):
    token = _random(string.ascii_letters + string.digits, 32)
    url = f"https://alerts.example.com/hook?token={token}"
    budget = budget_config.set_budget(
        session=session,
        actor=directory.admin,
        scope="team",
        target_id=team_id(session),
        data=budget_config.BudgetInput(cap_usd="100", webhook_url=url),
    )
    assert budget.webhook_url == url  # the admin set it to be called
    session.rollback()
    assert raw_copies_in_database([token]) == ["budget.webhook_url"]


# ---- a secret anywhere in any JSON body ----------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=12,
)
_TOP_LEVEL = [
    "messages",
    "tools",
    "metadata",
    "user",
    "response_format",
    "stop",
    "input",
    "instructions",
    "x_extra",
    "model",
]


def _places(value, path=()):
    """Where a secret can go: ("value", path) for every string, ("key", path) for every dict."""
    if isinstance(value, str):
        yield "value", path
    elif isinstance(value, dict):
        yield "key", path
        for key, item in value.items():
            yield from _places(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _places(item, path + (index,))


def _with_secret(body, place, secret, cut):
    where, path = place
    if not path:
        text = body if where == "value" else None
        if where == "value":
            return f"{text[:cut]} {secret} {text[cut:]}"
        return {**body, f"note {secret}": "x"}
    copy = dict(body) if isinstance(body, dict) else list(body)
    copy[path[0]] = _with_secret(body[path[0]], (where, path[1:]), secret, cut)
    return copy


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_secret_anywhere_in_any_json_body_never_reaches_upstream_or_storage(gateway, session, sim, data):
    from core.gateway.errors import GuardrailBlocked
    from core.gateway.pipeline import Caller, GatewayRequest

    canary = data.draw(st.sampled_from(make_canaries()), label="canary")
    field = data.draw(st.sampled_from(_TOP_LEVEL), label="field")
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], field: data.draw(_JSON, label="value")}
    places = list(_places(body))
    place = data.draw(st.sampled_from(places), label="place")
    text = body
    for part in place[1]:
        text = text[part]
    cut = data.draw(st.integers(0, len(text) if isinstance(text, str) else 0), label="cut")
    body = _with_secret(body, place, canary.secret, cut)
    kind = data.draw(st.sampled_from(["chat", "embeddings"]), label="kind")
    key = _key_for(session)
    # A body the gateway cannot read is refused as invalid before any stage stores or sends it;
    # one it can read is blocked by the guardrail. Either way nothing leaves and nothing stays.
    with pytest.raises(QuorumError) as refused:
        gateway.call(caller=Caller.for_key(key), request=GatewayRequest(kind=kind, body=body))
    assert isinstance(refused.value, (GuardrailBlocked, ValidationError))
    if isinstance(refused.value, GuardrailBlocked):
        assert refused.value.rule == canary.rule
    assert canary.needle not in str(refused.value)
    assert not any(canary.needle in sent.decode(errors="replace") for _, sent in sim.received)
    assert raw_copies_in_database([canary.needle]) == []


_keys: dict[int, key_auth.KeyIdentity] = {}


def _key_for(session) -> key_auth.KeyIdentity:
    """One team key per test (Hypothesis runs the body many times with the same fixtures)."""
    if id(session) not in _keys:
        created = new_key(session)
        _keys.clear()
        _keys[id(session)] = key_auth.KeyIdentity(key_id=created.key_id, team_id=team_id(session), prefix="qk")
    return _keys[id(session)]


def test_the_audit_log_masks_a_secret_that_slips_into_an_event_and_the_chain_still_verifies(session, canary):
    from core.audit import record as audit
    from tests.audit_helpers import problems

    audit.record(
        session,
        actor=SYSTEM,
        action="thing.change",
        target_type="thing",
        target_id=1,
        after={"note": f"rotated to {canary.secret}", canary.secret: [canary.secret]},
    )
    session.commit()
    assert raw_copies_in_database([canary.needle]) == []
    [event] = audit.recent_events(session, actor=SYSTEM, limit=1)
    assert "…" in json.dumps(event.after, ensure_ascii=False)
    assert problems(session) == []


def test_a_secret_in_a_field_the_request_types_refuse_is_not_quoted_by_the_refusal(gateway, session, sim):
    """Found by the property test above: a message whose `role` holds a key is invalid, and the
    validation message used to quote the role (so the refusal carried the key)."""
    from core.gateway.pipeline import Caller, GatewayRequest

    canary = make_canaries()[0]
    body = {"model": MODEL, "messages": [{"role": f" {canary.secret} user", "content": "hi"}]}
    with pytest.raises(ValidationError) as refused:
        gateway.call(caller=Caller.for_key(_key_for(session)), request=GatewayRequest(kind="chat", body=body))
    assert refused.value.param == "messages[0]" and canary.needle not in str(refused.value)
    assert sim.bodies("/chat/completions") == []

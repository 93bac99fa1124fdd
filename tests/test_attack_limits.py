"""Hostile input, tried the way an attacker would: YAML bombs, oversized files, template
bombs, forged forwarding headers, guessable cookie secrets, Markdown in user-written text.

Each test names a hole that was open (the input ran for minutes, exhausted memory, or
crashed the page) and asserts the refusal a user reads instead.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import time
import tomllib

import httpx
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from core.catalog import store, workflow
from core.catalog.checks import has_errors, static_checks
from core.catalog.demo_seed import seed_catalog
from core.catalog.files import load_prompt_text
from core.catalog.render import render_messages
from core.catalog.spec import MessageSpec, ModelParams, PromptSpec, VariableSpec, VersionSpec
from core.catalog.store import prompt_by_name
from core.catalog.testsets import cases_from_csv, load_testset_text
from core.catalog.yaml_io import MAX_FILE_BYTES, CatalogValidationError, parse_yaml
from core.cli.main import main
from core.errors import ValidationError
from core.experiments import testset_store
from core.permissions import Actor
from tests.conftest import PROMPTS_DIR
from tests.gateway_support import client, new_key


def billion_laughs(levels: int = 9) -> str:
    """Nine levels of nine aliases: 342 bytes that expand to 9**9 (387 million) strings."""
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    previous = "a"
    for name in "bcdefghijklmnop"[: levels - 1]:
        text += f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]\n"
        previous = name
    return text


def quickly(call, seconds: float = 2.0):
    start = time.perf_counter()
    with pytest.raises(ValidationError) as refused:
        call()
    assert time.perf_counter() - start < seconds
    return str(refused.value)


# ---- YAML -------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_a_billion_laughs_prompt_file_is_refused_at_once_naming_the_limit():
    bomb = billion_laughs() + "name: x\n"
    assert len(bomb.encode()) < 1024
    message = quickly(lambda: load_prompt_text(bomb, "uploads/x.yaml"))
    assert message == (
        "uploads/x.yaml: expands to more than 200,000 values (aliases inside aliases); the limit is 200,000"
    )


@pytest.mark.timeout(30)
def test_a_billion_laughs_test_set_is_refused_at_once():
    message = quickly(lambda: load_testset_text(billion_laughs() + "prompt: x\ncases: []\n", "the YAML"))
    assert message.startswith("the YAML: expands to more than 200,000 values")


@pytest.mark.timeout(30)
def test_cli_prompt_import_refuses_a_bomb_with_one_error_line(session, directory, tmp_path, capsys):
    for source in PROMPTS_DIR.glob("*.yaml"):
        (tmp_path / source.name).write_text(source.read_text())
    (tmp_path / "zz-bomb.yaml").write_text(billion_laughs())
    assert main(["prompts", "import", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"error: {tmp_path / 'zz-bomb.yaml'}: expands to more than 200,000 values "
        "(aliases inside aliases); the limit is 200,000\n"
    )


def test_cli_prompt_import_refuses_a_file_over_the_size_limit(session, directory, tmp_path, capsys):
    big = tmp_path / "big.yaml"
    big.write_text("name: big\npurpose: " + "x" * MAX_FILE_BYTES + "\n")
    assert main(["prompts", "import", str(tmp_path)]) == 1
    size = big.stat().st_size
    assert capsys.readouterr().err == (f"error: {big}: the file is {size:,} bytes; the limit is 1,000,000 bytes\n")


def test_deep_nesting_is_refused_rather_than_crashing_the_parser():
    deep = "a: " + "[" * 5000 + "]" * 5000 + "\n"
    assert quickly(lambda: parse_yaml(deep, "deep.yaml")) == (
        "deep.yaml: nested deeper than 64 levels; the limit is 64"
    )


def test_many_aliases_are_refused():
    text = "base: &b {x: 1}\nitems:\n" + "".join("  - *b\n" for _ in range(1001))
    assert quickly(lambda: parse_yaml(text, "many.yaml")) == (
        "many.yaml: more than 1000 aliases (*name); the limit is 1000"
    )


def test_merge_keys_that_test_sets_use_still_load():
    text = "base: &base {subject: hi, body: there}\ncases:\n" + "".join(
        f"  - {{<<: *base, body: case {i}}}\n" for i in range(300)
    )
    document = parse_yaml(text, "ok.yaml")
    assert document["cases"][299] == {"subject": "hi", "body": "case 299"}


@pytest.mark.timeout(30)
def test_the_test_set_page_shows_the_limit_as_an_error(session, directory):
    from tests.test_pages import errors_of, signed_in

    seed_catalog(session)
    prompt = prompt_by_name(session, "ticket-triage")
    at = signed_in(session, "tom.becker@example.com")
    at.switch_page("pages/experiments.py").run()
    at.selectbox(key="ts_new_prompt").set_value(prompt.id)
    at.text_area(key="ts_new_yaml").set_value(billion_laughs() + "prompt: ticket-triage\n").run()
    at.button(key="ts_create").click().run()
    assert not at.exception
    assert errors_of(at) == [
        "the YAML: expands to more than 200,000 values (aliases inside aliases); the limit is 200,000"
    ]


# ---- CSV --------------------------------------------------------------------------------

VARIABLES = (VariableSpec("subject", "string"), VariableSpec("tags", "list"))


def test_a_csv_over_the_size_limit_is_refused():
    text = "id,var.subject,var.tags,assertions\n" + "c1,x,[],[]\n" * (MAX_FILE_BYTES // 10)
    message = quickly(lambda: cases_from_csv(text, VARIABLES, "cases.csv"))
    assert message.startswith("cases.csv: the file is ") and message.endswith("the limit is 1,000,000 bytes")


def test_a_csv_cell_over_the_csv_field_limit_is_a_clear_error_not_a_crash():
    text = 'id,var.subject,var.tags,assertions\nc1,"' + "x" * 200_000 + '",[],[]\n'
    assert quickly(lambda: cases_from_csv(text, VARIABLES, "cases.csv")) == (
        "cases.csv: cannot read the CSV: field larger than field limit (131072)"
    )


def test_deeply_nested_json_in_a_csv_cell_is_a_clear_error_not_a_crash():
    text = "id,var.subject,var.tags,assertions\nc1,x," + "[" * 50_000 + "]" * 50_000 + ',"[{""type"": ""is-json""}]"\n'
    assert quickly(lambda: cases_from_csv(text, VARIABLES, "cases.csv")) == (
        "cases.csv: row 2: var.tags: JSON nested too deeply"
    )


def test_the_store_import_reports_the_limit(session, directory):
    seed_catalog(session)
    prompt = prompt_by_name(session, "ticket-triage")
    tom = directory.by_email("tom.becker@example.com")
    with pytest.raises(ValidationError, match="^the YAML: expands to more than 200,000 values"):
        testset_store.import_yaml(
            session=session, actor=tom, prompt_id=prompt.id, text=billion_laughs() + "prompt: ticket-triage\n"
        )
    with pytest.raises(CatalogValidationError):
        parse_yaml("x" * (MAX_FILE_BYTES + 1), "pasted")


# ---- templates --------------------------------------------------------------------------


def one_message(template: str, *variables: VariableSpec) -> VersionSpec:
    return VersionSpec(
        messages=(MessageSpec("user", template),), variables=variables, model="gpt-4o-mini", params=ModelParams()
    )


REFUSED = "message 0 (user): refused by the template sandbox: "
TEMPLATE_BOMBS = {
    "nested range loops": (
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        "range() of 100,000 numbers; the limit is 1,000",
    ),
    "doubling through a namespace": (
        '{% set ns = namespace(s="x") %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}',
        "the joined text would be 1,048,576 characters; the limit is 1,000,000",
    ),
    "doubling with +": (
        '{% set ns = namespace(s="x") %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}',
        "the value would be 1,048,576 characters; the limit is 1,000,000",
    ),
    "doubling with %": (
        '{% set ns = namespace(s="x") %}{% for i in range(40) %}{% set ns.s = "%s%s" % (ns.s, ns.s) %}'
        "{% endfor %}{{ ns.s }}",
        "the value would be 1,048,576 characters; the limit is 1,000,000",
    ),
    "doubling with join": (
        '{% set ns = namespace(s="x") %}{% for i in range(40) %}{% set ns.s = [ns.s, ns.s]|join %}'
        "{% endfor %}{{ ns.s }}",
        "the joined text would be 1,048,576 characters; the limit is 1,000,000",
    ),
    "doubling by recursion": (
        '{% macro f(s) %}{{ f(s ~ s) }}{% endmacro %}{{ f("x") }}',
        "the joined text would be 1,048,576 characters; the limit is 1,000,000",
    ),
    "a gigabyte by repetition": (
        '{{ "a" * 10**9 }}',
        "the repeated value would be 1,000,000,000 characters; the limit is 1,000,000",
    ),
    "a quadratic replace": (
        '{{ ("a" * 1000)|replace("a", "a" * 1000) }}',
        "the replaced text would be 1,001,000 characters; the limit is 1,000,000",
    ),
    "a wide %-format": ('{{ "%999999999s" % "x" }}', "a %-format width of 999999999 is larger than the sandbox allows"),
    "a wide str.format": (
        '{{ "{:>999999999}".format("x") }}',
        "a format width of 999999999 is larger than the sandbox allows",
    ),
    "a wide center": (
        '{{ "x".center(999999999) }}',
        "center() was given a width of 999,999,999; the limit is 1,000,000",
    ),
    "a billion slices": (
        "{{ [1]|slice(999999999)|list }}",
        "the slice filter was given a size over 1,000,000, the limit",
    ),
    "a million loop steps": (
        "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}",
        "the loops ran more than 100,000 steps; the limit is 100,000",
    ),
    "a recursive loop": (
        "{% for x in range(1000) recursive %}{% if loop.depth < 4 %}{{ loop(range(1000)) }}{% endif %}{% endfor %}",
        "the loops ran more than 100,000 steps; the limit is 100,000",
    ),
    "loops inside a recursive macro": (
        "{% macro m(n) %}{% for i in range(1000) %}{% if n > 0 %}{{ m(n - 1) }}{% endif %}{% endfor %}"
        "{% endmacro %}{{ m(4) }}",
        "the loops ran more than 100,000 steps; the limit is 100,000",
    ),
    "output past the cap": (
        '{% for i in range(1000) %}{{ "y" * 1000 }}{% endfor %}{{ "z" * 1000 }}',
        "the rendered text is longer than the 1,000,000 character limit",
    ),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", list(TEMPLATE_BOMBS))
def test_a_template_bomb_is_refused_quickly_naming_the_limit(name):
    template, limit = TEMPLATE_BOMBS[name]
    assert quickly(lambda: render_messages(one_message(template), {})) == REFUSED + limit


@pytest.mark.timeout(60)
def test_a_render_that_passes_every_other_limit_stops_at_the_time_limit(monkeypatch):
    from core.catalog import sandbox

    # 99,000 loop steps each building a 9,000 character string: within the step and size
    # limits, and (here, with a tighter clock) over the time limit.
    monkeypatch.setattr(sandbox, "RENDER_SECONDS", 0.01)
    template = '{% for a in range(1000) %}{% for b in range(99) %}{% set x = "y" * 9000 %}{% endfor %}{% endfor %}'
    assert quickly(lambda: render_messages(one_message(template), {})) == (
        REFUSED + "the render took longer than the 0.01 s limit"
    )


def test_templates_within_the_limits_render_as_before():
    version = one_message(
        "{% for s in items %}{{ loop.index }}. {{ s.title }}{% if not loop.last %}, {% endif %}"
        "{% endfor %} {{ ('ab' ~ 'c') * 2 }} {{ '%05d' % 42 }} {{ 'x'|center(5) }}|"
        "{{ '{:>4}'.format(7) }} {{ range(3)|join('-') }} {{ '{:,}'.format(5000000) }} "
        "{{ '%d'|format(5000000) }} {{ '%d' % 5000000 }}",
        VariableSpec("items", "list"),
    )
    rendered = render_messages(version, {"items": [{"title": "a"}, {"title": "b"}]})
    assert rendered[0]["content"] == "1. a, 2. b abcabc 00042   x  |   7 0-1-2 5,000,000 5000000 5000000"


@pytest.mark.parametrize(
    "template, code, message",
    [
        (
            "{% for i in range(100000) %}x{% endfor %}",
            "range-too-large",
            "message 0 (user): line 1: range() of 100,000 numbers; the sandbox allows 1,000",
        ),
        (
            "{% for i in range(1, 5, 0) %}x{% endfor %}",
            "bad-range",
            "message 0 (user): line 1: range() arg 3 must not be zero; this range() fails every time the "
            "template renders",
        ),
        (
            "{% for i in range(1, 2, 3, 4) %}x{% endfor %}",
            "bad-range",
            "message 0 (user): line 1: range expected at most 3 arguments, got 4; this range() fails every time the "
            "template renders",
        ),
        (
            "{% for i in range(n) %}x{% endfor %}",
            "unbounded-range",
            "message 0 (user): line 1: range() takes its bound from a variable; the sandbox stops past 1,000 numbers",
        ),
        (
            '{% set s = "x" %}{% for i in range(40) %}{% set s = s ~ s %}{% endfor %}{{ s }}',
            "self-doubling",
            "message 0 (user): line 1: 's' is built from itself more than once inside a loop, "
            "so it doubles on every pass",
        ),
        (
            '{% set ns = namespace(s="x") %}{% for i in range(9) %}\n{% set ns.s = ns.s * 2 %}{% endfor %}',
            "self-doubling",
            "message 0 (user): line 2: 'ns.s' is built from itself more than once inside a loop, "
            "so it doubles on every pass",
        ),
        (
            '{{ "a" * 10**9 }}',
            "repetition-too-large",
            "message 0 (user): line 1: repeats a value into 1,000,000,000 characters; the sandbox allows 1,000,000",
        ),
    ],
)
def test_static_checks_flag_costly_templates_before_review(template, code, message):
    findings = [
        f for f in static_checks(one_message(template, VariableSpec("n", "integer"))) if f.code != "unused-variable"
    ]
    assert [(f.code, f.message) for f in findings] == [(code, message)]
    assert has_errors(findings) == (code != "unbounded-range")


# ---- forwarded addresses ----------------------------------------------------------------


def _trust(monkeypatch, proxies: str | None) -> None:
    from core.settings import reset_settings

    if proxies is None:
        monkeypatch.delenv("QUORUM_TRUSTED_PROXIES", raising=False)
    else:
        monkeypatch.setenv("QUORUM_TRUSTED_PROXIES", proxies)
    reset_settings()


def _models_status(server, key, forwarded: str | None = None) -> tuple[int, str]:
    headers = {"authorization": f"Bearer {key.secret}"}
    if forwarded is not None:
        headers["x-forwarded-for"] = forwarded
    response = httpx.get(f"{server.base_url}/models", headers=headers, timeout=10)
    return response.status_code, response.json().get("error", {}).get("message", "")


def test_a_forged_forwarded_for_is_ignored_without_trusted_proxies(server, gateway, session, monkeypatch):
    _trust(monkeypatch, None)
    key = new_key(session, allowed_cidrs="10.0.0.0/8")
    assert _models_status(server, key, "10.1.2.3") == (401, "This API key may not be used from 127.0.0.1")
    with pytest.raises(openai.AuthenticationError, match="127.0.0.1"):
        client(server, key, default_headers={"X-Forwarded-For": "10.1.2.3"}).models.list()


def test_a_trusted_proxy_forwards_the_client_address(server, gateway, session, monkeypatch):
    _trust(monkeypatch, "127.0.0.1/32")
    key = new_key(session, allowed_cidrs="10.0.0.0/8")
    assert client(server, key, default_headers={"X-Forwarded-For": "10.1.2.3"}).models.list().data
    assert _models_status(server, key, None) == (401, "This API key may not be used from 127.0.0.1")


def test_with_a_trusted_proxy_the_right_most_untrusted_address_counts(server, gateway, session, monkeypatch):
    _trust(monkeypatch, "127.0.0.1, 192.168.0.0/16")
    key = new_key(session, allowed_cidrs="10.0.0.0/8")
    # The client wrote '10.9.9.9' itself; 203.0.113.7 is who reached the trusted proxies.
    assert _models_status(server, key, "10.9.9.9, 203.0.113.7, 192.168.1.5") == (
        401,
        "This API key may not be used from 203.0.113.7",
    )
    # Two trusted hops, and the client behind them.
    assert _models_status(server, key, "198.51.100.1, 10.1.2.3, 192.168.1.5")[0] == 200
    assert _models_status(server, key, "10.1.2.3, 192.168.0.9:4431") == (200, "")


def test_a_server_that_rewrites_the_address_itself_is_not_believed(db_url, gateway, session, monkeypatch):
    from tests.gateway_support import Server

    _trust(monkeypatch, None)
    key = new_key(session, allowed_cidrs="10.0.0.0/8")
    rewriting = Server(proxy_headers=True).start()  # uvicorn's default: believes loopback's header
    try:
        assert _models_status(rewriting, key, "10.1.2.3") == (
            401,
            "This API key may not be used from an unknown address",
        )
    finally:
        rewriting.stop()


@pytest.mark.parametrize(
    "peer, forwarded, trusted, client",
    [
        ("127.0.0.1", [], "", "127.0.0.1"),
        ("10.1.2.3", ["10.1.2.3"], "", None),  # the header names the peer itself: a rewrite, not believed
        ("127.0.0.2", ["10.1.2.3"], "", "127.0.0.2"),
        ("127.0.0.2", ["10.1.2.3"], "127.0.0.0/8", "10.1.2.3"),
        ("127.0.0.2", ["1.1.1.1, 10.1.2.3", "192.168.0.1"], "127.0.0.0/8 192.168.0.0/16", "10.1.2.3"),
        ("127.0.0.2", ["192.168.0.7, 192.168.0.1"], "127.0.0.0/8 192.168.0.0/16", "192.168.0.7"),
        ("127.0.0.2", ["not-an-ip"], "127.0.0.0/8", None),
        ("127.0.0.2", ["[2001:db8::1]:443"], "127.0.0.0/8", "2001:db8::1"),
        ("::ffff:127.0.0.2", ["10.1.2.3"], "127.0.0.0/8", "10.1.2.3"),
        ("::ffff:10.1.2.3", [], "", "10.1.2.3"),
    ],
)
def test_resolving_the_client_address(peer, forwarded, trusted, client):
    from core.http.client_address import resolve_client
    from core.settings import parse_trusted_proxies

    assert resolve_client(peer, forwarded, parse_trusted_proxies(trusted)) == client


def test_a_bad_trusted_proxy_setting_is_named():
    from core.settings import ConfigError, load_settings

    with pytest.raises(ConfigError, match="QUORUM_TRUSTED_PROXIES: '10.0.0.300' is not an IP address or CIDR"):
        load_settings({"QUORUM_SECRETS_FILE": "/nonexistent", "QUORUM_TRUSTED_PROXIES": "10.0.0.300"})


# ---- cookie secrets ---------------------------------------------------------------------

MAKE_ONE = 'make one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'


def _settings_with_cookie(tmp_path, cookie: str):
    from core.settings import load_settings

    secrets_file = tmp_path / "secrets.toml"
    secrets_file.write_text(f'[auth]\nclient_id = "q"\ncookie_secret = "{cookie}"\n')
    return load_settings({"QUORUM_SECRETS_FILE": str(secrets_file)})


def test_the_examples_cookie_secret_is_refused(tmp_path):
    from core.settings import PROJECT_ROOT, ConfigError

    example = tomllib.loads((PROJECT_ROOT / ".streamlit" / "secrets.toml.example").read_text())
    with pytest.raises(ConfigError) as refused:
        _settings_with_cookie(tmp_path, example["auth"]["cookie_secret"]).check_safe()
    assert str(refused.value) == (
        f"Unsafe configuration: [auth] cookie_secret is a placeholder from an example; {MAKE_ONE}"
    )


@pytest.mark.parametrize(
    "cookie, distinct, bits",
    [
        ("a" * 32, 1, 0),
        ("ab" * 32, 2, 64),
        ("password" * 4, 7, 88),
        ("0011" * 12, 2, 48),
    ],
)
def test_a_predictable_cookie_secret_is_refused(tmp_path, cookie, distinct, bits):
    from core.settings import ConfigError

    with pytest.raises(ConfigError) as refused:
        _settings_with_cookie(tmp_path, cookie).check_safe()
    assert str(refused.value) == (
        f"Unsafe configuration: [auth] cookie_secret is too predictable ({distinct} distinct characters, about "
        f"{bits} bits; at least 8 and 80 needed); {MAKE_ONE}"
    )


def test_random_cookie_secrets_are_accepted(tmp_path):
    for _ in range(200):
        for cookie in (secrets.token_urlsafe(32), secrets.token_hex(16)):
            _settings_with_cookie(tmp_path, cookie).check_safe()


# ---- user text on the pages -------------------------------------------------------------

PHISHING = "Fixed typo [click](http://evil.example) ![x](http://evil.example/t.png) www.evil.example :red[alarm]"
# A link or image whose brackets are not escaped, or a bare address a renderer would link.
_MARKUP = re.compile(r"(?<!\\)\[[^\]]*(?<!\\)\]\(|https?://|www\.|(?<!\\):red\[", re.IGNORECASE)


def _shown(source: str) -> str:
    """What a reader sees of Markdown source made by pages.ui.text.literal."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", source.replace("  \n", "\n")).replace("\u200b", "")


def _markdown_sources(at) -> list[str]:
    elements = [*at.markdown, *at.caption, *at.info, *at.warning, *at.error, *at.success, *at.subheader, *at.title]
    return [e.value for e in elements]


def _seed_version_in_review(session, directory, simple_version):
    tom = directory.by_email("tom.becker@example.com")
    prompt = PromptSpec("faq-answer", "Support", "Answers " + PHISHING, "medium", "internal")
    version = dataclasses.replace(simple_version, change_note=PHISHING)
    created = store.create_prompt(session=session, actor=tom, prompt=prompt, version=version)
    workflow.submit(session=session, actor=tom, version_id=created.id)
    return created


@pytest.mark.parametrize(
    "email, page",
    [
        ("lena.fischer@example.com", "pages/review_queue.py"),
        ("lena.fischer@example.com", "pages/catalog.py"),
        ("tom.becker@example.com", "pages/prompt_editor.py"),
        ("lena.fischer@example.com", "pages/home.py"),
    ],
)
def test_user_text_is_shown_as_text_not_as_links_or_images(session, directory, simple_version, email, page):
    from tests.test_pages import signed_in

    _seed_version_in_review(session, directory, simple_version)
    at = signed_in(session, email)
    at.switch_page(page).run()
    if page == "pages/prompt_editor.py":
        at.selectbox(key="editor_prompt").set_value(store.prompt_by_name(session, "faq-answer").id).run()
    assert not at.exception
    sources = _markdown_sources(at)
    assert [s for s in sources if _MARKUP.search(s)] == []
    if page != "pages/home.py":
        assert any(PHISHING in _shown(s) for s in sources)


def test_the_review_queue_shows_the_change_note_literally(session, directory, simple_version):
    from pages.ui.text import literal
    from tests.test_pages import signed_in

    _seed_version_in_review(session, directory, simple_version)
    at = signed_in(session, "lena.fischer@example.com")
    at.switch_page("pages/review_queue.py").run()
    note = next(m.value for m in at.markdown if m.value.startswith("Change note: "))
    assert note == "Change note: " + literal(PHISHING)
    assert _shown(note) == "Change note: " + PHISHING
    assert "](" not in note.replace("\\]", "") and "![" not in note.replace("!\\[", "")


@pytest.mark.parametrize(
    "text",
    [
        "# Heading",
        "- item",
        "1. first",
        "a_b and _em_ and *strong*",
        "`code`",
        "$x$ and $y$",
        "line one\nline two",
        "<http://evil.example>",
        "back\\slash",
    ],
)
def test_literal_keeps_every_character_and_no_construct(text):
    from pages.ui.text import literal

    assert _shown(literal(text)) == text
    assert not _MARKUP.search(literal(text))


@settings(max_examples=300, deadline=None)
@given(
    hst.text(alphabet=hst.characters(blacklist_characters="\u200b", blacklist_categories=("Cs",)), max_size=60)
    | hst.lists(
        hst.sampled_from(
            [
                "[",
                "](",
                "![",
                "http://",
                "www.",
                ":red[",
                "$",
                "#",
                "- ",
                "1.",
                "\n",
                "_",
                "*",
                "`",
                "\\",
                "<",
                "a",
                " ",
            ]
        ),
        max_size=20,
    ).map("".join)
)
def test_literal_round_trips_any_text_without_markup(text):
    from pages.ui.text import literal

    assert _shown(literal(text)) == text
    assert not _MARKUP.search(literal(text))


@pytest.mark.timeout(30)
def test_the_review_policy_file_goes_through_the_limited_loader(tmp_path):
    from core.catalog.policy import load_review_policy

    policy = tmp_path / "review_policy.yaml"
    policy.write_text(billion_laughs())
    assert quickly(lambda: load_review_policy(policy)) == (
        f"cannot read the review policy: {policy}: expands to more than 200,000 values "
        "(aliases inside aliases); the limit is 200,000"
    )


def test_a_recursive_loop_within_the_limits_renders():
    version = one_message(
        "{% for node in tree recursive %}{{ node.name }}{% if node.children %}({{ loop(node.children) }})"
        "{% endif %}{% endfor %}",
        VariableSpec("tree", "list"),
    )
    tree = [
        {"name": "a", "children": [{"name": "b", "children": []}, {"name": "c", "children": []}]},
        {"name": "d", "children": []},
    ]
    assert render_messages(version, {"tree": tree})[0]["content"] == "a(bc)d"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "content, error",
    [
        (b"id,assertions\n\xff\xfe,[]\n", "The CSV is not UTF-8 text; save it from the spreadsheet as CSV UTF-8."),
        (
            b'id,assertions\nc1,"' + b"x" * 200_000 + b'"\n',
            "the CSV: cannot read the CSV: field larger than field limit (131072)",
        ),
        (
            b"id,assertions\n" + b"c1,[]\n" * 200_000,
            "the CSV: the file is 1,200,014 bytes; the limit is 1,000,000 bytes",
        ),
    ],
)
def test_a_hostile_csv_upload_is_refused_on_the_page(session, directory, content, error):
    from tests.test_pages import errors_of, signed_in

    seed_catalog(session)
    stored = testset_store.import_directory(session=session, actor=Actor.system("t"), only={"ticket-triage"})[0]
    at = signed_in(session, "tom.becker@example.com")
    at.switch_page("pages/experiments.py").run()
    at.selectbox(key="ts_pick").set_value(stored.id).run()
    at.file_uploader(key="ts_csv_upload").upload("cases.csv", content, "text/csv").run()
    at.button(key="ts_import_csv").click().run()
    assert not at.exception
    assert [_shown(e) for e in errors_of(at)] == [error]

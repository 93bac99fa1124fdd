"""Guardrails: secrets block, PII redaction with checksums, policy decisions.

Secret-shaped values are assembled at run time from harmless pieces, so that no
credential-looking literal sits in the repository and a secret scanner over it stays
clean.
"""

import random
import string

import pytest

from core.errors import ValidationError
from core.guardrails import (
    GuardrailPolicy,
    apply_input_guardrails,
    find_pii,
    find_secrets,
    redact,
    scan_output,
)

_rng = random.Random(20240601)
_ALNUM = string.ascii_letters + string.digits


def _random(length, alphabet=_ALNUM):
    return "".join(_rng.choice(alphabet) for _ in range(length))


def openai_project_key():
    marker = "T3Blbk" + "FJ"  # base64 of "OpenAI", as in every real key
    return "sk-" + "proj-" + _random(74) + marker + _random(74)


SAMPLE_SECRETS = {
    "openai_api_key": openai_project_key,
    "aws_access_key_id": lambda: "AK" + "IA" + _random(16, string.ascii_uppercase + string.digits),
    "github_token": lambda: "gh" + "p_" + _random(36),
    "slack_token": lambda: (
        "xo"
        + "xb-"
        + _random(12, string.digits)
        + "-"
        + _random(13, string.digits)
        + "-"
        + _random(24, string.ascii_lowercase + string.digits)
    ),
    "slack_webhook": lambda: (
        "https://hooks."
        + "slack.com/services/T"
        + _random(10, string.ascii_uppercase)
        + "/B"
        + _random(10, string.ascii_uppercase)
        + "/"
        + _random(24)
    ),
    "private_key": lambda: (
        "-----BEGIN " + "RSA PRIVATE" + " KEY-----\n" + _random(64) + "\n" + "-----END " + "RSA PRIVATE" + " KEY-----"
    ),
}

PLAIN_PARAGRAPHS = [
    "I am writing to complain about order 4471923. It arrived on 12 March 2024, two weeks late, "
    "and I was charged $1,299.00 instead of the $999.99 shown at checkout. This is the third time "
    "since 2019. Please refund the difference of $299.01 to my account.",
    "Meeting notes, 2024-05-14 10:30-11:15. Attendees: Ana, Rui, Priya. Q3 revenue was 4.2m EUR, "
    "up 12.5% on 2023. Action: Rui to send the 2025 budget (v1.2.3) by 31/05/2024; next review "
    "on 06-06-2024 at 14:00. Ticket #88213 and PO 4500012345 stay open. Room 101, ext. 2231.",
    "Our plan costs EUR 49 per seat per month, 15 seats minimum, billed yearly from 1 January 2025. "
    "The 1990s model 3000 sold 250,000 units; in 2023 2024 2025 2026 we expect 10 000 each.",
]


# --- secrets ---------------------------------------------------------------------


def test_openai_key_is_blocked_and_never_echoed():
    key = openai_project_key()
    messages = [{"role": "user", "content": f"Why does my code fail? client = OpenAI(api_key='{key}')"}]
    outcome = apply_input_guardrails(messages, GuardrailPolicy())
    assert outcome.blocked and outcome.rule == "secret.openai_api_key"
    assert outcome.messages is None
    assert key not in repr(outcome) and key not in str(outcome)
    finding = find_secrets(messages[0]["content"])[0]
    assert key not in repr(finding)
    assert all(key not in str(value) for value in (finding.kind, finding.start, finding.end, finding.masked))
    assert finding.masked == "sk-proj-…" + key[-4:]
    assert outcome.findings[0].masked == (finding.masked,)


@pytest.mark.parametrize("kind", sorted(SAMPLE_SECRETS))
def test_each_secret_kind_is_found(kind):
    value = SAMPLE_SECRETS[kind]()
    text = f"Here is the config:\n{value}\nthanks"
    findings = find_secrets(text)
    assert [finding.kind for finding in findings] == [kind]
    assert text[findings[0].start : findings[0].end] == value
    assert value not in repr(findings[0])


def test_aws_secret_key_assignment_is_found():
    value = _random(40, string.ascii_letters + string.digits + "/+")
    findings = find_secrets("[default]\naws_secret_access_key = " + value + "\n")
    assert [finding.kind for finding in findings] == ["aws_secret_access_key"]
    assert findings[0].masked == "…" + value[-4:]


def test_fine_grained_github_token_is_found():
    assert find_secrets("token github_" + "pat_" + _random(82))[0].kind == "github_token"


def test_secret_inside_a_longer_word_is_not_taken():
    assert find_secrets("task-" + "proj-" + _random(40)) == []


def test_high_entropy_is_off_by_default():
    blob = _random(48)
    assert find_secrets(f"token {blob}") == []
    assert [f.kind for f in find_secrets(f"token {blob}", high_entropy=True)] == ["high_entropy_string"]


# --- PII ----------------------------------------------------------------------


@pytest.mark.parametrize("paragraph", PLAIN_PARAGRAPHS)
def test_plain_paragraphs_trigger_nothing(paragraph):
    assert find_pii(paragraph) == []
    assert find_secrets(paragraph) == []
    outcome = apply_input_guardrails([{"role": "user", "content": paragraph}], GuardrailPolicy())
    assert outcome.decision == "allow" and outcome.findings == ()
    assert outcome.messages[0]["content"] == paragraph


def test_card_needs_the_luhn_check():
    assert redact("card 4111 1111 1111 1112 please").text == "card 4111 1111 1111 1112 please"
    assert redact("card 4111 1111 1111 1111 please").text == "card [CARD_1] please"
    assert redact("card 4111-1111-1111-1111.").text == "card [CARD_1]."


def test_iban_needs_the_mod97_check():
    assert redact("pay GB82 WEST 1234 5698 7654 33 now").text == "pay GB82 WEST 1234 5698 7654 33 now"
    assert redact("pay GB82 WEST 1234 5698 7654 32 now").text == "pay [IBAN_1] now"
    assert redact("or DE89370400440532013000.").text == "or [IBAN_1]."


def test_same_value_keeps_its_placeholder():
    text = (
        "From ana@example.com to rui@example.org, cc ANA@example.com. "
        "Call +44 20 7946 0958 or (415) 555-2671; server 10.0.3.17 and fe80::1ff:fe23:4567:890a. "
        "SSN 123-45-6789, NI AB 12 34 56 C."
    )
    result = redact(text)
    assert result.text == (
        "From [EMAIL_1] to [EMAIL_2], cc [EMAIL_1]. "
        "Call [PHONE_1] or [PHONE_2]; server [IP_1] and [IP_2]. "
        "SSN [US_SSN_1], NI [UK_NINO_1]."
    )
    assert all("@" not in f.masked or f.masked.startswith(("a…", "r…", "A…")) for f in result.findings)


def test_invalid_identifiers_are_left_alone():
    for text in [
        "SSN 666-12-3456",
        "SSN 000-12-3456",
        "SSN 123-00-4567",
        "NI QQ 12 34 56 C",
        "IP 999.1.1.1",
        "IP 1.2.3.4.5",
        "time 12:30:45",
        "C++ std::vector and a::b",
    ]:
        assert find_pii(text) == [], text


def test_overlaps_resolve_to_the_longest():
    findings = find_pii("wire to DE89 3704 0044 0532 0130 00 today")
    assert [f.kind for f in findings] == ["iban"]


def test_unknown_kind_is_refused():
    with pytest.raises(ValidationError):
        find_pii("x", kinds=["passport"])


# --- policy -------------------------------------------------------------------

MESSAGES = [
    {"role": "system", "content": "You answer ana@example.com's questions."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "I am ana@example.com, card 4111 1111 1111 1111."},
            {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}},
        ],
    },
]


def test_redact_policy_redacts_every_text_with_shared_placeholders():
    outcome = apply_input_guardrails(MESSAGES, GuardrailPolicy(pii_action="redact"))
    assert outcome.decision == "allow"
    assert outcome.messages[0]["content"] == "You answer [EMAIL_1]'s questions."
    assert outcome.messages[1]["content"][0]["text"] == "I am [EMAIL_1], card [CARD_1]."
    assert outcome.messages[1]["content"][1] == MESSAGES[1]["content"][1]
    assert MESSAGES[1]["content"][0]["text"].startswith("I am ana@")  # input untouched
    assert {(s.rule, s.count, s.action) for s in outcome.findings} == {
        ("pii.email", 2, "redact"),
        ("pii.card", 1, "redact"),
    }
    assert "ana@example.com" not in repr(outcome)


def test_block_policy_per_kind():
    policy = GuardrailPolicy(pii_action="redact", pii_action_by_kind={"card": "block"})
    outcome = apply_input_guardrails(MESSAGES, policy)
    assert outcome.blocked and outcome.rule == "pii.card" and outcome.messages is None


def test_allow_policy_passes_text_through():
    outcome = apply_input_guardrails(MESSAGES, GuardrailPolicy(pii_action="allow"))
    assert outcome.decision == "allow" and outcome.findings == ()
    assert outcome.messages == MESSAGES


def test_secrets_block_even_when_pii_is_allowed():
    messages = [{"role": "user", "content": [{"type": "text", "text": "key " + openai_project_key()}]}]
    outcome = apply_input_guardrails(messages, GuardrailPolicy(pii_action="allow"))
    assert outcome.blocked and outcome.rule == "secret.openai_api_key"


def test_tool_call_arguments_are_checked():
    messages = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "1", "type": "function", "function": {"name": "mail", "arguments": '{"to": "rui@example.org"}'}}
            ],
        }
    ]
    outcome = apply_input_guardrails(messages, GuardrailPolicy())
    assert outcome.messages[0]["tool_calls"][0]["function"]["arguments"] == '{"to": "[EMAIL_1]"}'


def test_policy_refuses_weaker_secrets_action_and_bad_values():
    with pytest.raises(ValidationError):
        GuardrailPolicy(secrets_action="allow")  # pragma: allowlist secret
    with pytest.raises(ValidationError):
        GuardrailPolicy(moderation="maybe")
    with pytest.raises(ValidationError):
        GuardrailPolicy(pii_action_by_kind={"card": "ignore"})


def test_policy_from_stored_dict():
    policy = GuardrailPolicy.from_dict({"pii_action": {"default": "allow", "card": "block"}, "moderation": "hold"})
    assert policy.action_for("card") == "block" and policy.action_for("email") == "allow"
    assert policy.moderation == "hold"


def test_output_scan_flags_secrets_and_pii():
    key = SAMPLE_SECRETS["github_token"]()
    outcome = scan_output(f"Use {key} and mail ana@example.com", GuardrailPolicy())
    assert outcome.decision == "flag" and outcome.rule == "secret.github_token"
    assert key not in repr(outcome)
    assert {s.rule for s in outcome.findings} == {"secret.github_token", "pii.email"}
    assert scan_output(PLAIN_PARAGRAPHS[0], GuardrailPolicy()).decision == "allow"
    assert scan_output("mail ana@example.com", GuardrailPolicy(pii_action="allow")).decision == "allow"


# --- whole request bodies --------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(SAMPLE_SECRETS))
def test_a_secret_in_a_key_blocks_and_the_field_is_named_without_it(kind):
    from core.guardrails import scan_body

    secret = SAMPLE_SECRETS[kind]()
    verdict = scan_body({"model": "m", "metadata": {secret: "x"}}, GuardrailPolicy())
    assert (verdict.decision, verdict.rule, verdict.field, verdict.body) == (
        "block",
        f"secret.{kind}",
        "metadata[…]",
        None,
    )
    assert secret not in repr(verdict)


def test_personal_data_is_redacted_in_free_text_fields_only_and_one_value_keeps_one_placeholder():
    from core.guardrails import scan_body

    body = {
        "model": "gpt-4o-mini",
        "user": "ana@example.com",
        "messages": [{"role": "user", "name": "ana", "content": "Mail bob@example.com, cc ana@example.com"}],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "notify",
                    "description": "Writes to ana@example.com",
                    "parameters": {
                        "type": "object",
                        "properties": {"to": {"type": "string", "enum": ["bob@example.com"]}},
                    },
                },
            }
        ],
    }
    verdict = scan_body(body, GuardrailPolicy(pii_action="redact"))
    sent = verdict.body
    assert sent["user"] == "[EMAIL_1]"
    assert sent["messages"][0]["content"] == "Mail [EMAIL_2], cc [EMAIL_1]"
    assert sent["tools"][0]["function"]["description"] == "Writes to [EMAIL_1]"
    assert sent["tools"][0]["function"]["parameters"]["properties"]["to"]["enum"] == ["[EMAIL_2]"]
    assert sent["messages"][0]["name"] == "ana" and sent["tools"][0]["function"]["name"] == "notify"
    assert body["user"] == "ana@example.com"  # the caller's body is not changed
    [emails] = verdict.findings
    assert emails.fields == (
        "user",
        "messages[0].content",
        "tools[0].function.description",
        "tools[0].function.parameters.properties.to.enum[0]",
    )


def test_personal_data_split_over_two_fields_is_not_joined_into_one():
    from core.guardrails import scan_body

    # The two halves of a card number in two fields: no finding may cross from one into the other.
    verdict = scan_body({"stop": ["4111 1111", "1111 1111"]}, GuardrailPolicy())
    assert verdict.findings == () and verdict.body == {"stop": ["4111 1111", "1111 1111"]}


def test_a_base64_payload_is_not_taken_for_a_random_token_but_the_same_text_is():
    from core.guardrails import scan_body

    policy = GuardrailPolicy(detect_high_entropy_secrets=True)
    blob = _random(120, _ALNUM + "+/")
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{blob}"}}
    assert scan_body({"messages": [{"role": "user", "content": [image]}]}, policy).decision == "allow"
    pasted = scan_body({"messages": [{"role": "user", "content": f"token {blob}"}]}, policy)
    assert (pasted.rule, pasted.field) == ("secret.high_entropy_string", "messages[0].content")


def test_a_field_holding_the_scan_separator_is_still_redacted_in_place():
    from core.guardrails import scan_body

    body = {
        "messages": [
            {"role": "user", "content": "a\n\x00\nana@example.com"},
            {"role": "user", "content": "bob@example.com"},
        ]
    }
    sent = scan_body(body, GuardrailPolicy()).body
    assert [m["content"] for m in sent["messages"]] == ["a\n\x00\n[EMAIL_1]", "[EMAIL_2]"]

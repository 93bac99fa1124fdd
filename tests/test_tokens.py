import json
import math

import pytest

from core.budgets.tokens import (
    chat_input_tokens_estimate,
    chat_input_tokens_upper_bound,
    text_tokens_estimate,
    text_tokens_upper_bound,
)
from core.errors import ValidationError

REALISTIC_TEXTS = [
    "Hello!",
    "Summarize the following customer complaint in three bullet points.",
    "The quick brown fox jumps over the lazy dog. " * 40,
    "Our Q3 revenue grew 12.5% year over year to $4,210,000, driven by enterprise renewals.",
    "def add(a: int, b: int) -> int:\n    return a + b\n\nprint(add(2, 3))\n",
    json.dumps({"order_id": 98231, "items": [{"sku": "A-12", "qty": 3}], "note": None}),
    "Bonjour, je voudrais réserver une table pour deux personnes ce soir à vingt heures.",
    "Sehr geehrte Damen und Herren, anbei erhalten Sie die Unterlagen zur Prüfung.",
    "東京の天気は明日晴れるでしょうか。会議は午後三時からです。",
    "Привет, как дела? Сегодня хорошая погода.",
    "مرحبا، كيف حالك اليوم؟",
    "🎉🚀 Launch day! 👩‍💻 Ship it ✅",
    "SELECT name, SUM(cost_micro) FROM usage WHERE team_id = 7 GROUP BY name ORDER BY 2 DESC;",
    "https://example.com/api/v1/items?filter=active&sort=-created_at&page=3",
    "    \n\n\t   \n",
    "a" * 1000,
    "0123456789" * 50,
]

ENGLISH = REALISTIC_TEXTS[1:4]


@pytest.mark.parametrize("text", REALISTIC_TEXTS)
def test_bound_is_the_byte_count_and_covers_common_estimates(text):
    bound = text_tokens_upper_bound(text)
    assert bound == len(text.encode("utf-8"))
    assert bound >= math.ceil(len(text) / 4)  # the usual chars/4 rule of thumb
    assert bound >= text_tokens_estimate(text)
    assert bound >= len(text.split())  # at least one token per word


def test_bound_is_not_absurdly_loose_for_english():
    # English runs about 4 to 4.5 bytes per o200k token; the bound should stay near that.
    for text in ENGLISH:
        ratio = text_tokens_upper_bound(text) / text_tokens_estimate(text)
        assert 2 <= ratio <= 6, (text, ratio)


def test_estimate_is_close_to_the_known_count_of_simple_english():
    # "The quick brown fox jumps over the lazy dog." is 10 tokens in cl100k and o200k.
    assert 9 <= text_tokens_estimate("The quick brown fox jumps over the lazy dog.") <= 12
    assert text_tokens_estimate("") == 0


def test_chat_bound_adds_template_allowances():
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "name": "alice", "content": "Hi"},
    ]
    texts = ["system", "You are terse.", "user", "alice", "Hi"]
    bound = chat_input_tokens_upper_bound(messages=messages)
    assert bound >= sum(len(t.encode()) for t in texts) + 3 * len(messages) + 3 + 1  # cookbook
    assert bound >= chat_input_tokens_estimate(messages=messages)
    assert bound < 200  # a tiny request stays a tiny reservation


def test_text_parts_tool_calls_and_tool_messages_are_counted():
    plain = chat_input_tokens_upper_bound(messages=[{"role": "user", "content": "x"}])
    parts = chat_input_tokens_upper_bound(messages=[{"role": "user", "content": [{"type": "text", "text": "x" * 100}]}])
    assert parts >= plain + 99
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "lookup", "arguments": '{"q": "' + "y" * 300 + '"}'},
    }
    with_call = chat_input_tokens_upper_bound(
        messages=[
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "z" * 200},
        ]
    )
    assert with_call >= 300 + 200


def test_tools_and_response_format_raise_the_bound():
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string", "description": "City name"},
                        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                    },
                    "required": ["city"],
                },
            },
        }
    ]
    schema = {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}},
    }
    base = chat_input_tokens_upper_bound(messages=messages)
    with_tools = chat_input_tokens_upper_bound(messages=messages, tools=tools)
    with_both = chat_input_tokens_upper_bound(messages=messages, tools=tools, response_format=schema)
    tools_bytes = len(json.dumps(tools).encode())
    assert with_tools >= base + tools_bytes
    assert with_both > with_tools + len(json.dumps(schema))
    assert chat_input_tokens_upper_bound(messages=messages, response_format={"type": "text"}) == base


def test_non_text_parts_are_refused_rather_than_guessed():
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    with pytest.raises(ValidationError, match="'image_url' content part"):
        chat_input_tokens_upper_bound(messages=[{"role": "user", "content": [image]}])


def test_against_a_real_byte_level_bpe_when_one_is_installed():
    # Optional cross-check against real o200k/cl100k encodings, which ship inside the
    # bpe-openai wheel (tiktoken would download them). Skipped when it is not installed.
    bpe_openai = pytest.importorskip("bpe_openai")
    ratios = []
    for name in ("o200k_base", "cl100k_base"):
        encoding = bpe_openai.get_encoding(name)
        for text in REALISTIC_TEXTS:
            real = len(encoding.encode(text))
            assert text_tokens_upper_bound(text) >= real
        for text in ENGLISH:
            ratios.append(text_tokens_upper_bound(text) / len(encoding.encode(text)))
        messages = [{"role": "system", "content": REALISTIC_TEXTS[1]}, {"role": "user", "content": REALISTIC_TEXTS[3]}]
        cookbook = 3 + sum(3 + len(encoding.encode(m["role"])) + len(encoding.encode(m["content"])) for m in messages)
        assert chat_input_tokens_upper_bound(messages=messages) >= cookbook
    assert max(ratios) < 6

"""How long the input guardrails take: median microseconds per scan; and what a prompt
version's escalation rules add to a call (10 rules, compiled once per version).

Run: python bench/guardrails.py
"""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.guardrails import GuardrailPolicy, apply_input_guardrails, find_pii, find_secrets, scan_body  # noqa: E402

PARAGRAPH = (
    "Hi, I'm writing about order 4471923 placed on 12 March 2024. The parcel arrived two weeks "
    "late and the invoice shows $1,299.00 instead of $999.99. Could you summarise the complaint "
    "for the support team, list the dates, and draft a polite reply? Our meeting is 2024-05-14 "
    "at 10:30; Ana (ana@example.com) will join from the Lisbon office. Thanks!\n"
)


TOOL = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Find an order by its number and return its status.",
        "parameters": {
            "type": "object",
            "properties": {
                "order_id": {"type": "string", "description": "The order number, seven digits."},
                "channel": {"type": "string", "enum": ["email", "chat", "phone"]},
            },
            "required": ["order_id"],
        },
    },
}


def sized(target: int) -> str:
    return (PARAGRAPH * (target // len(PARAGRAPH) + 1))[:target]


def median_us(function, repeats: int) -> float:
    for _ in range(50):
        function()
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1e6


def main() -> None:
    policy = GuardrailPolicy()
    for label, size, repeats in (("2 KB prompt", 2048, 3000), ("20 KB document", 20480, 500)):
        text = sized(size)
        messages = [
            {"role": "system", "content": "You are a helpful support assistant."},
            {"role": "user", "content": text},
        ]
        print(f"{label}:")
        print(f"  find_secrets            {median_us(lambda: find_secrets(text), repeats):8.1f} us")
        print(f"  find_pii                {median_us(lambda: find_pii(text), repeats):8.1f} us")
        print(
            f"  apply_input_guardrails  {median_us(lambda: apply_input_guardrails(messages, policy), repeats):8.1f} us"
            "  (messages only)"
        )
        body = {
            "model": "gpt-4o-mini",
            "messages": messages,
            "user": "end-user-42",
            "temperature": 0.2,
            "tools": [TOOL],
            "metadata": {"ticket": "T-1001", "channel": "email"},
        }
        print(
            f"  scan_body               {median_us(lambda: scan_body(body, policy), repeats):8.1f} us"
            "  (every field, a tool and metadata too)"
        )
        print(f"  scan_body, secrets only {median_us(lambda: scan_body(body, policy, pii=False), repeats):8.1f} us")


ANSWER_SCHEMA = {
    "type": "object",
    "required": ["answer", "confidence", "category"],
    "properties": {
        "answer": {"type": "string"},
        "confidence": {"type": "number"},
        "category": {"enum": ["billing", "shipping", "other"]},
        "meta": {"type": "object", "properties": {"risk": {"type": "number"}}},
    },
}


def ten_rules():
    from core.catalog.escalation import EscalationRule

    return (
        EscalationRule("off-schema", {"fails_schema": True}, "block"),
        EscalationRule("low-confidence", {"field": "confidence", "below": 0.6}, "hold"),
        EscalationRule("risky", {"field": "meta.risk", "above": 0.8}, "hold"),
        EscalationRule("legal", {"mentions": ["lawsuit", "attorney", "court", "sue"]}, "review_after"),
        EscalationRule("promises", {"matches": r"(?i)\bguarantee(d)?\b"}, "review_after"),
        EscalationRule("greets", {"not_matches": r"\S"}, "block"),
        EscalationRule("refunds", {"tool_calls": ["issue_refund"]}, "hold"),
        EscalationRule("rambling", {"longer_than_tokens": 600}, "review_after"),
        EscalationRule("personal-data", {"risk_flags": ["pii", "moderation"]}, "hold"),
        EscalationRule("vip", {"variable": "tier", "in": ["gold", "platinum"]}, "review_after"),
    )


def escalation() -> None:
    """Per call: the compiled rules looked up (by content), the answer read, 10 rules evaluated,
    and the variables redacted for the stored payload: everything the gateway adds."""
    import json

    from core.budgets.usage import Usage
    from core.catalog.spec import MessageSpec, ModelParams, VariableSpec, VersionSpec
    from core.gateway import escalation as gateway_escalation
    from core.gateway.call_state import Caller, CallState
    from core.permissions import Actor

    rules = ten_rules()
    spec = VersionSpec(
        messages=(MessageSpec("user", "{{ question }} {{ tier }}"),),
        variables=(VariableSpec("question", "string"), VariableSpec("tier", "string")),
        model="gpt-4o-mini",
        params=ModelParams(
            response_format={"type": "json_schema", "json_schema": {"name": "reply", "schema": ANSWER_SCHEMA}}
        ),
        escalation=rules,
    )
    answer = json.dumps({"answer": sized(900), "confidence": 0.82, "category": "billing", "meta": {"risk": 0.1}})
    response = {"choices": [{"message": {"role": "assistant", "content": answer}}]}
    usage = Usage(input_tokens=300, output_tokens=240)
    variables = {"question": "Where is my refund for order 4471923?", "tier": "standard"}
    compiled = gateway_escalation.rules_of(spec, None)
    assert compiled is not None
    reading = gateway_escalation.Answer(text=answer, variables=variables, output_tokens=240)
    print("Escalation rules (10 rules, a 1 KB JSON answer):")
    print(f"  evaluate (compiled)     {median_us(lambda: compiled.evaluate(reading), 5000):8.1f} us  (the rules alone)")

    def per_call() -> None:
        call = CallState(
            request_id="req_bench", caller=Caller(Actor.system("bench"), team_id=1, key_id=1), kind="chat", started=0.0
        )
        gateway_escalation.attach(call, spec, variables, {})
        gateway_escalation.verdict(call, response, usage)

    print(f"  per call in the gateway {median_us(per_call, 5000):8.1f} us  (look-up, answer read, rules, redaction)")


if __name__ == "__main__":
    main()
    escalation()

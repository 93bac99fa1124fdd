"""How long the input guardrails take: median microseconds per scan.

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


if __name__ == "__main__":
    main()

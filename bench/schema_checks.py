"""What the two anomaly records add to a gateway call: the JSON-schema check of an answer
(compiled once per prompt version), the network prefix of the caller's address, and the
two write-back writers that count them (per batch, on the configured database).

CPU time (time.process_time), median of repeated blocks, in microseconds per call.

Run: python bench/schema_checks.py [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import db, migrate  # noqa: E402
from core.gateway import key_networks, schema_checks  # noqa: E402
from core.gateway.call_state import Caller, CallState  # noqa: E402
from core.permissions import Actor  # noqa: E402

SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": ["billing", "shipping", "returns", "other"]},
        "urgent": {"type": "boolean"},
        "summary": {"type": "string", "maxLength": 400},
        "order_ids": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
    },
    "required": ["category", "urgent", "summary", "order_ids"],
    "additionalProperties": False,
}
# The same shape with a pattern: beyond the fast subset, checked by jsonschema.
PATTERNED = {**SCHEMA, "properties": {**SCHEMA["properties"], "summary": {"type": "string", "pattern": "^[A-Z]"}}}
ANSWER = (
    '{"category": "shipping", "urgent": false, "summary": "The parcel for order 4471923 arrived two weeks '
    'late and the customer asks for the shipping fee back.", "order_ids": ["4471923"]}'
)


def per_call_us(function, calls: int = 2000, blocks: int = 15) -> float:
    timings = []
    for _ in range(blocks):
        started = time.process_time()
        for _ in range(calls):
            function()
        timings.append((time.process_time() - started) / calls)
    return statistics.median(timings) * 1e6


def checks() -> None:
    response = {"choices": [{"message": {"role": "assistant", "content": ANSWER}}]}
    print(f"JSON-schema check of a {len(ANSWER)}-byte answer (per call):")
    for label, schema, version in (("fast subset", SCHEMA, 1), ("jsonschema fallback", PATTERNED, 2)):
        response_format = {"type": "json_schema", "json_schema": {"name": "triage", "schema": schema}}
        call = CallState("req", Caller(actor=Actor.system("bench"), team_id=1, key_id=1), "chat", 0.0)
        call.prompt_version_id = version
        schema_checks.attach(call, SimpleNamespace(params=SimpleNamespace(response_format=response_format)))
        assert schema_checks.validity(call, response) is True
        print(
            f"  {label:<22} {per_call_us(lambda c=call: schema_checks.validity(c, response)):7.1f} us  (parse + check)"
        )
        print(
            f"  {'  version look-up':<22} "
            f"{per_call_us(lambda v=version, f=response_format: schema_checks.compiled_check(v, f)):7.1f} us"
        )
    print(f"  {'network prefix':<22} {per_call_us(lambda: key_networks.network_of('203.0.113.77')):7.1f} us  (IPv4)")
    print(f"  {'':<22} {per_call_us(lambda: key_networks.network_of('2001:db8:1:2::9')):7.1f} us  (IPv6)")


def writers(url: str) -> None:
    engine = db.get_engine(url)
    migrate.upgrade(url)
    now = datetime.now(UTC)
    print(f"\nThe two writers in a write-back transaction ({engine.dialect.name}), rolled back each time:")
    for batch in (1, 8, 32):
        calls = [
            SimpleNamespace(
                network=f"203.0.{i % 4}.0/24",
                schema_valid=i % 5 != 0,
                row={
                    "key_id": 1 + i % 3,
                    "team_id": 1,
                    "created_at": now,
                    "prompt_name": "ticket-triage",
                    "prompt_version": "v2",
                    "model": "gpt-4o-mini",
                },
            )
            for i in range(batch)
        ]
        timings = []
        for _ in range(60):
            with db.write_session(engine) as session:
                session.connection()
                started = time.process_time()
                key_networks.write_key_networks(session, calls)
                schema_checks.write_schema_checks(session, calls)
                timings.append(time.process_time() - started)
                session.rollback()
        median = statistics.median(timings)
        print(f"  batch of {batch:>2}: {median * 1e6:7.0f} us per batch, {median / batch * 1e6:6.0f} us per call")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    checks()
    if args.database_url:
        writers(args.database_url)
    else:
        with tempfile.TemporaryDirectory() as folder:
            writers(f"sqlite:///{folder}/bench.db")


if __name__ == "__main__":
    main()

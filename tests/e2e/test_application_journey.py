"""An application calls Quorum with the official openai SDK and a team key; the call shows
up in finance's Spend export and in the auditor's audit log export."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from urllib.parse import urljoin

import openai
from sqlmodel import select

from core import db
from core.models.budgets import UsageRecord
from core.settings import PROJECT_ROOT
from tests.e2e.conftest import assert_no_errors, open_page, settle, sign_in


def create_key(server) -> str:
    env = {**os.environ, "DATABASE_URL": server.database_url, "QUORUM_DEMO": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "core.cli.main", "keys", "create", "--team", "Support", "--name", "browser-journey"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return re.search(r"\bqk_\S+", done.stdout).group(0)


def support_spent_micro(page) -> int:
    open_page(page, "Spend")
    for _attempt in range(2):
        settle(page)
        with page.expect_download() as download:
            page.get_by_role("button", name="Download CSV").first.click()
        text = open(download.value.path(), encoding="utf-8").read()
        # A rerun that lands between drawing the button and the click replaces the file it
        # served; the browser then saves Streamlit's "not found" text. Ask again once.
        if text.startswith("team,"):
            break
    rows = csv.DictReader(io.StringIO(text))
    assert rows.fieldnames and "team" in rows.fieldnames, text[:300]
    return next(int(row["spent_micro"]) for row in rows if row["team"] == "Support")


def test_an_sdk_call_shows_up_in_spend_and_in_the_audit_log(page, server):
    sign_in(page, "Priya Raman")
    before = support_spent_micro(page)

    client = openai.OpenAI(base_url=f"{server.base}/v1", api_key=create_key(server), max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Where can I download my invoice?"}], max_tokens=200
    )
    completion = raw.parse()
    request_id = raw.headers["x-request-id"]
    assert completion.choices[0].message.content and completion.usage.total_tokens > 0

    with db.session(db.make_engine(server.database_url)) as session:
        row = session.exec(select(UsageRecord).where(UsageRecord.request_id == request_id)).one()
    assert (row.input_tokens, row.output_tokens) == (completion.usage.prompt_tokens, completion.usage.completion_tokens)
    assert row.cost_micro > 0

    open_page(page, "Budgets & prices")  # away and back: Spend reads the ledger again
    assert support_spent_micro(page) - before == row.cost_micro
    assert_no_errors(page, "Spend after the call")

    sign_in(page, "Daniel Kim")
    open_page(page, "Audit log")
    action = page.get_by_role("textbox", name="Action")
    action.fill("gateway.")
    action.press("Enter")
    settle(page)
    # The export streams from the served app's /exports route (the page shows a link to it).
    link = page.get_by_role("link", name="JSON Lines")
    answer = page.request.get(urljoin(page.url, link.get_attribute("href")))
    assert answer.ok and answer.headers["content-disposition"].startswith('attachment; filename="audit-')
    events = [json.loads(line) for line in answer.text().splitlines() if line.strip()]
    assert any(e["target_id"] == request_id and e["action"] == "gateway.call" for e in events)
    assert all(e["action"].startswith("gateway.") for e in events)


def test_a_streamed_call_through_the_served_app_is_read_by_the_sdk_and_billed(server):
    # Streamlit's middleware (gzip among it) sits in front of the gateway here, not in the
    # HTTP tests' server: a stream must come through as events the SDK reads, and the usage
    # in the last one must be what was billed.
    client = openai.OpenAI(base_url=f"{server.base}/v1", api_key=create_key(server), max_retries=0)
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Summarise our refund policy in a paragraph."}],
        stream=True,
        stream_options={"include_usage": True},
    ) as response:
        request_id = response.headers["x-request-id"]
        chunks = list(response.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage = chunks[-1].usage
    assert len(chunks) > 3 and text and usage.completion_tokens > 0

    with db.session(db.make_engine(server.database_url)) as session:
        row = session.exec(select(UsageRecord).where(UsageRecord.request_id == request_id)).one()
    assert (row.input_tokens, row.output_tokens) == (usage.prompt_tokens, usage.completion_tokens)

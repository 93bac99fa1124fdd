"""A prompt engineer writes and submits a version; a governance lead approves it and
moves the production label; applications then resolve to the new version."""

from __future__ import annotations

import re

from playwright.sync_api import TimeoutError as PlaywrightTimeout
from sqlmodel import func, select

from core import db
from core.catalog.resolve import resolve
from core.models.catalog import Prompt, PromptVersion
from tests.e2e.conftest import assert_no_errors, choose, open_page, screenshot, settle, sign_in


def latest_version(server) -> int:
    with db.session(db.make_engine(server.database_url)) as session:
        query = select(func.max(PromptVersion.number)).join(Prompt).where(Prompt.name == "sql-explain")
        return session.exec(query).one()


def production(server):
    with db.session(db.make_engine(server.database_url)) as session:
        return resolve(session, "sql-explain", label="production")


def test_write_submit_approve_promote(page, server):
    before = production(server)

    sign_in(page, "Jonas Berg")
    open_page(page, "Editor")
    choose(page, "Prompt", "sql-explain")
    choose(page, "Start from", f"v{before.version_number} ")
    message = page.get_by_label("Message 0 (Jinja template)")
    message.fill(message.input_value() + "\nName every table the query reads.")
    page.get_by_label("Change note").fill("Ask for the tables the query reads")
    page.get_by_label("Change note").press("Tab")
    settle(page)
    page.get_by_role("button", name="Save as draft").click()
    page.get_by_text("Draft saved").wait_for()
    screenshot(page, "editor")
    page.get_by_role("button", name="Submit for review").last.click()
    page.get_by_text("submitted for review").wait_for()
    assert_no_errors(page, "Editor")

    sign_in(page, "Lena Fischer")
    open_page(page, "Review queue")
    heading = page.get_by_role("heading", name=re.compile(r"^sql-explain v\d+")).first
    card = heading.locator("xpath=ancestor::div[@data-testid='stVerticalBlock'][1]")
    card.get_by_label("Comment (required)").fill("Reads clearer; approved.")
    card.get_by_label("Comment (required)").press("Tab")
    settle(page)
    screenshot(page, "review_queue")
    card.get_by_role("button", name="Approve").click()
    page.get_by_text(re.compile(r"^Approved sql-explain v\d+$")).wait_for()
    assert_no_errors(page, "Review queue after approval")

    choose(page, "Prompt", "sql-explain")
    newest = f"v{latest_version(server)}"
    choose(page, "Approved version", newest)
    assert page.get_by_role("combobox", name="Approved version").input_value() == newest
    question = page.get_by_text(re.compile(rf"^Point 'production' at {newest} instead of v\d+\?"))
    version = page.get_by_role("combobox", name="Approved version")
    prompt = page.get_by_role("combobox", name="Prompt")
    for _attempt in range(4):
        # On a loaded machine the selection's rerun can start after `choose` saw the page
        # settle; a click that lands before it asks about the old selection, and the page
        # then drops that question (a changed selection changes nothing). A late rerun of the
        # prompt's choice can also reset the prompt or the version to the list's first.
        # Choose both again and ask again.
        if prompt.input_value() != "sql-explain":
            choose(page, "Prompt", "sql-explain")
        if version.input_value() != newest:
            choose(page, "Approved version", newest)
        page.get_by_role("button", name="Move label here", exact=True).click()
        try:
            question.wait_for(timeout=15_000)
            break
        except PlaywrightTimeout:
            settle(page)
    question.wait_for()
    page.get_by_role("button", name="Yes, move label here").click()
    page.get_by_text("'production' now points at").wait_for()
    assert_no_errors(page, "Review queue after the label move")

    after = production(server)
    assert after.version_number > before.version_number
    system = after.spec.messages[0].content
    assert system.startswith(before.spec.messages[0].content.rstrip())
    assert system.rstrip().endswith("Name every table the query reads.")
    open_page(page, "Catalog")
    screenshot(page, "catalog")

"""An admin works the demo's spend incidents on Alerts in the real app: reads them in words
with the chart against the usual band, follows the jump to Observability, acknowledges one,
resolves another with a note after a confirmation whose Cancel changes nothing, and finds
both steps in the audit log's export.

The journey changes alerts, so it runs on a server and database of its own: the other
journeys' Homes still see the demo's open alerts, whatever order the files run in."""

from __future__ import annotations

import json
import re
from urllib.parse import urljoin

import pytest

from tests.e2e.conftest import assert_no_errors, open_page, screenshot, settle, sign_in, start_server

SPEND_SENTENCE = re.compile(r"^Team Marketing spent \$[\d,]+\.\d{2} in the hour")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tests.e2e.conftest import require_chromium

    require_chromium()
    with start_server(tmp_path_factory.mktemp("alerts"), {"QUORUM_DEMO": "1"}, db_suffix="alerts") as running:
        yield running


def _pick(page, option: str) -> None:
    box = page.get_by_role("combobox", name="Alert")
    box.click()
    box.fill(option)
    box.press("Enter")
    settle(page)
    assert box.input_value() == option, box.input_value()


def _options(page) -> list[str]:
    box = page.get_by_role("combobox", name="Alert")
    box.click()
    page.get_by_role("option").first.wait_for()
    options = page.get_by_role("option").all_inner_texts()
    box.press("Escape")
    return options


def _choose_team_spend_alert(page, team: str) -> str:
    """Pick the open spend alert of the team `team` itself (not one of its prompts' or keys')
    in the "Alert" box, by the sentence it shows; returns its number."""
    for option in [o for o in _options(page) if re.match(rf"#\d+ Spend surge · {team} · open$", o)]:
        _pick(page, option)
        if page.locator('[data-testid="stText"]').filter(has_text=f"Team {team} spent").count():
            return re.match(r"#(\d+) ", option).group(1)
    raise AssertionError(f"no open spend alert of team {team}")


def _shown_alert(page) -> str:
    return page.get_by_role("combobox", name="Alert").input_value()


def test_an_admin_works_the_demo_spend_incidents_and_the_audit_log_shows_each_step(page, server):
    sign_in(page, "Amara Okafor")
    open_page(page, "Alerts")
    assert_no_errors(page, "Alerts")
    # The chosen alert in words (the table's cells are drawn on a canvas).
    acknowledged = _choose_team_spend_alert(page, "Marketing")
    sentence = page.locator('[data-testid="stText"]').filter(has_text=SPEND_SENTENCE).first
    sentence.wait_for()
    assert "its usual for a" in sentence.inner_text()
    # The chart: the observed series, the usual band (a filled area) and the anomaly marked.
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    chart.wait_for()
    chart.locator(".legendtext").first.wait_for()
    assert set(chart.locator(".legendtext").all_text_contents()) >= {"usual", "observed", "anomaly"}
    assert chart.locator(".js-fill").count() >= 1
    screenshot(page, "alerts")

    # The jump to the calls of that hour: Observability by the hour, filtered to the alert's team.
    page.get_by_role("button", name="Calls of this hour in Observability").click()
    page.wait_for_url(re.compile(r"/observability(\?.*)?$"))
    settle(page)
    page.get_by_text("Breakdown over the whole period").wait_for()
    teams_filter = page.locator('[data-testid="stMultiSelect"]', has_text="Teams").first
    assert "Marketing" in teams_filter.inner_text()
    assert_no_errors(page, "Observability from an alert")

    # Acknowledge Marketing's incident.
    open_page(page, "Alerts")
    _pick(page, f"#{acknowledged} Spend surge · Marketing · open")
    page.get_by_role("button", name="Acknowledge").click()
    page.get_by_text(f"Alert #{acknowledged} acknowledged").wait_for()
    settle(page)
    assert_no_errors(page, "Alerts after acknowledging")

    # Resolve Legal's with a note: the confirmation first, and Cancel leaves it open.
    resolved = _choose_team_spend_alert(page, "Legal")
    note = page.get_by_role("textbox", name="Note")
    note.fill("A month-end batch job re-ran; stopped by the team")
    note.press("Enter")
    settle(page)
    page.get_by_role("button", name="Resolve", exact=True).click()
    question = page.get_by_text(re.compile(rf"^Resolve alert #{resolved} \(Spend surge\)\?"))
    question.wait_for()
    page.get_by_role("button", name="Cancel").click()
    question.wait_for(state="detached")
    settle(page)
    assert page.get_by_text(f"Alert #{resolved} resolved").count() == 0
    assert _shown_alert(page) == f"#{resolved} Spend surge · Legal · open"
    page.get_by_role("button", name="Resolve", exact=True).click()
    page.get_by_role("button", name="Yes, resolve").click()
    page.get_by_text(f"Alert #{resolved} resolved").wait_for()
    settle(page)
    assert_no_errors(page, "Alerts after resolving")
    # Resolved alerts leave the open list; the acknowledged one stays, marked so.
    options = _options(page)
    assert f"#{acknowledged} Spend surge · Marketing · acknowledged" in options, options
    assert not [o for o in options if o.startswith(f"#{resolved} ")], options

    # The audit log has both steps, by this admin, with the note.
    open_page(page, "Audit log")
    action = page.get_by_role("textbox", name="Action")
    action.fill("anomaly.alert.")
    action.press("Enter")
    settle(page)
    assert_no_errors(page, "Audit log")
    link = page.get_by_role("link", name="JSON Lines")
    answer = page.request.get(urljoin(page.url, link.get_attribute("href")))
    assert answer.ok
    events = [json.loads(line) for line in answer.text().splitlines() if line.strip()]
    steps = {(e["action"], e["target_id"]): e for e in events if e["action"] != "anomaly.alert.open"}
    assert set(steps) == {("anomaly.alert.acknowledge", acknowledged), ("anomaly.alert.resolve", resolved)}
    resolution = steps[("anomaly.alert.resolve", resolved)]
    assert "A month-end batch job re-ran" in json.dumps(resolution["after"])
    assert {e["actor"] for e in steps.values()} == {resolution["actor"]}
    assert resolution["actor"].startswith("person:")

"""Each page's time to usable, measured in the browser by the journeys and printed at the
end of the run (tests/e2e/conftest.py). One module of its own, so that the recording and
the printing share one table however conftest is imported."""

from __future__ import annotations

# The page counts as usable once, for USABLE_FOR_MS on end, its main content is drawn (a
# title other than the one shown before the click), the script has finished its run (the
# state Streamlit's own browser tests read), no element of the previous run is left (stale)
# and the "running" indicator is gone.
# The time is taken when that calm began, measured by the browser's own clock.
USABLE_FOR_MS = 400
_USABLE_SCRIPT = """([minimum]) => {
    const now = performance.now();
    const title = document.querySelector('[data-testid="stMain"] h1');
    const app = document.querySelector('[data-testid="stApp"]');
    const calm = title !== null
        && (title !== window.__quorumOldTitle || title.textContent !== window.__quorumOldText)
        && app !== null && app.getAttribute("data-test-script-state") === "notRunning"
        && document.querySelectorAll('[data-stale="true"]').length === 0
        && document.querySelectorAll('[data-testid="stSkeleton"]').length === 0
        && !Array.from(document.querySelectorAll('[data-testid="stStatusWidget"]'))
            .some((w) => w.getClientRects().length > 0);
    if (!calm) { window.__quorumCalmSince = undefined; return false; }
    if (window.__quorumCalmSince === undefined) { window.__quorumCalmSince = now; }
    return now - window.__quorumCalmSince >= minimum
        ? (window.__quorumCalmSince - window.__quorumOpenedAt) / 1000 : false;
}"""
_START_SCRIPT = """() => {
    const title = document.querySelector('[data-testid="stMain"] h1');
    window.__quorumOldTitle = title;
    window.__quorumOldText = title ? title.textContent : null;
    window.__quorumCalmSince = undefined;
    window.__quorumOpenedAt = performance.now();
}"""
TIMES_TO_USABLE: dict[str, list[float]] = {}


def start_clock(page) -> None:
    """Call just before the click that opens a page."""
    page.evaluate(_START_SCRIPT)


def record_time_to_usable(page, title: str) -> float:
    seconds = page.wait_for_function(_USABLE_SCRIPT, arg=[USABLE_FOR_MS], polling=50, timeout=60_000).json_value()
    TIMES_TO_USABLE.setdefault(title, []).append(float(seconds))
    return float(seconds)

"""No table on any page shows a missing value as the word "None", "nan" or "NaT": every
role opens every page of theirs on the full demo, and every dataframe cell is checked."""

from __future__ import annotations

import pandas as pd
import pytest

from core.permissions import Role
from pages.ui.registry import pages_for
from tests.conftest import People
from tests.test_pages import EMAIL_BY_ROLE, signed_in

MISSING_WORDS = {"None", "none", "nan", "NaN", "NaT", "null", "<NA>"}


def bad_cells(frame: pd.DataFrame) -> list[tuple[str, object]]:
    found = []
    for column in frame.columns:
        for value in frame[column]:
            if isinstance(value, list | tuple | dict):
                continue
            if value is None or (not isinstance(value, str) and pd.isna(value)) or str(value).strip() in MISSING_WORDS:
                found.append((str(column), value))
    return found


@pytest.mark.parametrize("role", list(Role))
def test_no_table_shows_none_for_any_role(demo_data, role):
    session = demo_data
    actor = People(session).with_role(role)
    problems = {}
    for spec in pages_for(actor):
        at = signed_in(session, EMAIL_BY_ROLE[role])
        at.switch_page(spec.path).run()
        assert not at.exception, (spec.path, at.exception)
        for index, table in enumerate(at.dataframe):
            cells = bad_cells(table.value)
            if cells:
                problems[f"{spec.path} table {index}"] = sorted({c for c, _v in cells})
    assert not problems, problems

"""No page shows a traceback for a figure out of range: every number input of every page, and
every text field that takes a number, is fed 1e18, -1, NaN and text, and each form is
submitted with it, as the role that may use the page.

AppTest sends the values to the server as they are, without the browser's clamping to a
field's minimum and maximum: the server has to hold on its own, as it does against a
hand-made request.
"""

from __future__ import annotations

import math
import re

import pytest
from streamlit.proto.NumberInput_pb2 import NumberInput as NumberInputProto
from streamlit.testing.v1 import AppTest

from core import demo
from core.identity import people as identity
from core.permissions import Actor, Role
from pages.ui.registry import PAGES
from tests.conftest import APP

# The first role (in this order) that may use a page is the one that exercises its forms.
ROLE_ORDER = (Role.ADMIN, Role.FINANCE, Role.PROMPT_ENGINEER, Role.GOVERNANCE_LEAD, Role.AUDITOR)
EMAIL_BY_ROLE = {role: next(e for _n, e, roles, _t in demo.PEOPLE if role in roles) for role in Role}
NUMBERS = (1e18, -1.0, math.nan)
TEXTS = ("1e18", "-1", "NaN", "lots")
# Text fields that take a figure: money, percentages, prices, retention periods, limits.
NUMERIC_TEXT = re.compile(r"USD|%|^Input$|^Cached input|^Output \(|^Period \(|^Temperature|^(Requests|Tokens) of", re.I)


def role_for(path: str) -> Role:
    spec = next(p for p in PAGES if p.path == path)
    return next(
        r for r in ROLE_ORDER if spec.permission is None or Actor("t", "t", roles=frozenset({r})).can(spec.permission)
    )


def opened(session, path: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.session_state["demo_person_id"] = identity.person_by_email(session, EMAIL_BY_ROLE[role_for(path)]).id
    at.run()
    at.switch_page(path).run()
    assert_no_traceback(at, f"{path} before any input")
    return at


def assert_no_traceback(at: AppTest, where: str) -> None:
    assert not at.exception, f"{where}: {at.exception[0].message if at.exception else ''}"
    for error in at.error:
        assert "Traceback" not in error.value and 'File "' not in error.value, f"{where}: {error.value}"


def fed(at: AppTest, widget, value) -> None:
    """Set `value` and run; when the widget sits in a form, submit that form too."""
    widget.set_value(value)
    submit = [b for b in at.button if widget.form_id and b.form_id == widget.form_id]
    if submit:
        # A choice left empty (the key form's team) would stop the form before the figure
        # reaches core: pick the first option, as a person filling the form would.
        for box in at.selectbox:
            if box.form_id == widget.form_id and box.value is None and box.options:
                box.set_value(first_option(box))
        submit[0].click()
    at.run()


def first_option(box):
    """The value behind a selectbox's first label. Options reach AppTest as labels; a box of
    ids (teams, people) labels them through its format function, so find the id it labels."""
    label = box.options[0]
    for candidate in range(1, 1000):
        try:
            if str(box.format_func(candidate)) == label:
                return candidate
        except (KeyError, IndexError, TypeError):
            continue
    return label


def numeric_text_fields(at: AppTest) -> list:
    return [t for t in at.text_input if NUMERIC_TEXT.search(t.label)]


@pytest.mark.parametrize("path", [p.path for p in PAGES])
def test_every_number_field_of_a_page_takes_out_of_range_values_without_a_traceback(demo_data, path):
    at = opened(demo_data, path)
    numbers = [(n.key or n.label, n.proto.data_type == NumberInputProto.INT) for n in at.number_input]
    texts = [t.key or t.label for t in numeric_text_fields(at)]
    for name, whole in numbers:
        for value in NUMBERS:
            if whole and math.isnan(value):
                continue  # an integer field cannot carry NaN, even in a hand-made request
            at = opened(demo_data, path)
            widget = next(n for n in at.number_input if (n.key or n.label) == name)
            fed(at, widget, int(value) if whole else value)
            assert_no_traceback(at, f"{path}: {name} = {value}")
    for name in texts:
        for text in TEXTS:
            at = opened(demo_data, path)
            widget = next(t for t in at.text_input if (t.key or t.label) == name)
            fed(at, widget, text)
            assert_no_traceback(at, f"{path}: {name} = {text!r}")

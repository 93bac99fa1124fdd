"""The prompt editor speaks to the person typing: problems in plain words, listed once, saving
offered when there are none, and a model without a price called out before it is saved."""

from __future__ import annotations

from sqlmodel import select

from core.models.catalog import Prompt
from tests.test_pages import errors_of, signed_in

TOM = "tom.becker@example.com"


def _new_prompt(session):
    at = signed_in(session, TOM)
    at.switch_page("pages/prompt_editor.py").run()
    assert not at.exception
    assert at.selectbox(key="editor_prompt").value is None  # Tom's team has no prompt yet: a new one
    return at


def _problems(at) -> str:
    return " ".join(w.value for w in at.warning if w.value.startswith("Not a valid version yet"))


def test_an_empty_new_prompt_lists_its_problems_in_plain_words_and_cannot_be_saved(session, directory):
    at = _new_prompt(session)
    at.text_input(key="editor_new_name").input("Refund Answer!").run()
    problems = _problems(at)
    assert "write at least one message" in problems
    assert "'Refund Answer!' is not a valid name" in problems and "e.g. refund-answer" in problems
    assert "say what the prompt is for" in problems
    # No regular expression or JSON Schema wording quoted at the person typing.
    assert "a-z0-9" not in problems and "should be non-empty" not in problems and "does not match" not in problems
    assert at.button(key="editor_save").disabled
    assert not errors_of(at)  # listed once, as a warning, not again as an error


def test_a_model_without_a_price_is_called_out_and_a_valid_prompt_saves(session, directory):
    at = _new_prompt(session)
    at.text_input(key="editor_new_name").input("refund-answer")
    at.text_area(key="editor_new_purpose").input("Answer refund questions")
    at.text_input(key="editor_model_new").input("gpt-9-ultra")
    at.text_area(key="editor_content_0_new").input("Answer: {{ question }}")
    at.text_area(key="editor_variables_new").input("question: string: the customer's question")
    at.text_input(key="editor_note_new").input("First version").run()
    assert _problems(at) == ""
    assert any("gpt-9-ultra has no price" in w.value and "(model_not_priced)" in w.value for w in at.warning)
    assert not at.button(key="editor_save").disabled
    at.button(key="editor_save").click().run()
    assert not errors_of(at)
    session.rollback()
    assert session.exec(select(Prompt.name)).all() == ["refund-answer"]

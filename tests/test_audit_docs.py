"""The README's promises about the audit log name exactly what the verifier and its attack tests do."""

from __future__ import annotations

import re
from pathlib import Path

from core.audit import checkpoints as audit_checkpoints
from core.audit import verify as audit_verify
from tests import test_audit_properties as properties

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def section() -> str:
    start = README.index("## Tamper-evident audit log")
    return README[start : README.index("\n## ", start + 1)]


def listed(label: str) -> list[str]:
    """The comma-separated list after `label:` on its own line of the section."""
    match = re.search(rf"^(?:- )?{re.escape(label)}: (.+?)\.$", section(), re.MULTILINE)
    assert match, f"README's audit section lost the line '{label}: ...'"
    return match.group(1).split(", ")


def test_the_kinds_the_readme_lists_are_the_kinds_verify_reports():
    assert listed("Kinds") == list(audit_verify.KINDS)


def test_what_goes_unseen_without_a_key_is_what_the_property_tests_find_unseen():
    assert listed("Without a signing key, undetectable") == list(properties.UNDETECTABLE_WITHOUT_KEY)
    assert listed("With a signing key also detected") == list(properties.UNDETECTABLE_WITHOUT_KEY)
    assert listed("Always detected") == list(properties.DETECTABLE)


def test_the_warning_without_a_key_says_the_same():
    warning = audit_checkpoints.NO_KEY_WARNING
    assert "deleting the newest events or recomputing the whole chain after an edit would go unnoticed" in warning
    assert "Edits, deletions, insertions and reorderings inside the chain are still detected" in warning


def test_every_move_the_property_tests_make_belongs_to_a_class_the_readme_names():
    named = set(properties.DETECTABLE) | set(properties.UNDETECTABLE_WITHOUT_KEY)
    assert set(properties.CLASS_OF.values()) == named

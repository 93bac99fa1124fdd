"""``prompts/*.yaml`` in and out of the catalog, for review in git.

Import is all or nothing and idempotent: every file is validated (and every permission
checked) before anything is written, then one transaction creates new prompts, adds a
draft version for each changed file, and leaves a file alone when its content equals a
version the prompt already has (whatever that version's state), so re-importing an
export, or the same directory twice, writes nothing.

Export writes, per prompt, its latest approved version, or its latest version when none
is approved yet: the file then holds what applications run (or will run first), and
importing the directory into an empty catalog gives the same content hashes.

A file whose risk tier differs from the stored prompt's changes the tier only as
core.catalog.risk allows (a lower tier only by a governance lead); a refused change
refuses the whole import, before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlmodel import Session, col, select

from core.audit.record import committing, record
from core.catalog import risk
from core.catalog.files import PROMPT_FILE_SUFFIX, dump_prompt_file, load_directory
from core.catalog.spec import PromptSpec, VersionSpec, content_hash
from core.catalog.store import APPROVED, insert_prompt, insert_version, prompt_spec, version_spec, versions_of
from core.db import saved_id
from core.errors import Conflict, PermissionDenied, ValidationError
from core.identity import people as identity
from core.models.catalog import Prompt
from core.permissions import Actor, Permission, require


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)  # new prompts (with version 1)
    new_versions: list[str] = field(default_factory=list)  # 'name v3'
    unchanged: list[str] = field(default_factory=list)
    updated_metadata: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{len(self.created)} new prompts, {len(self.new_versions)} new draft versions, "
            f"{len(self.unchanged)} unchanged, {len(self.updated_metadata)} with updated details"
        )


def import_directory(*, session: Session, actor: Actor, directory: str | Path) -> ImportReport:
    loaded = load_directory(directory)
    if not loaded:
        raise ValidationError(f"{directory}: no *{PROMPT_FILE_SUFFIX} prompt files")
    plan = []
    for spec, version in loaded:
        team = identity.team_by_name(session, spec.team)
        require(actor, Permission.PROMPT_WRITE, team_id=team.id)
        existing = session.exec(select(Prompt).where(Prompt.name == spec.name)).first()
        if existing is not None and existing.team_id != team.id:
            owner = prompt_spec(session, existing).team
            raise Conflict(
                f"{Path(directory) / (spec.name + PROMPT_FILE_SUFFIX)}: the prompt belongs to "
                f"team {owner}, not {spec.team}; a prompt cannot change team by import"
            )
        if existing is not None:
            refused = risk.refusal(actor, existing, spec.risk_tier)
            if refused:
                raise PermissionDenied(
                    f"{Path(directory) / (spec.name + PROMPT_FILE_SUFFIX)}: {refused}; nothing was imported"
                )
        plan.append((spec, version, saved_id(team), existing))

    report = ImportReport()
    with committing(session):
        for spec, version, team_id, existing in plan:
            if not version.change_note.strip():
                version = _with_note(version, f"Imported from {spec.name}{PROMPT_FILE_SUFFIX}")
            if existing is None:
                insert_prompt(session, actor, spec, version, team_id)
                report.created.append(spec.name)
                continue
            if _update_metadata(session, actor, existing, spec):
                report.updated_metadata.append(spec.name)
            if content_hash(version) in {v.content_hash for v in versions_of(session, saved_id(existing))}:
                report.unchanged.append(spec.name)
            else:
                stored = insert_version(session, actor, existing, version)
                report.new_versions.append(f"{spec.name} v{stored.number}")
    return report


def export_directory(*, session: Session, actor: Actor, directory: str | Path) -> list[Path]:
    """Write one file per prompt (see the module note for which version); returns the paths."""
    require(actor, Permission.CATALOG_READ)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for prompt in session.exec(select(Prompt).order_by(col(Prompt.name))):
        versions = versions_of(session, saved_id(prompt))
        if not versions:
            continue
        approved = [v for v in versions if v.state == APPROVED]
        chosen = (approved or versions)[-1]
        path = directory / f"{prompt.name}{PROMPT_FILE_SUFFIX}"
        path.write_text(dump_prompt_file(prompt_spec(session, prompt), version_spec(chosen)), encoding="utf-8")
        written.append(path)
    return written


def _update_metadata(session: Session, actor: Actor, prompt: Prompt, spec: PromptSpec) -> bool:
    tier_changed = spec.risk_tier != prompt.risk_tier
    if tier_changed:  # allowed: checked with every file before the import began
        risk.apply_change(session, actor, prompt, spec.risk_tier)
    before = {"purpose": prompt.purpose, "data_classification": prompt.data_classification}
    after = {"purpose": spec.purpose.strip(), "data_classification": spec.data_classification}
    if before == after:
        return tier_changed
    prompt.purpose, prompt.data_classification = after.values()
    session.add(prompt)
    record(
        session,
        actor=actor,
        action="prompt.update",
        target_type="prompt",
        target_id=saved_id(prompt),
        team_id=prompt.team_id,
        before=before,
        after=after,
    )
    return True


def _with_note(version: VersionSpec, note: str) -> VersionSpec:
    return replace(version, change_note=note)

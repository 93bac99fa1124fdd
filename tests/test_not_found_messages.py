"""A missing row looked up by id reads the same everywhere: "No <what> with id <id>"."""

import pytest

from core import db
from core.budgets import config as budget_config
from core.budgets import prices
from core.catalog import store
from core.errors import NotFound
from core.experiments import testset_store
from core.identity import people
from core.models.identity import Team
from core.permissions import Role
from core.retention import holds

MISSING = 987654


def test_the_shared_lookup_returns_the_row_or_names_what_is_missing(session, directory):
    team = people.list_teams(session)[0]
    assert db.get_or_not_found(session, Team, team.id, "team").name == team.name
    with pytest.raises(NotFound) as missing:
        db.get_or_not_found(session, Team, MISSING, "team")
    assert str(missing.value) == f"No team with id {MISSING}"


@pytest.mark.parametrize(
    ("lookup", "message"),
    [
        (lambda s, _d: people.get_team(s, MISSING), f"No team with id {MISSING}"),
        (lambda s, _d: store.get_prompt(s, MISSING), f"No prompt with id {MISSING}"),
        (lambda s, _d: store.get_version(s, MISSING), f"No prompt version with id {MISSING}"),
        (lambda s, _d: testset_store.get_testset(s, MISSING), f"No test set with id {MISSING}"),
        (lambda s, _d: budget_config.get_budget(s, MISSING), f"No budget with id {MISSING}"),
        (
            lambda s, d: holds.release_hold(session=s, actor=d.with_role(Role.GOVERNANCE_LEAD), hold_id=MISSING),
            f"No legal hold with id {MISSING}",
        ),
        (
            lambda s, d: prices.delete_override(session=s, actor=d.admin, override_id=MISSING),
            f"No price override with id {MISSING}",
        ),
    ],
)
def test_each_lookup_by_id_keeps_its_message(session, directory, lookup, message):
    with pytest.raises(NotFound) as missing:
        lookup(session, directory)
    assert str(missing.value) == message

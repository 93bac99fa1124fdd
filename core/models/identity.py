"""People, teams, memberships and role grants.

Names and e-mails live only here: audit events refer to people by id, so erasing a
person's personal data never touches the audit chain.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from core import clock
from core.models.types import UtcDateTime


class Team(SQLModel, table=True):
    __tablename__ = "team"
    __table_args__ = (UniqueConstraint("name_key", name="uq_team_name_key"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=80)
    # Lower-cased name: team names are unique regardless of case.
    name_key: str = Field(max_length=80)
    description: str = Field(default="", max_length=500)
    # The code finance charges the team's spend to (chargeback statements); admin-set.
    cost_center: str = Field(default="", max_length=40)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)


class Person(SQLModel, table=True):
    __tablename__ = "person"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    display_name: str = Field(max_length=120)
    active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)


class Membership(SQLModel, table=True):
    __tablename__ = "membership"

    person_id: int = Field(sa_column=Column(Integer, ForeignKey("person.id", ondelete="CASCADE"), primary_key=True))
    team_id: int = Field(sa_column=Column(Integer, ForeignKey("team.id", ondelete="CASCADE"), primary_key=True))


class RoleGrant(SQLModel, table=True):
    __tablename__ = "role_grant"

    person_id: int = Field(sa_column=Column(Integer, ForeignKey("person.id", ondelete="CASCADE"), primary_key=True))
    role: str = Field(max_length=32, primary_key=True)
    granted_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)

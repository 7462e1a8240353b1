"""Inputs to the incident workflow: one model per command, so each can grow optional fields."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, field_validator, model_validator

from domain.deadlines import DeadlineTracker
from domain.failure_modes import Slug
from domain.identity import ActorField
from domain.incident import Incident, Role
from domain.keys import INCIDENT_KEY
from domain.limits import NAMES_ITEMS, TITLE_CHARS, Moment, Name, Note, SearchName, Text
from domain.policy import Policy
from domain.severity import Severity


def _person(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("a person's name or handle is required")
    return value


class NewIncident(BaseModel):
    """What a person gives to declare an incident (the CLI's and the API's input)."""

    title: str = Field(min_length=1, max_length=TITLE_CHARS)
    severity: Severity
    services: list[SearchName] = Field(default_factory=list, max_length=NAMES_ITEMS)
    teams: list[SearchName] = Field(default_factory=list, max_length=NAMES_ITEMS)
    summary: Note | None = None
    declared_by: Name = "unknown"
    actor: ActorField = None
    started_at: Moment | None = Field(
        default=None, description="when impact began, if earlier than the declaration"
    )
    detected_at: Moment | None = Field(default=None, description="when impact was noticed")
    failure_modes: list[Slug] = Field(
        default_factory=list,
        max_length=NAMES_ITEMS,
        description="the library's failure modes it is already known to be, by slug",
    )

    @field_validator("title")
    @classmethod
    def _title_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a title is required")
        return value.strip()

    @field_validator("started_at", "detected_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone, e.g. 2026-11-27T14:03:00Z")
        return value

    @model_validator(mode="after")
    def _started_before_detected(self) -> NewIncident:
        if self.started_at and self.detected_at and self.started_at > self.detected_at:
            raise ValueError("started_at must not be later than detected_at")
        return self


class CarriedOver(BaseModel):
    """What a run hands the next one when it continues as new to keep its history short."""

    incident: Incident
    deadlines: DeadlineTracker


class DeclareIncident(NewIncident):
    """Start input of IncidentWorkflow; `policy` is the snapshot the incident runs under."""

    key: str
    policy: Policy
    history_limit: int = Field(
        default=10_000, ge=20, description="events in one run before it continues as new"
    )
    record_facts: bool = Field(
        default=True,
        description="whether the incident and its items write their facts to the insights read "
        "model; off only to measure what the writes cost (bench/insights.py)",
    )
    carried_over: CarriedOver | None = None

    @field_validator("key")
    @classmethod
    def _key_shape(cls, value: str) -> str:
        if not INCIDENT_KEY.match(value):
            raise ValueError("expected an incident key such as INC-261127-7KQ2")
        return value


class Acknowledge(BaseModel):
    commander: Name
    by: Name | None = None
    actor: ActorField = None

    _check_commander = field_validator("commander")(_person)


class AssignRole(BaseModel):
    role: Role
    person: Name
    by: Name | None = None
    actor: ActorField = None

    _check_person = field_validator("person")(_person)


class SetSeverity(BaseModel):
    severity: Severity
    reason: Text | None = None
    by: Name | None = None
    actor: ActorField = None


class AddTimelineEvent(BaseModel):
    text: Note
    at: Moment | None = None
    by: Name | None = None
    actor: ActorField = None

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the timeline event needs text")
        return value.strip()


class Transition(BaseModel):
    """mitigate and resolve: an optional note, and an optional earlier time it happened."""

    note: Note | None = None
    at: Moment | None = None
    by: Name | None = None
    actor: ActorField = None


class Cancel(BaseModel):
    reason: Text
    by: Name | None = None
    actor: ActorField = None

"""Inputs to the incident workflow: one model per command, so each can grow optional fields."""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, Field, field_validator, model_validator

from domain.deadlines import DeadlineTracker
from domain.incident import Incident, Role
from domain.policy import Policy
from domain.severity import Severity

INCIDENT_KEY = re.compile(r"^[A-Z][A-Z0-9]*-[A-Z0-9-]{1,40}$")


def _person(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("a person's name or handle is required")
    return value


class NewIncident(BaseModel):
    """What a person gives to declare an incident (the CLI's and the API's input)."""

    title: str = Field(min_length=1, max_length=200)
    severity: Severity
    services: list[str] = Field(default_factory=list)
    teams: list[str] = Field(default_factory=list)
    summary: str | None = None
    declared_by: str = "unknown"
    started_at: datetime | None = Field(
        default=None, description="when impact began, if earlier than the declaration"
    )
    detected_at: datetime | None = Field(default=None, description="when impact was noticed")

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
    carried_over: CarriedOver | None = None

    @field_validator("key")
    @classmethod
    def _key_shape(cls, value: str) -> str:
        if not INCIDENT_KEY.match(value):
            raise ValueError("expected an incident key such as INC-261127-7KQ2")
        return value


class Acknowledge(BaseModel):
    commander: str
    by: str | None = None

    _check_commander = field_validator("commander")(_person)


class AssignRole(BaseModel):
    role: Role
    person: str
    by: str | None = None

    _check_person = field_validator("person")(_person)


class SetSeverity(BaseModel):
    severity: Severity
    reason: str | None = None
    by: str | None = None


class AddTimelineEvent(BaseModel):
    text: str
    at: datetime | None = None
    by: str | None = None

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the timeline event needs text")
        return value.strip()


class Transition(BaseModel):
    """mitigate and resolve: an optional note, and an optional earlier time it happened."""

    note: str | None = None
    at: datetime | None = None
    by: str | None = None


class Cancel(BaseModel):
    reason: str
    by: str | None = None

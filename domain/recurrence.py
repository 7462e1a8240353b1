"""Repeat incidents: an incident that fails the way an earlier one did, within the window.

At declaration an incident is matched with the earlier incidents of the same service or the
same failure mode declared within the policy's `repeat_window`; at review, with those of the
failure modes the review names. What it finds is kept on the incident (`Recurrence`): the
earlier incidents and the state of their action items, so that the incident shows "this
failure happened on INC-…, and its item INC-…-2 is still open and overdue at the manager rung".
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from domain.action_item import ActionItemState
from domain.limits import Key, Link, Name, SearchName, Title
from domain.policy import Rung
from domain.severity import Severity

EARLIER_INCIDENTS = 20  # the earlier incidents one recurrence lists, the latest first
EARLIER_OPEN_ITEMS = 20  # the open items listed of one earlier incident
RECURRENCES = 10  # the recurrences an incident keeps (one at declaration, one per review)


class RecurrenceStage(StrEnum):
    DECLARATION = "declaration"
    REVIEW = "review"


class EarlierItem(BaseModel):
    """An earlier incident's action item that is still open."""

    id: Key
    title: Title
    owning_team: SearchName
    state: ActionItemState
    due_at: datetime
    rung: Rung | None = Field(default=None, description="the rung of its latest escalation")
    overdue: bool = False


class EarlierIncident(BaseModel):
    """An earlier incident that failed the same way, and what is left of its fixes."""

    key: Key
    title: Title
    severity: Severity
    declared_at: datetime
    services: list[SearchName] = Field(default_factory=list, max_length=EARLIER_INCIDENTS)
    failure_modes: list[Name] = Field(default_factory=list, max_length=EARLIER_INCIDENTS)
    matched_on: list[Name] = Field(
        default_factory=list,
        max_length=EARLIER_INCIDENTS,
        description="what it shares with the new incident, e.g. 'service checkout'",
    )
    action_items: int = Field(default=0, description="how many action items it has in all")
    open_items: list[EarlierItem] = Field(default_factory=list, max_length=EARLIER_OPEN_ITEMS)


class Recurrence(BaseModel):
    """What one look for earlier incidents found, and which of their open items it escalated."""

    stage: RecurrenceStage
    found_at: datetime
    earlier: list[EarlierIncident] = Field(default_factory=list, max_length=EARLIER_INCIDENTS)
    escalated: list[Key] = Field(
        default_factory=list, description="the open items told that this repeat proves them"
    )
    link: Link | None = Field(default=None, description="the new incident's page, when known")

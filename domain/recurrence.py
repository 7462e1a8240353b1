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
from typing import Protocol

from pydantic import BaseModel, Field

from domain.action_item import ActionItemState
from domain.limits import Key, Name, SearchName, Title
from domain.policy import Rung
from domain.severity import Severity

EARLIER_INCIDENTS = 20  # the earlier incidents one recurrence lists, the latest first
EARLIER_OPEN_ITEMS = 20  # the open items listed of one earlier incident
RECURRENCES = 10  # the recurrences an incident keeps (one at declaration, one per review)


class HasRecurrences(Protocol):
    @property
    def recurrences(self) -> list[Recurrence]: ...


class RecurrenceStage(StrEnum):
    DECLARATION = "declaration"
    REVIEW = "review"


class EarlierItem(BaseModel):
    """An earlier incident's action item that is still open."""

    id: Key
    number: int = Field(description="its number in its incident: its workflow's id ends with it")
    title: Title
    owning_team: SearchName
    state: ActionItemState
    due_at: datetime
    rung: Rung | None = Field(default=None, description="the rung of its latest escalation")
    overdue: bool = False

    @property
    def standing(self) -> str:
        """E.g. 'open, overdue at the manager rung' (as found)."""
        standing = "overdue" if self.overdue else f"due {self.due_at:%Y-%m-%d}"
        if self.rung is not None:
            standing += f" at the {self.rung.value.replace('_', ' ')} rung"
        return f"{self.state.value}, {standing}"


class EarlierIncident(BaseModel):
    """An earlier incident that failed the same way, and what is left of its fixes."""

    key: Key
    title: Title
    severity: Severity
    declared_at: datetime
    services: list[SearchName] = Field(default_factory=list, max_length=EARLIER_INCIDENTS)
    failure_modes: list[Name] = Field(default_factory=list, max_length=EARLIER_INCIDENTS)
    same_services: list[SearchName] = Field(
        default_factory=list, max_length=EARLIER_INCIDENTS, description="shared with the new one"
    )
    same_failure_modes: list[Name] = Field(
        default_factory=list, max_length=EARLIER_INCIDENTS, description="shared with the new one"
    )
    action_items: int = Field(default=0, description="how many action items it has in all")
    open_items: list[EarlierItem] = Field(default_factory=list, max_length=EARLIER_OPEN_ITEMS)

    @property
    def matched_on(self) -> list[str]:
        """What it shares with the new incident, e.g. ['service checkout']."""
        return [f"service {s}" for s in self.same_services] + [
            f"failure mode {m}" for m in self.same_failure_modes
        ]

    @property
    def proves_fixes(self) -> bool:
        """Only the same failure proves its fixes necessary: a service fails in many ways."""
        return bool(self.same_failure_modes)


class Recurrence(BaseModel):
    """What one look for earlier incidents found, and which of their open items it escalated."""

    stage: RecurrenceStage
    found_at: datetime
    earlier: list[EarlierIncident] = Field(default_factory=list, max_length=EARLIER_INCIDENTS)
    escalated: list[Key] = Field(
        default_factory=list, description="the open items told that this repeat proves them"
    )


class RepeatQuery(BaseModel):
    """Which earlier incidents to look for: those declared in [since, until) that share a
    service or a failure mode with the new one (only a failure mode when `services` is empty)."""

    key: Key = Field(description="the new incident, never its own earlier incident")
    services: list[SearchName] = Field(default_factory=list, max_length=EARLIER_INCIDENTS * 3)
    failure_modes: list[Name] = Field(default_factory=list, max_length=EARLIER_INCIDENTS * 3)
    since: datetime
    until: datetime
    exclude: list[Key] = Field(
        default_factory=list,
        max_length=EARLIER_INCIDENTS * RECURRENCES,
        description="incidents whose fixes a look already proved: not listed again",
    )


class RepeatProven(BaseModel):
    """Told to an earlier incident's open action item: a new incident repeats its failure."""

    incident_key: Key = Field(description="the new incident")
    incident_title: Title
    earlier_key: Key = Field(description="the item's own incident, which the new one repeats")
    matched_on: list[Name] = Field(
        default_factory=list, max_length=2 * EARLIER_INCIDENTS, description="as EarlierIncident's"
    )


def shared(
    services: list[str], failure_modes: list[str], query: RepeatQuery
) -> tuple[list[str], list[str]]:
    """The services and the failure modes an earlier incident shares with the query's (at most
    EARLIER_INCIDENTS of each, what an EarlierIncident keeps)."""
    return (
        [s for s in query.services if s in services][:EARLIER_INCIDENTS],
        [m for m in query.failure_modes if m in failure_modes][:EARLIER_INCIDENTS],
    )


def next_rung(latest: Rung | None) -> Rung:
    """One rung above the item's latest escalation: an item never escalated sits with its
    owner, so its team lead hears first. The top rung stays the top."""
    ladder = list(Rung)
    index = ladder.index(latest) if latest is not None else 0
    return ladder[min(index + 1, len(ladder) - 1)]


def _item_line(item: EarlierItem) -> str:
    return f"its item {item.id} ({item.title}) is still {item.standing}"


DESCRIPTION_CHARS = 4_000  # the timeline's sentence; `afteraction show` lists every match


def describe(recurrence: Recurrence) -> str:
    """The timeline's sentence: which earlier incidents, why, and their open fixes."""
    parts = []
    for earlier in recurrence.earlier:
        common = ", ".join(earlier.matched_on) or "a shared failure"
        line = f"this failure happened on {earlier.key} ({common})"
        if earlier.open_items:
            line += "; " + "; ".join(_item_line(item) for item in earlier.open_items)
            if earlier.proves_fixes:
                line += "; the repeat proves them necessary: each goes one rung up"
        elif earlier.action_items:
            line += "; all its action items are done or accepted"
        else:
            line += "; it has no action items"
        parts.append(line)
    text = "repeat: " + ". ".join(parts)
    if len(text) <= DESCRIPTION_CHARS:
        return text
    cut = "… (more in `afteraction show`)"
    return text[: DESCRIPTION_CHARS - len(cut)] + cut


def proved_by(incident: HasRecurrences) -> list[str]:
    """The earlier incidents whose fixes an incident's looks already proved necessary."""
    keys = (
        earlier.key
        for recurrence in incident.recurrences
        for earlier in recurrence.earlier
        if earlier.proves_fixes
    )
    return list(dict.fromkeys(keys))

"""The incident as its workflow holds it: state, clock, roles, timeline and escalations."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from domain.action_item import ActionItemSummary
from domain.escalation import EscalationRecord, rungs_left_out
from domain.identity import ActorField
from domain.limits import (
    CARRIED_ESCALATIONS,
    CARRIED_TIMELINE_CHARS,
    CARRIED_TIMELINE_EVENTS,
    latest,
)
from domain.policy import Policy, Rung
from domain.recurrence import RECURRENCES, Recurrence
from domain.review import ReviewRecord, ReviewSchedule
from domain.severity import Severity


class IncidentState(StrEnum):
    DECLARED = "declared"
    MITIGATING = "mitigating"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"
    IN_REVIEW = "in_review"
    REVIEWED = "reviewed"
    TRACKING = "tracking"
    CLOSED = "closed"
    CANCELLED = "cancelled"

    @property
    def is_active(self) -> bool:
        """Impact may still be ongoing: the response deadlines apply."""
        return self in (IncidentState.DECLARED, IncidentState.MITIGATING, IncidentState.MITIGATED)

    @property
    def is_final(self) -> bool:
        return self in (IncidentState.CLOSED, IncidentState.CANCELLED)


class Role(StrEnum):
    COMMANDER = "commander"
    SCRIBE = "scribe"
    COMMUNICATIONS_LEAD = "communications_lead"
    SUBJECT_MATTER_EXPERT = "subject_matter_expert"


class Roles(BaseModel):
    commander: str | None = None
    scribe: str | None = None
    communications_lead: str | None = None
    subject_matter_experts: list[str] = Field(default_factory=list)


class IncidentClock(BaseModel):
    """When things happened; started/detected may be earlier than the declaration."""

    started_at: datetime
    detected_at: datetime
    declared_at: datetime
    acknowledged_at: datetime | None = None
    mitigated_at: datetime | None = None
    resolved_at: datetime | None = None
    review_held_at: datetime | None = None
    closed_at: datetime | None = None
    cancelled_at: datetime | None = None
    started_reported: bool | None = Field(
        default=None,
        description="whether the declaration said when impact began (else started_at is the "
        "detection); None in incidents declared before this was kept",
    )
    detected_reported: bool | None = Field(
        default=None,
        description="whether the declaration said when it was detected (else detected_at is "
        "the declaration); None in incidents declared before this was kept",
    )


class TimelineKind(StrEnum):
    DECLARED = "declared"
    ACKNOWLEDGED = "acknowledged"
    ROLE_ASSIGNED = "role_assigned"
    NOTE = "note"
    SEVERITY_CHANGED = "severity_changed"
    MITIGATING = "mitigating"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"
    CANCELLED = "cancelled"
    ESCALATED = "escalated"
    REVIEW_SCHEDULED = "review_scheduled"
    REVIEWED = "reviewed"
    CLOSED = "closed"
    REPEAT = "repeat"  # it failed the way earlier incidents did


class TimelineEvent(BaseModel):
    at: datetime
    kind: TimelineKind
    text: str
    author: str | None = None
    actor: ActorField = None


class Incident(BaseModel):
    key: str
    title: str
    severity: Severity
    state: IncidentState = IncidentState.DECLARED
    services: list[str] = Field(default_factory=list)
    teams: list[str] = Field(default_factory=list)
    failure_modes: list[str] = Field(
        default_factory=list, description="the library's failure modes it was declared as"
    )
    summary: str | None = None
    declared_by: str
    declared_by_actor: ActorField = None
    clock: IncidentClock
    roles: Roles = Field(default_factory=Roles)
    timeline: list[TimelineEvent] = Field(default_factory=list)
    escalations: list[EscalationRecord] = Field(default_factory=list)
    cancel_reason: str | None = None
    policy: Policy
    review_schedule: ReviewSchedule | None = None
    review: ReviewRecord | None = None
    action_items: list[ActionItemSummary] = Field(default_factory=list)
    recurrences: list[Recurrence] = Field(
        default_factory=list,
        max_length=RECURRENCES,
        description="the earlier incidents it repeats, as found at declaration and at review",
    )
    earlier_timeline_events: int = Field(
        default=0,
        description="timeline events before the first one listed: the workflow history of the "
        "incident's earlier runs keeps them",
    )
    earlier_escalations: int = Field(
        default=0,
        description="escalations before the first one listed, kept in the earlier runs' history",
    )
    earlier_escalation_rungs: dict[Rung, int] = Field(
        default_factory=dict,
        description="the earlier escalations counted by rung (from runs that carried over "
        "before this was kept, only those since)",
    )
    facts_written: int = Field(
        default=0, description="how many times the incident's facts went to the read model"
    )

    @property
    def escalation_count(self) -> int:
        return self.earlier_escalations + len(self.escalations)

    def carried(self) -> Incident:
        """The incident as a run hands it to the next: its latest timeline events and
        escalations only, so the handover stays small however long the incident lasts (the
        history keeps the rest, and the deadlines need none of them)."""
        timeline, earlier_events = latest(
            self.timeline,
            count=CARRIED_TIMELINE_EVENTS,
            earlier=self.earlier_timeline_events,
            chars=CARRIED_TIMELINE_CHARS,
            text=lambda event: event.text,
        )
        escalations, earlier_escalations = latest(
            self.escalations, count=CARRIED_ESCALATIONS, earlier=self.earlier_escalations
        )
        return self.model_copy(
            update={
                "timeline": timeline,
                "escalations": escalations,
                "earlier_timeline_events": earlier_events,
                "earlier_escalations": earlier_escalations,
                "earlier_escalation_rungs": rungs_left_out(
                    self.earlier_escalation_rungs, self.escalations, kept=len(escalations)
                ),
            }
        )


class IncidentStatus(BaseModel):
    """What a command answers: small, because every answer is kept in the workflow history."""

    key: str
    title: str
    severity: Severity
    state: IncidentState
    clock: IncidentClock
    roles: Roles
    escalation_count: int

    @classmethod
    def of(cls, incident: Incident) -> IncidentStatus:
        return cls(
            key=incident.key,
            title=incident.title,
            severity=incident.severity,
            state=incident.state,
            clock=incident.clock.model_copy(),
            roles=incident.roles.model_copy(deep=True),
            escalation_count=incident.escalation_count,
        )


class IncidentSummary(BaseModel):
    """A row of a list: what visibility (the search attributes) knows without a query."""

    key: str
    title: str
    severity: Severity
    state: IncidentState
    services: list[str] = Field(default_factory=list)
    teams: list[str] = Field(default_factory=list)
    declared_at: datetime | None = None
    due_at: datetime | None = Field(default=None, description="the next deadline")
    resolved_at: datetime | None = None
    escalation_count: int = 0


def workflow_id_for(key: str) -> str:
    return f"incident/{key}"


def key_from_workflow_id(workflow_id: str) -> str:
    """The incident key of an incident's workflow or of one of its children."""
    return workflow_id.removeprefix("incident/").split("/", 1)[0]

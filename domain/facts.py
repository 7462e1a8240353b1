"""The facts of an incident and of an action item that the insights read model keeps.

A fact row is a pure function of a workflow's state (`incident_facts`, `action_item_facts`):
the workflows write it at each transition, `insights rebuild` derives it again from Temporal,
and `insights check` compares the two. Each write carries the workflow's revision, a number
that rises with every write across continue-as-new, so a retried or late write never replaces
a newer one and nothing is ever counted twice.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from pydantic import BaseModel, Field

from domain.action_item import ActionItem, ActionItemState
from domain.deadlines import review_due_at
from domain.escalation import EscalationRecord
from domain.functions import ReviewFunction
from domain.incident import Incident, IncidentClock, IncidentState
from domain.limits import NAMES_ITEMS, Key, Name, SearchName, Title
from domain.policy import ActionKind, Rung
from domain.recurrence import EARLIER_INCIDENTS, RECURRENCES
from domain.review import missing_functions
from domain.severity import Severity


class IncidentFacts(BaseModel):
    """What the metrics need of one incident; times are the incident clock's."""

    key: Key
    revision: int = Field(default=0, description="the workflow's write number; not a fact")
    title: Title
    severity: Severity
    state: IncidentState
    services: list[SearchName] = Field(default_factory=list, max_length=NAMES_ITEMS)
    teams: list[SearchName] = Field(default_factory=list, max_length=NAMES_ITEMS)
    failure_modes: list[Name] = Field(
        default_factory=list,
        max_length=NAMES_ITEMS,
        description="the library's failure modes it was declared as, or its review named",
    )
    repeat_of: list[Key] = Field(
        default_factory=list,
        max_length=EARLIER_INCIDENTS * RECURRENCES,
        description="the earlier incidents it repeats",
    )
    started_at: datetime | None = Field(description="when impact began, if it was reported")
    detected_at: datetime | None = Field(description="when it was detected, if it was reported")
    declared_at: datetime
    acknowledged_at: datetime | None = None
    mitigated_at: datetime | None = None
    resolved_at: datetime | None = None
    review_submitted_at: datetime | None = None
    review_due_at: datetime | None = Field(
        default=None, description="the policy's review deadline, once the incident is resolved"
    )
    missing_functions: list[ReviewFunction] = Field(
        default_factory=list,
        max_length=len(ReviewFunction),
        description="the functions the policy requires that the submitted review lacked",
    )
    missing_functions_waived: bool = Field(
        default=False, description="the review went ahead without them, with a waiver"
    )
    closed_at: datetime | None = None
    cancelled_at: datetime | None = None
    escalations: int = 0
    escalations_by_rung: dict[Rung, int] = Field(default_factory=dict)
    action_items: int = 0

    def same_facts(self, other: IncidentFacts) -> bool:
        return self.model_dump(exclude={"revision"}) == other.model_dump(exclude={"revision"})


class ActionItemFacts(BaseModel):
    """What the metrics need of one action item."""

    id: Key
    incident_key: Key
    number: int
    revision: int = Field(default=0, description="the workflow's write number; not a fact")
    title: Title
    owning_team: SearchName
    kind: ActionKind
    severity: Severity
    state: ActionItemState
    target: Name = Field(description="where its ticket lives: local, github:o/r, jira:P")
    created_at: datetime
    first_due_at: datetime = Field(description="the due date the review set")
    due_at: datetime = Field(description="the due date in force (after any extension)")
    extensions: int = 0
    completed_at: datetime | None = Field(
        default=None,
        description="when it was done: verified, or its ticket closed where no verification is "
        "required",
    )
    accepted_at: datetime | None = Field(
        default=None, description="when its risk was accepted (won't do)"
    )
    reopened: int = Field(default=0, description="times its ticket reopened before it was done")
    escalations: int = 0
    escalations_by_rung: dict[Rung, int] = Field(default_factory=dict)
    rung: Rung | None = Field(default=None, description="the rung of its latest escalation")
    owner: Name | None = Field(default=None, description="who the ticket is assigned to")
    approver: Name | None = Field(default=None, description="who accepted its risk")

    def same_facts(self, other: ActionItemFacts) -> bool:
        return self.model_dump(exclude={"revision"}) == other.model_dump(exclude={"revision"})


def _reported(clock: IncidentClock) -> tuple[datetime | None, datetime | None]:
    """The start and detection times people reported; None for those the workflow filled in.

    Incidents declared before the clock kept whether they were reported: a start equal to the
    detection (and a detection equal to the declaration) is how the workflow filled them in.
    """
    started_reported = clock.started_reported
    if started_reported is None:
        started_reported = clock.started_at != clock.detected_at
    detected_reported = clock.detected_reported
    if detected_reported is None:
        detected_reported = clock.detected_at != clock.declared_at
    return (
        clock.started_at if started_reported else None,
        clock.detected_at if detected_reported else None,
    )


def _by_rung(earlier: dict[Rung, int], listed: list[EscalationRecord]) -> dict[Rung, int]:
    counts = Counter(earlier)
    counts.update(record.rung for record in listed)
    return {rung: counts[rung] for rung in Rung if counts[rung]}


def failure_modes_of(incident: Incident) -> list[str]:
    """The failure modes it was declared as, then those its review added (as many as the facts
    keep: a declaration and a review may each name the most)."""
    named = list(incident.failure_modes)
    if incident.review is not None:
        named += incident.review.review.failure_modes
    return list(dict.fromkeys(named))[:NAMES_ITEMS]


def repeat_of(incident: Incident) -> list[str]:
    """The earlier incidents it repeats, in the order they were found."""
    keys = (e.key for recurrence in incident.recurrences for e in recurrence.earlier)
    return list(dict.fromkeys(keys))


def incident_facts(incident: Incident, *, revision: int = 0) -> IncidentFacts:
    clock = incident.clock
    started, detected = _reported(clock)
    review_due = None
    if clock.resolved_at is not None:
        review_due = review_due_at(
            clock.resolved_at, incident.policy.for_severity(incident.severity)
        )
    missing: list[ReviewFunction] = []
    waived = False
    if incident.review is not None:
        review = incident.review.review
        missing = missing_functions(review, incident.policy.for_severity(incident.severity))
        waived = bool(missing) and bool((review.missing_function_waiver or "").strip())
    return IncidentFacts(
        key=incident.key,
        revision=revision,
        title=incident.title,
        severity=incident.severity,
        state=incident.state,
        services=incident.services,
        teams=incident.teams,
        failure_modes=failure_modes_of(incident),
        repeat_of=repeat_of(incident),
        started_at=started,
        detected_at=detected,
        declared_at=clock.declared_at,
        acknowledged_at=clock.acknowledged_at,
        mitigated_at=clock.mitigated_at,
        resolved_at=clock.resolved_at,
        review_submitted_at=clock.review_held_at,
        review_due_at=review_due,
        missing_functions=missing,
        missing_functions_waived=waived,
        closed_at=clock.closed_at,
        cancelled_at=clock.cancelled_at,
        escalations=incident.escalation_count,
        escalations_by_rung=_by_rung(incident.earlier_escalation_rungs, incident.escalations),
        action_items=len(incident.action_items),
    )


def action_item_facts(item: ActionItem, *, revision: int = 0) -> ActionItemFacts:
    completed_at = None
    if item.state is ActionItemState.DONE:
        completed_at = item.verification.at if item.verification is not None else item.closed_at
    accepted_at = None
    if item.state is ActionItemState.ACCEPTED and item.acceptance is not None:
        accepted_at = item.acceptance.at
    latest_rung = item.escalations[-1].rung if item.escalations else None
    first_due = item.first_due_at
    if first_due is None:
        first_due = item.extensions[0].previous_due_at if item.extensions else item.due_at
    return ActionItemFacts(
        id=item.id,
        incident_key=item.incident_key,
        number=item.number,
        revision=revision,
        title=item.spec.title,
        owning_team=item.spec.owning_team,
        kind=item.spec.kind,
        severity=item.severity,
        state=item.state,
        target=item.route.target,
        created_at=item.created_at,
        first_due_at=first_due,
        due_at=item.due_at,
        extensions=item.earlier_extensions + len(item.extensions),
        completed_at=completed_at,
        accepted_at=accepted_at,
        reopened=item.reopened,
        escalations=item.escalation_count,
        escalations_by_rung=_by_rung(item.earlier_escalation_rungs, item.escalations),
        rung=latest_rung,
        owner=item.spec.assignee or item.route.assignee,
        approver=item.acceptance.approver if accepted_at is not None and item.acceptance else None,
    )

"""Control evidence for a period (SOC 2 CC7.3-CC7.5, ISO 27001 A.5.24-A.5.28): one row per
incident declared in it, with whether each deadline was met and by how much, how its review
was held, and what became of each action item, as they stand when the report is made; totals
first.

Pure: built from the incidents' and their items' states as their workflows keep them. The
same rules as the insights definitions (domain/metrics.py): the review deadline is the policy's
from the resolution (`review_due_at`), an item is on time when it was done by the due date in
force when it closed (`action_item_facts`), and an accepted item is never on time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from pydantic import BaseModel, Field

from domain.action_item import ActionItem, ActionItemState
from domain.deadlines import review_due_at
from domain.facts import action_item_facts
from domain.incident import Incident, IncidentState
from domain.policy import Rung
from domain.review import missing_functions
from domain.severity import Severity

E = TypeVar("E", bound=StrEnum)
REPORT_INCIDENTS = 10_000  # incidents one report lists; a longer period is cut into several


class Standing(StrEnum):
    MET = "met"  # done by its deadline
    LATE = "late"  # done after it
    MISSED = "missed"  # not done, and past it when the report was made
    PENDING = "pending"  # not done, not due yet when the report was made
    NOT_APPLICABLE = "n/a"  # the incident was cancelled before it applied


class DeadlineRow(BaseModel):
    due_at: datetime | None
    done_at: datetime | None
    standing: Standing
    by_seconds: int | None = Field(
        default=None,
        description="how far from the deadline: negative, that long before it; positive, "
        "that long after it (late, or missed when the report was made)",
    )


class ReviewStanding(StrEnum):
    HELD = "held"  # with every function the policy requires
    HELD_WAIVED = "held, waived"  # without some, for the reason given
    NOT_HELD = "not held"
    NOT_APPLICABLE = "n/a"


class ItemOutcome(StrEnum):
    ON_TIME = "closed on time"
    LATE = "closed late"
    ACCEPTED = "risk accepted"
    OPEN = "open"
    OVERDUE = "open, overdue"


class ItemRow(BaseModel):
    id: str
    title: str
    owning_team: str
    outcome: ItemOutcome
    due_at: datetime
    closed_at: datetime | None = None
    verified_by: str | None = None
    evidence: str | None = None
    approver: str | None = None
    rationale: str | None = None
    rung: Rung | None = Field(default=None, description="of its latest escalation")


class IncidentRow(BaseModel):
    key: str
    title: str
    severity: Severity
    state: IncidentState
    declared_at: datetime
    cancel_reason: str | None = None
    acknowledge: DeadlineRow
    resolve: DeadlineRow
    review: DeadlineRow
    review_standing: ReviewStanding
    missing_functions: list[str] = Field(default_factory=list)
    waiver: str | None = None
    items: list[ItemRow] = Field(default_factory=list)


class Totals(BaseModel):
    incidents: int = Field(description="declared in the period, cancelled ones apart")
    cancelled: int
    acknowledge: dict[Standing, int]
    resolve: dict[Standing, int]
    review: dict[Standing, int]
    reviews: dict[ReviewStanding, int]
    items: dict[ItemOutcome, int]
    verified_items: int = Field(description="items closed with verification evidence")


class PeriodReport(BaseModel):
    since: datetime = Field(description="incidents declared at or after this")
    until: datetime = Field(description="and before this")
    made_at: datetime = Field(description="when the report was made: standings are as of then")
    totals: Totals
    incidents: list[IncidentRow]


def _deadline(due_at: datetime | None, done_at: datetime | None, at: datetime) -> DeadlineRow:
    if due_at is None:
        return DeadlineRow(due_at=None, done_at=done_at, standing=Standing.PENDING)
    if done_at is not None:
        standing = Standing.MET if done_at <= due_at else Standing.LATE
        return DeadlineRow(
            due_at=due_at,
            done_at=done_at,
            standing=standing,
            by_seconds=round((done_at - due_at).total_seconds()),
        )
    if due_at < at:
        late = round((at - due_at).total_seconds())
        return DeadlineRow(due_at=due_at, done_at=None, standing=Standing.MISSED, by_seconds=late)
    return DeadlineRow(due_at=due_at, done_at=None, standing=Standing.PENDING)


def _not_applicable() -> DeadlineRow:
    return DeadlineRow(due_at=None, done_at=None, standing=Standing.NOT_APPLICABLE)


def _item(item: ActionItem, at: datetime) -> ItemRow:
    facts = action_item_facts(item)
    row = ItemRow(
        id=item.id,
        title=item.spec.title,
        owning_team=item.spec.owning_team,
        outcome=ItemOutcome.OPEN,
        due_at=item.due_at,
        rung=facts.rung,
    )
    if item.state is ActionItemState.ACCEPTED and item.acceptance is not None:
        row.outcome = ItemOutcome.ACCEPTED
        row.closed_at = item.acceptance.at
        row.approver, row.rationale = item.acceptance.approver, item.acceptance.rationale
    elif facts.completed_at is not None:
        on_time = facts.completed_at <= item.due_at
        row.outcome = ItemOutcome.ON_TIME if on_time else ItemOutcome.LATE
        row.closed_at = facts.completed_at
        if item.verification is not None:
            row.verified_by, row.evidence = item.verification.by, item.verification.evidence
    elif item.due_at < at:
        row.outcome = ItemOutcome.OVERDUE
    return row


def incident_row(incident: Incident, items: list[ActionItem], at: datetime) -> IncidentRow:
    """One incident's evidence as it stands at `at`, when the report is made."""
    clock = incident.clock
    policy = incident.policy.for_severity(incident.severity)
    row = IncidentRow(
        key=incident.key,
        title=incident.title,
        severity=incident.severity,
        state=incident.state,
        declared_at=clock.declared_at,
        cancel_reason=incident.cancel_reason,
        acknowledge=_not_applicable(),
        resolve=_not_applicable(),
        review=_not_applicable(),
        review_standing=ReviewStanding.NOT_APPLICABLE,
        items=[_item(item, at) for item in sorted(items, key=lambda i: i.number)],
    )
    if incident.state is IncidentState.CANCELLED:
        return row
    row.acknowledge = _deadline(
        clock.declared_at + policy.acknowledge_within, clock.acknowledged_at, at
    )
    row.resolve = _deadline(clock.declared_at + policy.resolve_within, clock.resolved_at, at)
    if clock.resolved_at is not None:
        due = review_due_at(clock.resolved_at, policy)
        row.review = _deadline(due, clock.review_held_at, at)
    else:
        row.review = DeadlineRow(due_at=None, done_at=None, standing=Standing.PENDING)
    record = incident.review
    if record is None:
        row.review_standing = ReviewStanding.NOT_HELD
        return row
    missing = missing_functions(record.review, policy)
    row.missing_functions = [function.value for function in missing]
    if missing:
        row.review_standing = ReviewStanding.HELD_WAIVED
        row.waiver = record.review.missing_function_waiver
    else:
        row.review_standing = ReviewStanding.HELD
    return row


def period_report(
    rows: list[IncidentRow], *, since: datetime, until: datetime, made_at: datetime
) -> PeriodReport:
    counted = [row for row in rows if row.state is not IncidentState.CANCELLED]
    items = [item for row in counted for item in row.items]
    totals = Totals(
        incidents=len(counted),
        cancelled=len(rows) - len(counted),
        acknowledge=_tally(row.acknowledge.standing for row in counted),
        resolve=_tally(row.resolve.standing for row in counted),
        review=_tally(row.review.standing for row in counted),
        reviews=_tally(row.review_standing for row in counted),
        items=_tally(item.outcome for item in items),
        verified_items=sum(item.evidence is not None for item in items),
    )
    ordered = sorted(rows, key=lambda row: (row.declared_at, row.key))
    return PeriodReport(since=since, until=until, made_at=made_at, totals=totals, incidents=ordered)


def _tally(values: Iterable[E]) -> dict[E, int]:
    return dict(sorted(Counter(values).items()))

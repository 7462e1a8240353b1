"""Deadline arithmetic: when each deadline falls due and when the ladder takes its next step.

Pure functions over the incident and its policy snapshot, so the workflow stays a thin
loop around them and the rules can be tested without a server.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel

from domain.escalation import DeadlineKind
from domain.incident import Incident, IncidentState
from domain.policy import EscalationLadder, Rung, SeverityPolicy, format_duration

LADDER = list(Rung)
INCIDENT_DEADLINES = (
    DeadlineKind.ACKNOWLEDGE,
    DeadlineKind.STATUS_UPDATE,
    DeadlineKind.RESOLVE,
    DeadlineKind.REVIEW,
)
TOP_STEP = len(LADDER) - 1
# Missed status updates remind the owner, then the team lead on every further miss; the
# acknowledge and resolve ladders already take a stalled response to managers and leadership.
STATUS_REMINDER_TOP_STEP = LADDER.index(Rung.TEAM_LEAD)


def add_business_days(start: datetime, days: int) -> datetime:
    """`start` moved forward by `days` weekdays (Saturday and Sunday do not count), same time.

    A start on a weekend counts from the next Monday: Saturday + 1 business day is Monday.
    """
    if days < 0:
        raise ValueError(f"days must not be negative, got {days}")
    moment = start
    remaining = days
    while remaining > 0:
        moment += timedelta(days=1)
        if moment.weekday() < 5:
            remaining -= 1
    return moment


def review_due_at(resolved_at: datetime, policy: SeverityPolicy) -> datetime:
    if policy.review_within is not None:
        return resolved_at + policy.review_within
    return add_business_days(resolved_at, policy.review_within_business_days)


def deadline_due_at(
    kind: DeadlineKind, incident: Incident, *, status_anchor: datetime
) -> datetime | None:
    """When `kind` falls due for the incident as it is now, or None when it does not apply.

    `status_anchor` is the later of the last status update and the last reminder about one.
    """
    policy = incident.policy.for_severity(incident.severity)
    clock = incident.clock
    if kind is DeadlineKind.ACKNOWLEDGE:
        if clock.acknowledged_at is None and incident.state is IncidentState.DECLARED:
            return clock.declared_at + policy.acknowledge_within
        return None
    if kind is DeadlineKind.STATUS_UPDATE:
        if incident.state.is_active:
            return status_anchor + policy.status_update_every
        return None
    if kind is DeadlineKind.RESOLVE:
        if incident.state.is_active:
            return clock.declared_at + policy.resolve_within
        return None
    if kind is DeadlineKind.REVIEW:
        # Scheduling the review (in_review) does not stop the clock; submitting it does.
        awaiting_review = incident.state in (IncidentState.RESOLVED, IncidentState.IN_REVIEW)
        if awaiting_review and clock.resolved_at is not None:
            return review_due_at(clock.resolved_at, policy)
        return None
    raise AssertionError(f"unhandled deadline {kind}")


class MissedDeadline(BaseModel):
    """A deadline that passed unmet, and how many ladder steps have been notified for it."""

    kind: DeadlineKind
    due_at: datetime
    steps_taken: int = 0


def step_at(due_at: datetime, step: int, ladder: EscalationLadder) -> datetime:
    """When ladder step `step` (0 = owner) is due; steps past the top repeat the top rung."""
    rungs = ladder.rungs()
    if step < len(rungs):
        return due_at + rungs[step][1]
    repeats = step - len(rungs) + 1
    return due_at + rungs[-1][1] + ladder.repeat_every * repeats


def steps_due(
    due_at: datetime, steps_taken: int, ladder: EscalationLadder, now: datetime
) -> list[int]:
    """The ladder steps (0 = owner) that have fallen due by `now` since `steps_taken`.

    After a long outage, repeated top-rung reminders that all fell due collapse into the
    latest one, so leadership hears once, not once per missed repeat.
    """
    due: list[int] = []
    step = steps_taken
    while step_at(due_at, step, ladder) <= now:
        while step >= TOP_STEP and step_at(due_at, step + 1, ladder) <= now:
            step += 1
        due.append(step)
        step += 1
    return due


def rung_for_step(step: int) -> Rung:
    return LADDER[min(step, TOP_STEP)]


def recipients(rung: Rung, incident: Incident) -> list[str]:
    """Who hears about a rung: the owner is the commander (or the declarer before one is named);
    a higher rung its policy contacts, or the rung's name when the policy lists nobody."""
    if rung is Rung.OWNER:
        return [incident.roles.commander or incident.declared_by]
    return list(incident.policy.contacts.get(rung, [rung.value]))


def describe_miss(kind: DeadlineKind, incident: Incident, due_at: datetime) -> str:
    policy = incident.policy.for_severity(incident.severity)
    due = due_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    severity = incident.severity.value
    if kind is DeadlineKind.ACKNOWLEDGE:
        window = format_duration(policy.acknowledge_within)
        return f"{severity} not acknowledged within {window} (due {due})"
    if kind is DeadlineKind.STATUS_UPDATE:
        return f"no status update for {format_duration(policy.status_update_every)} (due {due})"
    if kind is DeadlineKind.RESOLVE:
        return (
            f"{severity} not resolved within {format_duration(policy.resolve_within)} (due {due})"
        )
    if policy.review_within is not None:
        window = format_duration(policy.review_within)
    else:
        window = f"{policy.review_within_business_days} business days"
    return f"review not submitted within {window} of resolution (due {due})"


class DeadlineTracker(BaseModel):
    """The deadline loop's memory, carried across continue-as-new with the incident."""

    missed: dict[DeadlineKind, MissedDeadline] = {}
    status_anchor: datetime
    status_misses: int = 0

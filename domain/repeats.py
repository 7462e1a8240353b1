"""Whether a refused command asked for what already holds: the same command sent again (a
retry after a timeout, a second click), which is answered with the state it reached instead
of a refusal. Pure: the incident or item is given.

A command that adds something (a timeline note, an action item) is never a repeat by its
content: two equal notes may both be meant. Its retries are caught by the command id instead
(app/services/commands.py).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from domain.action_item import (
    AcceptRisk,
    ActionItem,
    ActionItemState,
    ExtendDeadline,
    VerifyItem,
)
from domain.commands import Acknowledge, AssignRole, Cancel, SetSeverity, Transition
from domain.incident import Incident, IncidentState, Role
from domain.review import ScheduleReview, SubmitReview


def _same_moment(asked: datetime | None, held: datetime | None) -> bool:
    """A time the command gave matches the one held; no time given matches any."""
    return held is not None and (asked is None or asked == held)


def incident_repeat(name: str, command: BaseModel, incident: Incident) -> bool:
    """Whether `command` (the Update `name`) already holds on `incident`."""
    clock, state = incident.clock, incident.state
    if isinstance(command, Acknowledge) and name == "acknowledge":
        return clock.acknowledged_at is not None and incident.roles.commander == command.commander
    if isinstance(command, Transition) and name == "mitigate":
        return state is IncidentState.MITIGATED and _same_moment(command.at, clock.mitigated_at)
    if isinstance(command, Transition) and name == "resolve":
        return state is IncidentState.RESOLVED and _same_moment(command.at, clock.resolved_at)
    if isinstance(command, Cancel):
        return state is IncidentState.CANCELLED
    if isinstance(command, SetSeverity):
        return incident.severity == command.severity
    if isinstance(command, AssignRole):
        roles = incident.roles
        if command.role is Role.SUBJECT_MATTER_EXPERT:
            return command.person in roles.subject_matter_experts
        return bool(getattr(roles, command.role.value) == command.person)
    if isinstance(command, ScheduleReview):
        schedule = incident.review_schedule
        return (
            state is IncidentState.IN_REVIEW
            and schedule is not None
            and schedule.at == command.at
            and (command.facilitator is None or schedule.facilitator == command.facilitator)
        )
    if isinstance(command, SubmitReview):
        record = incident.review
        return record is not None and record.review == command.review
    return False


def item_repeat(name: str, command: BaseModel, item: ActionItem) -> bool:
    """Whether `command` (the Update `name`) already holds on `item`."""
    if isinstance(command, ExtendDeadline):
        return item.due_at == command.due_at
    if isinstance(command, VerifyItem):
        verification = item.verification
        return (
            item.state is ActionItemState.DONE
            and verification is not None
            and verification.evidence == command.evidence
        )
    if isinstance(command, AcceptRisk):
        acceptance = item.acceptance
        return (
            item.state is ActionItemState.ACCEPTED
            and acceptance is not None
            and acceptance.rationale == command.rationale
        )
    return False

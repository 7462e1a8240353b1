"""Missed deadlines and the escalation records they leave, for incidents and action items."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from domain.identity import SCHEDULES, Actor
from domain.policy import Rung


class DeadlineKind(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    STATUS_UPDATE = "status_update"
    RESOLVE = "resolve"
    REVIEW = "review"
    ACTION_DUE = "action_due"
    ACTION_STALLED = "action_stalled"
    REPEAT = "repeat"  # not a deadline: a later incident failed the way this item is to prevent


class EscalationRecord(BaseModel):
    """One step up the ladder after a missed deadline: when, which rung, whom, why."""

    at: datetime
    deadline: DeadlineKind
    due_at: datetime
    rung: Rung
    notified: list[str]
    reason: str
    actor: Actor = Field(
        default_factory=lambda: SCHEDULES,
        description="afteraction's own timers: every escalation is the system's, never a person's",
    )


def rungs_left_out(
    earlier: dict[Rung, int], escalations: list[EscalationRecord], *, kept: int
) -> dict[Rung, int]:
    """`earlier` counts by rung, plus the escalations a run leaves out of what it carries over
    (all but the latest `kept`)."""
    counts = Counter(earlier)
    counts.update(record.rung for record in escalations[: len(escalations) - kept])
    return {rung: counts[rung] for rung in Rung if counts[rung]}

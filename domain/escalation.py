"""Missed deadlines and the escalation records they leave, for incidents and action items."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel

from domain.policy import Rung


class DeadlineKind(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    STATUS_UPDATE = "status_update"
    RESOLVE = "resolve"
    REVIEW = "review"
    ACTION_DUE = "action_due"
    ACTION_STALLED = "action_stalled"


class EscalationRecord(BaseModel):
    """One step up the ladder after a missed deadline: when, which rung, whom, why."""

    at: datetime
    deadline: DeadlineKind
    due_at: datetime
    rung: Rung
    notified: list[str]
    reason: str

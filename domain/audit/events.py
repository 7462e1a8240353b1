"""A workflow run's history as the audit record reads it: each event that says what someone
or something did, with its payloads already decoded to JSON values.

Neutral of Temporal's protobufs, so that the record is derived by pure code (and tested
without a server); app/formats/audit_histories.py makes these from a history's JSON.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class EventKind(StrEnum):
    STARTED = "started"
    CONTINUED_AS_NEW = "continued_as_new"
    COMPLETED = "completed"
    FAILED = "failed"
    TERMINATED = "terminated"
    CANCELED = "canceled"
    TIMED_OUT = "timed_out"
    RESET = "reset"  # a workflow task failed because someone reset the workflow from here
    UPDATE_ADMITTED = "update_admitted"  # the request of an update accepted later (reapplied)
    UPDATE_ACCEPTED = "update_accepted"
    UPDATE_REJECTED = "update_rejected"
    UPDATE_COMPLETED = "update_completed"
    SIGNALED = "signaled"
    ACTIVITY_SCHEDULED = "activity_scheduled"
    ACTIVITY_COMPLETED = "activity_completed"
    ACTIVITY_FAILED = "activity_failed"
    CHILD_INITIATED = "child_initiated"


class HistoryEvent(BaseModel):
    event_id: int
    at: datetime
    kind: EventKind
    name: str | None = Field(
        default=None, description="the update, signal, activity or workflow type named"
    )
    ref: str | None = Field(
        default=None,
        description="what ties events together: an update's id, an activity's scheduled event "
        "id, a child's workflow id, the run before (a start) or after (a continue-as-new or "
        "a reset)",
    )
    identity: str | None = Field(default=None, description="the client that sent it")
    data: Any = Field(default=None, description="the decoded input or result")
    failure: str | None = Field(default=None, description="why it failed, in Temporal's words")


class RunHistory(BaseModel):
    """One run of one workflow: its id, run id and the events the record reads."""

    workflow_id: str
    run_id: str
    workflow_type: str
    events: list[HistoryEvent]

"""The ticket reconciler's inputs and results: what webhooks missed, found per tracker target.

A run reads, per target, the afteraction tickets updated since that target's watermark (one
paged query), compares each with its open action item, and signals only the items whose
ticket says something different (closed while the item is open, reopened while it is being
verified). The result carries the watermarks to the next run (a scheduled workflow reads the
last successful run's result), so a failed run or a failed target loses nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from domain.action_item import ActionItemState, TicketChanged, TicketStatus

WORKFLOW_NAME = "TicketReconciler"
SCHEDULE_ID = "afteraction-ticket-reconciler"
SWEEP_SCHEDULE_ID = "afteraction-ticket-sweep"
# Each run re-reads this much before the previous run's start: a tracker's clock may be a bit
# off ours, and a search index (Jira's) may show a ticket a moment after it changed. Reading
# a ticket twice is harmless: an item is signalled only when its state differs.
OVERLAP = timedelta(minutes=2)


class TargetWindow(BaseModel):
    """A tracker target with open action items, and where an unread history would start."""

    target: str
    oldest_open_at: datetime = Field(description="when its oldest open item started")


class TargetsRequest(BaseModel):
    """Which targets a run reads: those it knows (with their watermarks) are counted, the
    others found by listing only the open items on targets it does not know."""

    known: dict[str, datetime] = Field(
        default_factory=dict, description="the targets the last runs read, by watermark"
    )
    full_sweep: bool = Field(
        default=False, description="list every open item: every target from its oldest one"
    )


class OpenItem(BaseModel):
    """An open action item as visibility lists it (no per-item call)."""

    workflow_id: str
    state: ActionItemState
    ticket_key: str | None = None


class ReconcileTarget(BaseModel):
    target: str
    since: datetime


class Drift(BaseModel):
    """An item whose ticket disagrees with it, and the signal that tells it."""

    workflow_id: str
    change: TicketChanged


class DuplicateClosed(BaseModel):
    duplicate: str
    original: str
    workflow_id: str


class TargetReport(BaseModel):
    target: str
    since: datetime
    watermark: datetime = Field(description="where the next run starts reading this target")
    tickets_read: int = 0
    drift: list[Drift] = Field(default_factory=list)
    duplicates_closed: list[DuplicateClosed] = Field(default_factory=list)
    error: str | None = Field(default=None, description="why the target was not read this run")


class ReconcileRequest(BaseModel):
    """Watermarks to start from when the workflow is not run by its schedule (tests, by hand);
    a scheduled run starts from the last successful run's."""

    watermarks: dict[str, datetime] = Field(default_factory=dict)
    full_sweep: bool = Field(
        default=False,
        description="read every afteraction ticket of each target since its oldest open item "
        "started, not only those changed since the last run: repairs drift that no recent "
        "change shows (a lost signal, a late delivery applied long ago)",
    )


class ReconcileResult(BaseModel):
    watermarks: dict[str, datetime] = Field(default_factory=dict)
    reports: list[TargetReport] = Field(default_factory=list)
    signalled: int = 0


def drift_of(
    item: OpenItem, ticket_key: str, status: TicketStatus, updated_at: datetime
) -> TicketChanged | None:
    """The signal an item needs for its ticket's status, or None when they agree."""
    if status is TicketStatus.CLOSED and item.state is ActionItemState.OPEN:
        event = "closed"
    elif status is TicketStatus.OPEN and item.state is ActionItemState.VERIFYING:
        event = "reopened"
    else:
        return None
    return TicketChanged(
        ticket_key=ticket_key,
        event=event,
        status=status,
        at=updated_at,
        source="reconciler",
        delivery_id=f"reconciler:{ticket_key}:{event}:{updated_at.isoformat()}",
    )

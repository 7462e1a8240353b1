"""A tracker's webhook delivery, reduced to what an action item needs to hear of it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from domain.action_item import TicketChanged, TicketStatus
from domain.identity import ActorField
from domain.limits import Key, Name

Tracker = Literal["github", "jira"]


class TrackerEvent(BaseModel):
    """A change to a ticket that an action item follows (or might: `workflow_id` is None when
    the payload does not say which item the ticket belongs to)."""

    tracker: Tracker
    event: Name = Field(description="closed, reopened, edited, labeled, commented, assigned, ...")
    ticket_key: Key = Field(description="owner/repo#N on GitHub, the issue key (PROJ-7) on Jira")
    status: TicketStatus | None = Field(description="the ticket's status after the event")
    workflow_id: str | None = Field(description="the ActionItemWorkflow the ticket names")
    delivery_id: Key = Field(description="the sender's delivery id, or a hash of the body")
    at: datetime
    activity: bool = Field(
        default=True,
        description="whether it shows someone working on the item (afteraction's own comments "
        "and labels do not)",
    )
    actor: ActorField = Field(default=None, description="the tracker's user who made the change")

    def signal(self) -> TicketChanged:
        return TicketChanged(
            ticket_key=self.ticket_key,
            event=self.event,
            status=self.status,
            at=self.at,
            source=f"webhook:{self.tracker}",
            delivery_id=self.delivery_id,
            activity=self.activity,
            actor=self.actor,
        )


class IgnoredDelivery(BaseModel):
    """A well-formed delivery that no action item acts on, and why."""

    tracker: Tracker
    reason: str
    ping: bool = False

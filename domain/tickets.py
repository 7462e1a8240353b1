"""Tickets as afteraction sees them in any tracker, and the ticket activities' inputs."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from domain.action_item import TicketRef, TicketStatus


class TicketDraft(BaseModel):
    idempotency_key: str
    title: str
    body: str
    labels: list[str] = Field(default_factory=list)
    assignee: str | None = None
    due_at: datetime
    # What trackers with richer fields (Jira) map natively; others may ignore them.
    priority: str | None = Field(default=None, description="the item's priority, P1-P4")
    components: list[str] = Field(default_factory=list)
    issue_type: str | None = None


# A closed ticket's resolution when its item's risk was accepted (won't do), as GitHub says it.
NOT_PLANNED = "not_planned"


class Ticket(BaseModel):
    ref: TicketRef
    title: str
    status: TicketStatus
    labels: list[str] = Field(default_factory=list)
    assignee: str | None = None
    due_at: datetime | None = None
    idempotency_key: str | None = None
    updated_at: datetime
    resolution: str | None = Field(
        default=None,
        description="why a closed ticket closed, in its tracker's words: GitHub's state_reason "
        "(not_planned for an item whose risk was accepted), Jira's resolution (Won't Do), the "
        "local tracker's not_planned",
    )


class TicketChange(BaseModel):
    due_at: datetime | None = None
    add_labels: list[str] = Field(default_factory=list)
    assignee: str | None = None
    close_as_not_planned: bool = Field(
        default=False,
        description="close the ticket as won't do (the item's risk was accepted): GitHub's "
        "state_reason not_planned, Jira's Won't Do resolution where the transition's screen "
        "takes one, the local tracker's not_planned",
    )


class EnsureTicket(BaseModel):
    target: str
    draft: TicketDraft
    may_exist: bool = Field(
        default=True,
        description="whether an earlier create may have made the ticket (false only for the "
        "first create of an item's first run: then a first attempt skips the look-up)",
    )


class CommentOnTicket(BaseModel):
    target: str
    key: str
    text: str
    idempotency_key: str


class UpdateTicket(BaseModel):
    target: str
    key: str
    change: TicketChange


class TicketComment(BaseModel):
    """A comment on a local ticket, as `tickets show` and the API print it."""

    ticket_key: str
    idempotency_key: str
    text: str
    at: datetime


class TicketDetail(Ticket):
    """A ticket with what only `show` needs: its body and its comments."""

    body: str
    comments: list[TicketComment]

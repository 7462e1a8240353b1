"""Closing and reopening local tickets as their team would, for `afteraction tickets` and the API.

The ticket changes, then its action item hears of it through the same `ticket_changed` signal
a tracker webhook sends, so the local tracker exercises the real path end to end. The action
item is the workflow named by the ticket's idempotency key; a ticket opened by hand has none
and changes without Temporal.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from pydantic import BaseModel, Field
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from app.services.incidents import TemporalUnavailable, unavailable_message
from domain.action_item import TicketChanged, TicketStatus
from integrations.local import TARGET, LocalTracker
from integrations.tracker import Ticket

SIGNAL = "ticket_changed"
# The event each status change sends, as a tracker's webhook would name it.
EVENTS: dict[TicketStatus, str] = {TicketStatus.CLOSED: "closed", TicketStatus.OPEN: "reopened"}


class StatusChange(BaseModel):
    """A ticket's status change, and whether the action item that follows it heard of it."""

    ticket: Ticket
    workflow_id: str | None = Field(
        description="the action item's workflow (the ticket's idempotency key); "
        "null for a ticket opened by hand, which no action item follows"
    )
    told: bool = Field(description="true when that workflow received the ticket_changed signal")
    warning: str | None = Field(
        default=None, description="why the change reached no action item, when one should have"
    )

    @property
    def event(self) -> str:
        return EVENTS[self.ticket.status]


def _change(ticket: Ticket, workflow_id: str | None, told: bool) -> StatusChange:
    warning = None
    if workflow_id is not None and not told:
        warning = (
            f"no action item follows {ticket.ref.key}: its workflow {workflow_id} is not "
            f"running; the ticket is {ticket.status.value} all the same"
        )
    return StatusChange(ticket=ticket, workflow_id=workflow_id, told=told, warning=warning)


async def set_status(
    tracker: LocalTracker,
    key: str,
    status: TicketStatus,
    *,
    client: Callable[[], Awaitable[Client]],
    temporal_address: str,
) -> StatusChange:
    """Close or reopen the ticket, then signal its action item's workflow.

    Temporal is reached (`client()`) before the ticket changes: when it is away, nothing
    changes (TemporalUnavailable) and the call can simply be made again. The tracker's own
    errors (an unknown key, the database away) come as TrackerError.
    """
    ticket = await asyncio.to_thread(tracker.get, TARGET, key)
    workflow_id = ticket.idempotency_key
    if workflow_id is None:
        changed = await asyncio.to_thread(_apply, tracker, key, status)
        return _change(changed, None, told=False)
    connection = await client()
    changed = await asyncio.to_thread(_apply, tracker, key, status)
    told = await tell(connection, workflow_id, changed, temporal_address=temporal_address)
    return _change(changed, workflow_id, told)


def _apply(tracker: LocalTracker, key: str, status: TicketStatus) -> Ticket:
    if status is TicketStatus.CLOSED:
        return tracker.close(TARGET, key)
    return tracker.reopen(TARGET, key)


async def tell(client: Client, workflow_id: str, ticket: Ticket, *, temporal_address: str) -> bool:
    """Send the ticket's change to its workflow: False when that workflow is not running."""
    signal = TicketChanged(
        ticket_key=ticket.ref.key,
        event=EVENTS[ticket.status],
        status=ticket.status,
        at=ticket.updated_at,
        source=TARGET,
        delivery_id=str(uuid.uuid4()),
    )
    try:
        await client.get_workflow_handle(workflow_id).signal(SIGNAL, signal)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return False
        unavailable = unavailable_message(temporal_address, error.message)
        raise TemporalUnavailable(
            f"{ticket.ref.key} is {ticket.status.value}, but its action item {workflow_id} was "
            f"not told: {unavailable}; then run the command again"
        ) from None
    return True

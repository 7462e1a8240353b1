"""A long-lived action item continues as new with its ticket, deadlines and seen deliveries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from domain.action_item import (
    ActionItem,
    ActionItemState,
    TicketChanged,
    TicketStatus,
)
from integrations.local import LocalTracker
from settings import Settings
from tests.helpers import eventually
from tests.reviews import standalone_item


async def test_item_continues_as_new_keeping_its_ticket_and_state(
    client: Client, worker: Worker, task_queue: str, settings: Settings
) -> None:
    workflow_id = f"incident/INC-T{uuid.uuid4().hex[:8].upper()}/action/1"
    start = standalone_item(workflow_id.split("/")[1], history_limit=20)
    handle = await client.start_workflow(
        "ActionItemWorkflow", start, id=workflow_id, task_queue=task_queue
    )
    first_run = (await handle.describe()).run_id

    async def state() -> ActionItem:
        current = client.get_workflow_handle(workflow_id)
        item: ActionItem = await current.query("state", result_type=ActionItem)
        return item

    item = await eventually(state, lambda i: i.state is ActionItemState.OPEN)
    assert item.ticket is not None
    for number in range(8):  # tracker chatter: comments on the ticket
        await client.get_workflow_handle(workflow_id).signal(
            "ticket_changed",
            TicketChanged(
                ticket_key=item.ticket.key,
                event="commented",
                at=datetime.now(UTC),
                source="local",
                delivery_id=f"c-{number}",
            ),
        )

    async def run_id() -> str:
        return (await client.get_workflow_handle(workflow_id).describe()).run_id

    await eventually(run_id, lambda current: current != first_run)
    history = await client.get_workflow_handle(workflow_id, run_id=first_run).fetch_history()
    assert history.events[-1].event_type is (
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    )
    carried = await eventually(state, lambda i: len(i.seen_deliveries) == 8)
    assert carried.ticket == item.ticket
    assert carried.due_at == item.due_at

    await client.get_workflow_handle(workflow_id).signal(
        "ticket_changed",
        TicketChanged(
            ticket_key=item.ticket.key,
            event="closed",
            status=TicketStatus.CLOSED,
            at=datetime.now(UTC),
            source="local",
            delivery_id="close",
        ),
    )
    await eventually(state, lambda i: i.state is ActionItemState.VERIFYING)
    tickets = LocalTracker.configured(settings).tickets()
    assert [ticket.idempotency_key for ticket in tickets] == [workflow_id]

"""A long-lived action item continues as new with its ticket, deadlines and seen deliveries,
and the numbers of its reports to the incident keep rising."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from domain.action_item import (
    AcceptRisk,
    ActionItem,
    ActionItemState,
    ActionItemSummary,
    ExtendDeadline,
    StartActionItem,
    TicketChanged,
    TicketStatus,
)
from integrations.local import LocalTracker
from settings import Settings
from tests.helpers import eventually
from tests.reviews import signal_ticket, standalone_item


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
    await chatter(client, workflow_id, item.ticket.key)

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

    await signal_ticket(client, workflow_id, item.ticket.key, TicketStatus.CLOSED, "close")
    await eventually(state, lambda i: i.state is ActionItemState.VERIFYING)
    tickets = LocalTracker.configured(settings).tickets()
    assert [ticket.idempotency_key for ticket in tickets] == [workflow_id]


async def chatter(client: Client, workflow_id: str, ticket_key: str, count: int = 8) -> None:
    """Comments on the item's ticket: enough history for a run with a limit of 20 to end."""
    for number in range(count):
        await client.get_workflow_handle(workflow_id).signal(
            "ticket_changed",
            TicketChanged(
                ticket_key=ticket_key,
                event="commented",
                at=datetime.now(UTC),
                source="local",
                delivery_id=f"c-{number}",
            ),
        )


class CollectReports(BaseModel):
    start: StartActionItem
    workflow_id: str
    task_queue: str


@workflow.defn(name="ReportCollector", sandboxed=False)
class ReportCollector:
    """Stands in for the incident: starts one item and keeps every report it sends, until a
    final one."""

    def __init__(self) -> None:
        self._reports: list[ActionItemSummary] = []

    @workflow.run
    async def run(self, request: CollectReports) -> list[ActionItemSummary]:
        await workflow.start_child_workflow(
            "ActionItemWorkflow",
            request.start,
            id=request.workflow_id,
            task_queue=request.task_queue,
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
        )
        await workflow.wait_condition(lambda: any(r.state.is_final for r in self._reports))
        return self._reports

    @workflow.signal
    def action_item_changed(self, summary: ActionItemSummary) -> None:
        self._reports.append(summary)


async def test_report_numbers_keep_rising_when_the_item_continues_as_new(
    client: Client, worker: Worker, task_queue: str
) -> None:
    key = f"INC-T{uuid.uuid4().hex[:8].upper()}"
    workflow_id = f"incident/{key}/action/1"
    collector_queue = f"{task_queue}-collector"
    async with Worker(client, task_queue=collector_queue, workflows=[ReportCollector]):
        collector = await client.start_workflow(
            ReportCollector.run,
            CollectReports(
                start=standalone_item(key, history_limit=20),
                workflow_id=workflow_id,
                task_queue=task_queue,
            ),
            id=f"collector/{key}",
            task_queue=collector_queue,
        )

        async def state() -> ActionItem | None:
            try:
                item: ActionItem = await client.get_workflow_handle(workflow_id).query(
                    "state", result_type=ActionItem
                )
            except RPCError as error:  # not started by the collector yet
                if error.status is not RPCStatusCode.NOT_FOUND:
                    raise
                return None
            return item

        item = await eventually(state, lambda i: i is not None and i.state is ActionItemState.OPEN)
        assert item is not None and item.ticket is not None
        first_run = (await client.get_workflow_handle(workflow_id).describe()).run_id
        await client.get_workflow_handle(workflow_id).execute_update(
            "extend_deadline",
            ExtendDeadline(due_at=item.due_at + timedelta(days=7), reason="waiting on the vendor"),
        )
        await chatter(client, workflow_id, item.ticket.key)

        async def run_id() -> str:
            return (await client.get_workflow_handle(workflow_id).describe()).run_id

        await eventually(run_id, lambda current: current != first_run)
        carried = await state()
        assert carried is not None
        assert carried.reports_sent >= 2  # the ticket's creation and the extension, at least
        await client.get_workflow_handle(workflow_id).execute_update(
            "accept_risk", AcceptRisk(rationale="covered by the pool rewrite", approver="vp")
        )
        reports = await collector.result()

    numbers = sorted(report.sequence for report in reports)
    # Numbered once each, from 1, across both runs: the second run went on from the first.
    assert numbers == list(range(1, len(reports) + 1))
    last = max(reports, key=lambda report: report.sequence)
    assert last.state is ActionItemState.ACCEPTED
    assert last.sequence > carried.reports_sent

"""From resolution through the review to closed, verified action items, on the dev server
with the local tracker: one ticket per item, ticket events moving items, the incident
closing only when every item is done or accepted."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.worker import Worker

from app.services.actions import ActionItems
from domain.action_item import (
    AcceptRisk,
    ActionItem,
    ActionItemState,
    ActionItemSummary,
    ExtendDeadline,
    TeamRoute,
    TicketStatus,
    VerifyItem,
    action_workflow_id,
)
from domain.commands import Acknowledge, Transition
from domain.functions import ReviewFunction
from domain.incident import Incident, IncidentState
from domain.policy import Rung
from domain.review import Participant, ScheduleReview, SubmitReview
from integrations.local import LocalTracker
from settings import Settings
from tests.helpers import declare, eventually
from tests.policies import slow_policy
from tests.reviews import (
    full_review,
    item_spec,
    item_state,
    local_route,
    quick_items_policy,
    signal_ticket,
)
from workflows.incident import IncidentWorkflow

Handle = WorkflowHandle[IncidentWorkflow, Incident]


async def resolved_incident(client: Client, task_queue: str, **fields: Any) -> Handle:
    handle = await declare(client, task_queue, slow_policy(), **fields)
    await handle.execute_update(IncidentWorkflow.acknowledge, Acknowledge(commander="bob"))
    await handle.execute_update(IncidentWorkflow.resolve, Transition())
    return handle


async def wait_item(client: Client, workflow_id: str, state: ActionItemState) -> ActionItem:
    return await eventually(
        lambda: item_state(client, workflow_id), lambda item: item.state is state
    )


async def test_review_to_closed_incident_through_tickets_verification_and_risk_acceptance(
    client: Client, worker: Worker, task_queue: str, settings: Settings
) -> None:
    handle = await resolved_incident(client, task_queue)
    status = await handle.execute_update(
        IncidentWorkflow.schedule_review,
        ScheduleReview(at=datetime.now(UTC) + timedelta(days=1), facilitator="fran"),
    )
    assert status.state is IncidentState.IN_REVIEW
    review = full_review(
        item_spec("payments", "Cap the pool size"),
        item_spec("platform", "Alert on pool saturation"),
    )
    routes = {team: local_route(team) for team in ("payments", "platform")}
    status = await handle.execute_update(
        IncidentWorkflow.submit_review, SubmitReview(review=review, routes=routes, by="fran")
    )
    assert status.state is IncidentState.TRACKING
    key = (await handle.query(IncidentWorkflow.state)).key
    first, second = action_workflow_id(key, 1), action_workflow_id(key, 2)

    one = await wait_item(client, first, ActionItemState.OPEN)
    two = await wait_item(client, second, ActionItemState.OPEN)
    tracker = LocalTracker.configured(settings)
    tickets = {ticket.idempotency_key: ticket for ticket in tracker.tickets()}
    assert set(tickets) == {first, second}
    assert one.ticket is not None and tickets[first].ref.key == one.ticket.key
    assert tickets[first].assignee == "payments-oncall"
    assert "afteraction" in tickets[first].labels

    tracker.close("local", one.ticket.key)
    await signal_ticket(client, first, one.ticket.key, TicketStatus.CLOSED, "d-1")
    await wait_item(client, first, ActionItemState.VERIFYING)
    await client.get_workflow_handle(first).execute_update(
        "verify", VerifyItem(evidence="https://grafana/d/pool", by="carol")
    )
    incident = await handle.query(IncidentWorkflow.state)
    assert incident.state is IncidentState.TRACKING  # item 2 is still open

    await client.get_workflow_handle(second).execute_update(
        "accept_risk", AcceptRisk(rationale="replaced by the pool rewrite", approver="vp")
    )
    result = await handle.result()
    assert result.state is IncidentState.CLOSED
    assert result.clock.closed_at is not None
    assert {item.state for item in result.action_items} == {
        ActionItemState.DONE,
        ActionItemState.ACCEPTED,
    }
    assert len(tracker.tickets()) == 2
    assert two.ticket is not None
    assert any("risk accepted" in c.text for c in tracker.comments(two.ticket.key))


async def test_invalid_review_is_refused_with_every_problem_and_changes_nothing(
    client: Client, worker: Worker, task_queue: str
) -> None:
    handle = await resolved_incident(client, task_queue)
    review = full_review(executive_summary="", facilitator=None)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            IncidentWorkflow.submit_review, SubmitReview(review=review, routes={})
        )
    message = str(refused.value.cause)
    for path in ("executive_summary", "facilitator", "action_items"):
        assert path in message
    incident = await handle.query(IncidentWorkflow.state)
    assert incident.state is IncidentState.RESOLVED
    assert incident.review is None and incident.action_items == []


async def test_missing_required_function_needs_a_waiver_which_is_kept_as_a_warning(
    client: Client, worker: Worker, task_queue: str
) -> None:
    handle = await resolved_incident(client, task_queue)
    engineers_only = [Participant(name="eve", function=ReviewFunction.ENGINEERING)]
    items = [item_spec("payments", "Cap the pool size")]
    routes = {"payments": local_route("payments")}
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            IncidentWorkflow.submit_review,
            SubmitReview(review=full_review(*items, participants=engineers_only), routes=routes),
        )
    assert "missing_function_waiver" in str(refused.value.cause)
    waived = full_review(
        *items,
        participants=engineers_only,
        missing_function_waiver="product was on leave; briefed after",
    )
    await handle.execute_update(
        IncidentWorkflow.submit_review, SubmitReview(review=waived, routes=routes)
    )
    incident = await handle.query(IncidentWorkflow.state)
    assert incident.review is not None
    assert any("product was on leave" in warning for warning in incident.review.warnings)
    assert any("operations" in warning for warning in incident.review.warnings)


async def test_reopened_ticket_reopens_the_item_and_a_repeated_delivery_changes_nothing(
    client: Client, worker: Worker, task_queue: str
) -> None:
    handle = await resolved_incident(client, task_queue)
    routes = {"payments": local_route("payments")}
    await handle.execute_update(
        IncidentWorkflow.submit_review,
        SubmitReview(review=full_review(item_spec("payments", "Cap the pool")), routes=routes),
    )
    key = (await handle.query(IncidentWorkflow.state)).key
    workflow_id = action_workflow_id(key, 1)
    item = await wait_item(client, workflow_id, ActionItemState.OPEN)
    assert item.ticket is not None
    await signal_ticket(client, workflow_id, item.ticket.key, TicketStatus.CLOSED, "d-1")
    await wait_item(client, workflow_id, ActionItemState.VERIFYING)
    await signal_ticket(client, workflow_id, item.ticket.key, TicketStatus.OPEN, "d-2")
    await wait_item(client, workflow_id, ActionItemState.OPEN)
    # The close delivered again (a webhook retry) must not close the item a second time.
    await signal_ticket(client, workflow_id, item.ticket.key, TicketStatus.CLOSED, "d-1")
    await signal_ticket(client, workflow_id, item.ticket.key, TicketStatus.OPEN, "d-3")
    settled = await item_state(client, workflow_id)
    assert settled.state is ActionItemState.OPEN
    assert settled.seen_deliveries == ["d-1", "d-2", "d-3"]
    incident = await eventually(
        lambda: handle.query(IncidentWorkflow.state),
        lambda i: i.action_items[0].state is ActionItemState.OPEN,
    )
    assert incident.state is IncidentState.TRACKING


async def test_overdue_item_is_reminded_then_walks_the_ladder_on_its_ticket_until_extended(
    client: Client, worker: Worker, task_queue: str, settings: Settings
) -> None:
    handle = await declare(client, task_queue, quick_items_policy())
    await handle.execute_update(IncidentWorkflow.resolve, Transition())
    await handle.execute_update(
        IncidentWorkflow.submit_review,
        SubmitReview(
            review=full_review(item_spec("payments", "Cap the pool")),
            routes={"payments": local_route("payments")},
        ),
    )
    key = (await handle.query(IncidentWorkflow.state)).key
    workflow_id = action_workflow_id(key, 1)
    item = await eventually(
        lambda: item_state(client, workflow_id), lambda i: len(i.escalations) >= 3, timeout=15
    )
    assert [e.rung for e in item.escalations][:3] == [Rung.OWNER, Rung.TEAM_LEAD, Rung.MANAGER]
    assert [e.notified for e in item.escalations][:3] == [
        ["payments-oncall"],
        ["payments-lead"],
        ["payments-manager"],
    ]
    for record, delay in zip(item.escalations, (0, 1, 2), strict=False):
        late = record.at - (item.due_at + timedelta(seconds=delay))
        # Never early; the upper bound leaves room for a loaded 2-core machine.
        assert timedelta(0) <= late < timedelta(seconds=3), (record, late)

    # A new due date 1.5s away: its reminder (1s before) comes first, then the new ladder's
    # owner step (at it), after the old ladder's leadership step (old due + 3s) would have.
    item_handle = client.get_workflow_handle(workflow_id)
    extended = await item_handle.execute_update(
        "extend_deadline",
        ExtendDeadline(
            due_at=datetime.now(UTC) + timedelta(seconds=1.5), reason="waiting on vendor"
        ),
        result_type=ActionItemSummary,
    )
    assert extended.due_at > item.due_at
    before = (await item_state(client, workflow_id)).escalations
    assert len(before) >= 3
    assert all(record.due_at == item.due_at for record in before)

    assert item.ticket is not None
    tracker = LocalTracker.configured(settings)
    comments = await eventually(
        lambda: asyncio.to_thread(tracker.comments, item.ticket.key),  # type: ignore[union-attr]
        lambda found: any("extended" in c.text for c in found),
    )
    texts = [c.text for c in comments]
    assert "reminder" in texts[0]
    assert "@payments-oncall escalated to owner" in texts[1]
    assert "@payments-lead escalated to team lead" in texts[2]
    assert "@payments-manager escalated to manager" in texts[3]
    [extension] = [text for text in texts if "extended" in text]
    assert "waiting on vendor" in extension
    ticket = tracker.get("local", item.ticket.key)
    assert ticket.due_at == extended.due_at
    assert {"escalated:owner", "escalated:team_lead"} <= set(ticket.labels)

    # The old ladder stopped at the extension: what follows is the new due date's own
    # reminder and ladder, from the owner up, and nothing more of the old one.
    after = await eventually(
        lambda: item_state(client, workflow_id),
        lambda i: len(i.escalations) > len(before),
        timeout=10,
    )
    assert after.escalations[: len(before)] == before
    fresh = after.escalations[len(before) :]
    assert (fresh[0].rung, fresh[0].due_at) == (Rung.OWNER, extended.due_at)
    assert all(record.due_at == extended.due_at for record in fresh)
    assert after.reminders_sent == [extended.due_at - timedelta(seconds=1)]

    later = await item_handle.execute_update(
        "extend_deadline",
        ExtendDeadline(due_at=datetime.now(UTC) + timedelta(hours=2), reason="vendor is late"),
        result_type=ActionItemSummary,
    )
    assert later.due_at > datetime.now(UTC) + timedelta(hours=1)
    refused = item_handle.execute_update(
        "extend_deadline",
        ExtendDeadline(due_at=datetime.now(UTC) + timedelta(hours=1), reason="earlier"),
    )
    with pytest.raises(WorkflowUpdateFailedError) as error:
        await refused
    assert "later than the current one" in str(error.value.cause)


async def test_refused_ticket_keeps_the_item_with_its_error_and_retries_on_request(
    client: Client, worker: Worker, task_queue: str
) -> None:
    handle = await resolved_incident(client, task_queue)
    unconfigured = TeamRoute(team="search", target="github:acme/search")
    await handle.execute_update(
        IncidentWorkflow.submit_review,
        SubmitReview(
            review=full_review(item_spec("search", "Shard the index")),
            routes={"search": unconfigured},
        ),
    )
    key = (await handle.query(IncidentWorkflow.state)).key
    workflow_id = action_workflow_id(key, 1)
    item = await eventually(
        lambda: item_state(client, workflow_id), lambda i: i.ticket_error is not None
    )
    assert item.state is ActionItemState.CREATING
    assert "AFTERACTION_GITHUB_TOKEN" in (item.ticket_error or "")
    incident = await eventually(
        lambda: handle.query(IncidentWorkflow.state),
        lambda i: bool(i.action_items),
    )
    assert incident.action_items[0].state is ActionItemState.CREATING

    async def attempts() -> int:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        return sum(
            1
            for event in history.events
            if event.event_type is EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            and event.activity_task_scheduled_event_attributes.activity_type.name == "ensure_ticket"
        )

    assert await attempts() == 1
    outcome = await ActionItems(client).retry_ticket(f"{key}-1")
    assert outcome.requested
    assert outcome.detail.startswith(f"asked {key}-1 to create its ticket again (the last try")
    await eventually(attempts, lambda count: count == 2)

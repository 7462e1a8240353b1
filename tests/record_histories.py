"""Record representative workflow histories for the replay test (tests/test_replay.py).

    .venv/bin/python -m tests.record_histories [--tag TAG] [--out DIR]

Starts a throwaway dev server (the venv's `temporal` binary) and the product's worker (its
local tracker in a temporary folder), runs every scenario below with seconds-scale policies,
and writes one file per recorded run: tests/histories/incident-<scenario>-<tag>.json for
IncidentWorkflow and tests/histories/action-item-<scenario>-<tag>.json for ActionItemWorkflow
(tag: today's UTC date unless given). It never overwrites a file, and refuses a tag that any
saved history already carries: saved histories are the record of what released code did.
See tests/histories/README.md for when to run it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from domain import search_attributes
from domain.action_item import (
    AcceptRisk,
    ActionItem,
    ActionItemState,
    ActionItemSummary,
    ExtendDeadline,
    TeamRoute,
    TicketChanged,
    TicketStatus,
    VerifyItem,
    action_workflow_id,
)
from domain.commands import (
    Acknowledge,
    AddTimelineEvent,
    AssignRole,
    Cancel,
    SetSeverity,
    Transition,
)
from domain.digest_runs import DigestRequest, DigestRunResult
from domain.incident import Incident, IncidentState, Role
from domain.policy import ActionKind, Policy
from domain.reconcile import ReconcileRequest, ReconcileResult
from domain.review import AddActionItem, ScheduleReview, SubmitReview
from domain.severity import Severity
from integrations.local import LocalTracker
from settings import Settings
from store import configured_store
from store.facts import FactsRepository
from tests.digest_week import WEEK, smtp_settings
from tests.helpers import declare, eventually, new_key
from tests.policies import fast_policy, slow_policy
from tests.reviews import (
    full_review,
    item_spec,
    item_state,
    local_route,
    quick_items_policy,
    standalone_item,
)
from tests.servers import dev_server_path
from tests.smtp_server import smtp_server
from worker import build_worker
from workflows.incident import IncidentWorkflow

HISTORIES = Path(__file__).parent / "histories"

Handle = WorkflowHandle[IncidentWorkflow, Incident]
IncidentScenario = Callable[[Client, str], Awaitable[Handle]]
# What a scenario records: the file name (before the tag) -> the run whose history it holds.
Recorded = dict[str, WorkflowHandle[Any, Any]]
Scenario = Callable[[Client, str], Awaitable[Recorded]]


async def escalations(handle: Handle, count: int) -> Incident:
    return await eventually(
        lambda: handle.query(IncidentWorkflow.state),
        lambda incident: len(incident.escalations) >= count,
        timeout=30,
    )


async def notifications_settled(handle: Handle) -> None:
    """Wait until every notify_escalation activity scheduled so far has completed."""

    async def counts() -> tuple[int, int]:
        scheduled = completed = 0
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                scheduled += 1
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                completed += 1
        return scheduled, completed

    await eventually(counts, lambda pair: pair[0] == pair[1], timeout=30)


async def lifecycle_with_escalations(client: Client, task_queue: str) -> Handle:
    """Missed acknowledgement (owner, team lead), then every command, then a missed review."""
    handle = await declare(client, task_queue, fast_policy(), declared_by="alice")
    await escalations(handle, 2)
    await handle.execute_update(IncidentWorkflow.acknowledge, Acknowledge(commander="bob"))
    await handle.execute_update(
        IncidentWorkflow.assign_role, AssignRole(role=Role.SCRIBE, person="carol")
    )
    await handle.execute_update(
        IncidentWorkflow.assign_role, AssignRole(role=Role.SUBJECT_MATTER_EXPERT, person="dan")
    )
    await handle.execute_update(
        IncidentWorkflow.add_timeline_event,
        AddTimelineEvent(
            text="deploy 42 rolled out", at=datetime.now(UTC) - timedelta(minutes=10), by="bob"
        ),
    )
    await handle.execute_update(
        IncidentWorkflow.set_severity, SetSeverity(severity=Severity.SEV1, reason="all regions")
    )
    await handle.execute_update(IncidentWorkflow.mitigate, Transition(note="traffic drained"))
    # Rejected by its validator (already mitigated): it must leave no trace, replay included.
    with contextlib.suppress(WorkflowUpdateFailedError):
        await handle.execute_update(IncidentWorkflow.mitigate, Transition())
    await handle.execute_update(IncidentWorkflow.resolve, Transition(note="rolled back"))
    before_review = len((await handle.query(IncidentWorkflow.state)).escalations)
    await escalations(handle, before_review + 2)  # review: owner, then team lead
    await notifications_settled(handle)
    await handle.terminate("recorded")
    return handle


async def cancelled_after_an_escalation(client: Client, task_queue: str) -> Handle:
    """A false alarm: the acknowledge deadline is missed once, then it is cancelled."""
    handle = await declare(client, task_queue, fast_policy(), severity=Severity.SEV3)
    await escalations(handle, 1)
    await handle.execute_update(
        IncidentWorkflow.cancel, Cancel(reason="false alarm: synthetic check", by="alice")
    )
    await handle.result()
    return handle


def sev3_slow_policy() -> Policy:
    fast = fast_policy()
    slow = slow_policy().for_severity(Severity.SEV3)
    return fast.model_copy(update={"severities": {**fast.severities, Severity.SEV3: slow}})


async def severity_changes(client: Client, task_queue: str) -> Handle:
    """SEV3 raised to SEV1 (the acknowledge deadline moves in and fires), lowered back to SEV3
    (the ladder stops), then acknowledged, resolved and missing its review."""
    handle = await declare(client, task_queue, sev3_slow_policy(), severity=Severity.SEV3)
    await handle.execute_update(IncidentWorkflow.set_severity, SetSeverity(severity=Severity.SEV1))
    await escalations(handle, 1)
    await handle.execute_update(IncidentWorkflow.set_severity, SetSeverity(severity=Severity.SEV3))
    await asyncio.sleep(1.5)
    await handle.execute_update(IncidentWorkflow.acknowledge, Acknowledge(commander="erin"))
    await handle.execute_update(IncidentWorkflow.set_severity, SetSeverity(severity=Severity.SEV2))
    await handle.execute_update(IncidentWorkflow.resolve, Transition())
    before_review = len((await handle.query(IncidentWorkflow.state)).escalations)
    await escalations(handle, before_review + 1)
    await notifications_settled(handle)
    await handle.terminate("recorded")
    return handle


async def continued_as_new(client: Client, task_queue: str) -> Recorded:
    """A run that hands its incident to a new run (a tiny history limit forces it early), and
    the run that takes it over. Histories before 20261201b2 recorded only the latter under the
    first one's name: a handle from start_workflow follows the runs to the latest."""
    policy = fast_policy(acknowledge_within="4s", status_update_every="1h", resolve_within="1h")
    handle = await declare(client, task_queue, policy, history_limit=20)
    for number in range(6):
        await handle.execute_update(
            IncidentWorkflow.add_timeline_event, AddTimelineEvent(text=f"note {number}")
        )
    latest: Handle = client.get_workflow_handle(handle.id, result_type=Incident)
    await escalations(latest, 1)
    await latest.execute_update(IncidentWorkflow.cancel, Cancel(reason="drill over"))
    await latest.result()
    first = client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
    last = client.get_workflow_handle(handle.id, run_id=(await latest.describe()).run_id)
    assert first.run_id != last.run_id, "the incident never continued as new"
    return {"incident-continued-as-new": first, "incident-carried-over": last}


# ---- action items: a review through to a closed incident, and a long-lived item ----------


def items_policy() -> Policy:
    """The quick action-item policy of the review tests, with a facilitator pool."""
    return quick_items_policy().model_copy(update={"facilitators": ["fran", "gus"]})


async def item_until(
    client: Client, workflow_id: str, accept: Callable[[ActionItem], bool]
) -> ActionItem:
    return await eventually(lambda: item_state(client, workflow_id), accept, timeout=30)


async def ticket_event(
    client: Client,
    workflow_id: str,
    ticket: str,
    event: str,
    delivery: str,
    *,
    at: datetime | None = None,
) -> None:
    status = {"closed": TicketStatus.CLOSED, "reopened": TicketStatus.OPEN}.get(event)
    await client.get_workflow_handle(workflow_id).signal(
        "ticket_changed",
        TicketChanged(
            ticket_key=ticket,
            event=event,
            status=status,
            at=at or datetime.now(UTC),
            source="local",
            delivery_id=delivery,
        ),
    )


async def failed_activities(client: Client, workflow_id: str) -> int:
    failed = 0
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        failed += event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
    return failed


async def closed_reopened_verified(client: Client, workflow_id: str) -> None:
    """Verify refused while open; closed, reopened, closed again (a repeated delivery, and a
    captured close older than the reopen under a new delivery id, among the signals), then
    verified."""
    item = await item_until(client, workflow_id, lambda i: i.state is ActionItemState.OPEN)
    assert item.ticket is not None
    ticket = item.ticket.key
    with contextlib.suppress(WorkflowUpdateFailedError):  # rejected: leaves no trace
        await client.get_workflow_handle(workflow_id).execute_update(
            "verify", VerifyItem(evidence="too early", by="carol")
        )
    await ticket_event(client, workflow_id, ticket, "closed", "close-1")
    await item_until(client, workflow_id, lambda i: i.state is ActionItemState.VERIFYING)
    await ticket_event(client, workflow_id, ticket, "reopened", "reopen-1")
    await item_until(client, workflow_id, lambda i: i.state is ActionItemState.OPEN)
    await ticket_event(client, workflow_id, ticket, "closed", "close-1")  # a webhook retry
    stale = datetime.now(UTC) - timedelta(hours=1)
    await ticket_event(client, workflow_id, ticket, "closed", "close-replayed", at=stale)
    await ticket_event(client, workflow_id, ticket, "commented", "comment-1")
    await ticket_event(client, workflow_id, ticket, "closed", "close-2")
    await item_until(client, workflow_id, lambda i: i.state is ActionItemState.VERIFYING)
    await client.get_workflow_handle(workflow_id).execute_update(
        "verify", VerifyItem(evidence="https://grafana/d/pool", by="carol")
    )


async def risk_accepted(client: Client, workflow_id: str) -> None:
    await item_until(client, workflow_id, lambda i: i.state is ActionItemState.OPEN)
    await client.get_workflow_handle(workflow_id).execute_update(
        "accept_risk", AcceptRisk(rationale="replaced by the pool rewrite", approver="vp-eng")
    )


async def overdue_extended_verified(client: Client, workflow_id: str) -> None:
    """Reminded, overdue (owner, team lead, manager), extended by an hour, closed, verified."""
    item = await item_until(client, workflow_id, lambda i: len(i.escalations) >= 3)
    assert item.ticket is not None
    await client.get_workflow_handle(workflow_id).execute_update(
        "extend_deadline",
        ExtendDeadline(
            due_at=datetime.now(UTC) + timedelta(hours=1), reason="waiting on the vendor", by="bob"
        ),
    )
    await ticket_event(client, workflow_id, item.ticket.key, "closed", "close-1")
    await item_until(client, workflow_id, lambda i: i.state is ActionItemState.VERIFYING)
    await client.get_workflow_handle(workflow_id).execute_update(
        "verify", VerifyItem(evidence="rollback drill took 4 minutes", by="dan")
    )


async def overdue_reopened_verified(client: Client, workflow_id: str) -> None:
    """Overdue (the owner told), closed, reopened while still overdue (the ladder goes on from
    where it stood), closed again, verified."""
    item = await item_until(client, workflow_id, lambda i: len(i.escalations) >= 1)
    assert item.ticket is not None
    ticket = item.ticket.key
    await ticket_event(client, workflow_id, ticket, "closed", "close-1")
    await item_until(client, workflow_id, lambda i: i.state is ActionItemState.VERIFYING)
    await ticket_event(client, workflow_id, ticket, "reopened", "reopen-1")
    await item_until(client, workflow_id, lambda i: i.state is ActionItemState.OPEN)
    await ticket_event(client, workflow_id, ticket, "closed", "close-2")
    await item_until(client, workflow_id, lambda i: i.state is ActionItemState.VERIFYING)
    await client.get_workflow_handle(workflow_id).execute_update(
        "verify", VerifyItem(evidence="pages reached the on-call in a drill", by="dan")
    )


async def refused_then_accepted(client: Client, workflow_id: str) -> None:
    """Routed to a tracker that is not configured: refused, retried on request, refused again,
    then accepted as won't-do without a ticket."""
    await item_until(client, workflow_id, lambda i: i.ticket_error is not None)
    await client.get_workflow_handle(workflow_id).signal("retry_ticket")
    await eventually(lambda: failed_activities(client, workflow_id), lambda n: n >= 2)
    await client.get_workflow_handle(workflow_id).execute_update(
        "accept_risk", AcceptRisk(rationale="the app is being retired", approver="vp-eng")
    )


async def review_to_closed(client: Client, task_queue: str) -> Recorded:
    """Acknowledged, resolved, review scheduled (facilitator proposed from the pool) and
    submitted with five items, each on its own path, until the incident closes."""
    handle = await declare(client, task_queue, items_policy(), declared_by="alice")
    await handle.execute_update(IncidentWorkflow.acknowledge, Acknowledge(commander="bob"))
    await handle.execute_update(IncidentWorkflow.resolve, Transition(note="rolled back"))
    await handle.execute_update(
        IncidentWorkflow.schedule_review, ScheduleReview(at=datetime.now(UTC) + timedelta(days=1))
    )
    review = full_review(
        item_spec("payments", "Cap the pool size", kind=ActionKind.LONG_TERM),
        item_spec("platform", "Alert on pool saturation", kind=ActionKind.LONG_TERM),
        item_spec("payments", "Roll back in under 5 minutes", kind=ActionKind.SHORT_TERM),
        item_spec("mobile", "Retry checkout in the app", kind=ActionKind.LONG_TERM),
        item_spec("payments", "Page on pool exhaustion", kind=ActionKind.SHORT_TERM),
    )
    routes = {
        "payments": local_route("payments"),
        "platform": local_route("platform"),
        "mobile": TeamRoute(team="mobile", target="github:acme/app"),
    }
    await handle.execute_update(
        IncidentWorkflow.submit_review, SubmitReview(review=review, routes=routes, by="fran")
    )
    key = (await handle.query(IncidentWorkflow.state)).key
    paths = {
        "verified-after-reopen": closed_reopened_verified,
        "risk-accepted": risk_accepted,
        "overdue-extended": overdue_extended_verified,
        "ticket-refused": refused_then_accepted,
        "overdue-reopened": overdue_reopened_verified,
    }
    ids = [action_workflow_id(key, number) for number in range(1, len(paths) + 1)]
    await asyncio.gather(
        *(path(client, id_) for path, id_ in zip(paths.values(), ids, strict=True))
    )
    recorded: Recorded = {"incident-review-closed": handle}
    await handle.result()
    for name, workflow_id in zip(paths, ids, strict=True):
        item = client.get_workflow_handle(workflow_id)
        await item.result()
        recorded[f"action-item-{name}"] = item
    return recorded


async def item_continued_as_new(client: Client, task_queue: str) -> Recorded:
    """An item started on its own (no incident) with a tiny history limit: tracker chatter
    makes it continue as new; the new run is accepted as won't-do."""
    key = new_key()
    workflow_id = action_workflow_id(key, 1)
    start = standalone_item(key, history_limit=20)
    handle = await client.start_workflow(
        "ActionItemWorkflow", start, id=workflow_id, task_queue=task_queue
    )
    first_run = handle.result_run_id
    item = await item_until(client, workflow_id, lambda i: i.state is ActionItemState.OPEN)
    assert item.ticket is not None

    async def run_id() -> str | None:
        return (await client.get_workflow_handle(workflow_id).describe()).run_id

    for number in range(30):
        if await run_id() != first_run:
            break
        await ticket_event(client, workflow_id, item.ticket.key, "commented", f"c-{number}")
        await asyncio.sleep(0.2)
    latest = client.get_workflow_handle(workflow_id)
    await latest.execute_update(
        "accept_risk", AcceptRisk(rationale="covered by the pool rewrite", approver="vp-eng")
    )
    await latest.result()
    last_run = await run_id()
    assert last_run != first_run, "the item never continued as new"
    return {
        "action-item-continued-as-new": client.get_workflow_handle(workflow_id, run_id=first_run),
        "action-item-carried-over": client.get_workflow_handle(workflow_id, run_id=last_run),
    }


async def reconciler_catches_a_closed_ticket(client: Client, task_queue: str) -> Recorded:
    """A local item whose ticket is closed without telling it; a reconciler run signals it."""
    key = new_key()
    workflow_id = action_workflow_id(key, 1)
    await client.start_workflow(
        "ActionItemWorkflow",
        standalone_item(key, history_limit=1000),
        id=workflow_id,
        task_queue=task_queue,
    )
    item = await item_until(client, workflow_id, lambda i: i.ticket is not None)
    assert item.ticket is not None
    LocalTracker.configured(Settings(home=HOME[0])).close("local", item.ticket.key)
    since = {"local": datetime.now(UTC) - timedelta(hours=1)}

    async def run() -> tuple[WorkflowHandle[Any, Any], ReconcileResult]:
        handle = await client.start_workflow(
            "TicketReconciler",
            ReconcileRequest(watermarks=since),
            id=f"reconcile-{uuid.uuid4()}",
            task_queue=task_queue,
            result_type=ReconcileResult,
        )
        return handle, await handle.result()

    # Visibility may list the new item a moment late: run until the run signals it.
    handle, result = await run()
    for _ in range(20):
        if result.signalled:
            break
        await asyncio.sleep(0.5)
        handle, result = await run()
    assert result.signalled == 1, result
    await item_until(client, workflow_id, lambda i: i.state is ActionItemState.VERIFYING)
    await client.get_workflow_handle(workflow_id).terminate("recorded")
    return {"reconciler-signals-drift": handle}


async def digest_sends_a_week(client: Client, task_queue: str) -> Recorded:
    """A WeeklyDigest run by hand for a week: planned, emailed to a loopback SMTP server (a
    worker of its own on a queue of its own: the recording worker configures no SMTP)."""
    queue = f"{task_queue}-digest"
    with (
        tempfile.TemporaryDirectory(prefix="afteraction-digest-") as folder,
        smtp_server(Path(folder)) as smtp,
    ):
        settings = smtp_settings(Path(folder) / "home", smtp)
        async with build_worker(client, settings, task_queue=queue):
            handle = await client.start_workflow(
                "WeeklyDigest",
                DigestRequest(delivery=f"manual-{uuid.uuid4().hex[:8]}", week=WEEK),
                id=f"digest-{uuid.uuid4()}",
                task_queue=queue,
                result_type=DigestRunResult,
            )
            result = await handle.result()
    assert [o.status for o in result.outcomes] == ["sent"], result
    return {"digest-sends-a-week": handle}


async def resolved(client: Client, task_queue: str, policy: Policy) -> Handle:
    handle = await declare(client, task_queue, policy)
    await handle.execute_update(IncidentWorkflow.acknowledge, Acknowledge(commander="bob"))
    await handle.execute_update(IncidentWorkflow.resolve, Transition())
    return handle


def review_of(*teams: str) -> SubmitReview:
    """A review with one long-term item per team, routed to the local tracker."""
    specs = [item_spec(team, f"Guard {team}", kind=ActionKind.LONG_TERM) for team in teams]
    routes = {team: local_route(team) for team in teams}
    return SubmitReview(review=full_review(*specs), routes=routes, by="fran")


async def incident_until(handle: Handle, accept: Callable[[Incident], bool]) -> Incident:
    return await eventually(lambda: handle.query(IncidentWorkflow.state), accept, timeout=30)


async def accept_item(client: Client, key: str, number: int) -> None:
    workflow_id = action_workflow_id(key, number)
    await item_until(client, workflow_id, lambda i: i.state is ActionItemState.OPEN)
    await client.get_workflow_handle(workflow_id).execute_update(
        "accept_risk", AcceptRisk(rationale="covered elsewhere", approver="vp-eng")
    )


async def stale_reports(client: Client, task_queue: str) -> Handle:
    """Item reports that arrive late (an unnumbered one after numbered ones, a numbered one
    that would take an accepted item back to open) are dropped; the incident still closes."""
    handle = await resolved(client, task_queue, items_policy())
    await handle.execute_update(IncidentWorkflow.submit_review, review_of("payments", "platform"))
    incident = await incident_until(
        handle, lambda i: all(item.state is ActionItemState.OPEN for item in i.action_items)
    )

    async def send(held: ActionItemSummary, state: ActionItemState, sequence: int) -> None:
        late = held.model_copy(update={"state": state, "sequence": sequence})
        await handle.signal(IncidentWorkflow.action_item_changed, late)

    await send(incident.action_items[0], ActionItemState.CREATING, 0)
    await accept_item(client, incident.key, 1)
    incident = await incident_until(
        handle, lambda i: i.action_items[0].state is ActionItemState.ACCEPTED
    )
    held = incident.action_items[0]
    await send(held, ActionItemState.OPEN, held.sequence + 1)
    await accept_item(client, incident.key, 2)
    closed = await handle.result()
    assert [item.state for item in closed.action_items] == [ActionItemState.ACCEPTED] * 2
    return handle


async def accepted_before_completed(handle: Handle) -> int:
    """How many updates the incident accepted before its facilitator was proposed (the
    look for repeat incidents is an activity too, and may complete first)."""
    accepted = 0
    proposing: int | None = None
    async for event in handle.fetch_history_events():
        scheduled = event.activity_task_scheduled_event_attributes
        if scheduled.activity_type.name == "propose_facilitator":
            proposing = event.event_id
        completed = event.activity_task_completed_event_attributes
        if proposing is not None and completed.scheduled_event_id == proposing:
            return accepted
        accepted += event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    return accepted


async def review_commands_in_turn(client: Client, task_queue: str) -> Handle:
    """A review submitted while schedule_review waits for its proposed facilitator (a long
    pool makes the activity slow enough) waits its turn; then an item is added, and the
    incident closes once both items are accepted. Tried on fresh incidents until the submit
    lands while the activity runs."""
    pool = [f"facilitator-{number}" for number in range(40)]
    policy = items_policy().model_copy(update={"facilitators": pool})
    for _ in range(10):
        handle = await resolved(client, task_queue, policy)
        scheduling = await handle.start_update(
            IncidentWorkflow.schedule_review,
            ScheduleReview(at=datetime.now(UTC) + timedelta(days=1)),
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        )
        submitted = await handle.execute_update(
            IncidentWorkflow.submit_review, review_of("payments")
        )
        await scheduling.result()
        # acknowledge, resolve and schedule_review come first; the submit must be next.
        if await accepted_before_completed(handle) == 4:
            break
        await handle.terminate("the submit came after the facilitator; trying again")
    else:
        raise AssertionError("submit_review never arrived while the facilitator was proposed")
    assert submitted.state is IncidentState.TRACKING
    await handle.execute_update(
        IncidentWorkflow.add_action_item,
        AddActionItem(
            spec=item_spec("platform", "Alert on saturation", kind=ActionKind.LONG_TERM),
            route=local_route("platform"),
        ),
    )
    key = (await handle.query(IncidentWorkflow.state)).key
    await accept_item(client, key, 1)
    await accept_item(client, key, 2)
    await handle.result()
    return handle


async def repeat_escalates_the_earlier_fix(client: Client, task_queue: str) -> Recorded:
    """A second incident of the same service and failure mode finds the first in the read
    model: its open item escalates one rung at once. The second's review names the same failure
    mode, which finds nothing new; both close once their items are accepted."""
    review = SubmitReview(
        review=full_review(
            item_spec("payments", "Cap the ledger pool", kind=ActionKind.LONG_TERM),
            failure_modes=["connection-pool-exhaustion"],
        ),
        routes={"payments": local_route("payments")},
        by="fran",
    )
    first = await declare(client, task_queue, items_policy(), services=["ledger"])
    await first.execute_update(IncidentWorkflow.resolve, Transition())
    await first.execute_update(IncidentWorkflow.submit_review, review)
    first_key = (await first.query(IncidentWorkflow.state)).key
    fix = action_workflow_id(first_key, 1)
    await item_until(client, fix, lambda i: i.state is ActionItemState.OPEN)
    facts = FactsRepository(configured_store(Settings(home=HOME[0])))
    await eventually(lambda: asyncio.to_thread(facts.action_items, [f"{first_key}-1"]), bool)
    second = await declare(
        client,
        task_queue,
        items_policy(),
        services=["ledger"],
        failure_modes=["connection-pool-exhaustion"],
    )
    await item_until(client, fix, lambda i: bool(i.proven_by))
    await second.execute_update(IncidentWorkflow.resolve, Transition())
    await second.execute_update(IncidentWorkflow.submit_review, review)
    second_key = (await second.query(IncidentWorkflow.state)).key
    for key in (first_key, second_key):
        await accept_item(client, key, 1)
    await asyncio.gather(first.result(), second.result())
    return {
        "incident-repeat-found": second,
        "action-item-repeat-proven": client.get_workflow_handle(fix),
    }


# ---- recording --------------------------------------------------------------------------

INCIDENT_SCENARIOS: dict[str, IncidentScenario] = {
    "lifecycle-escalations": lifecycle_with_escalations,
    "cancelled": cancelled_after_an_escalation,
    "severity-change": severity_changes,
    "stale-reports": stale_reports,
    "review-commands-in-turn": review_commands_in_turn,
}
SCENARIOS: list[Scenario] = [
    continued_as_new,
    review_to_closed,
    item_continued_as_new,
    reconciler_catches_a_closed_ticket,
    repeat_escalates_the_earlier_fix,
    digest_sends_a_week,
]
# The recording worker's local tracker folder (scenarios that act as the owning team use it).
HOME: list[Path] = []


async def run_scenarios(client: Client, task_queue: str) -> Recorded:
    async def incident(name: str, scenario: IncidentScenario) -> Recorded:
        return {f"incident-{name}": await scenario(client, task_queue)}

    parts = await asyncio.gather(
        *(incident(name, scenario) for name, scenario in INCIDENT_SCENARIOS.items()),
        *(scenario(client, task_queue) for scenario in SCENARIOS),
    )
    return {name: handle for part in parts for name, handle in part.items()}


async def record(out: Path, tag: str) -> list[Path]:
    existing = sorted(str(path) for path in out.glob(f"*-{tag}.json"))
    if existing:
        raise SystemExit(
            "refusing to overwrite saved histories (they must never change): "
            + ", ".join(existing)
            + "; pass another --tag"
        )
    out.mkdir(parents=True, exist_ok=True)
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=dev_server_path(),
        search_attributes=search_attributes.ALL,
        dev_server_startup_timeout=timedelta(seconds=60),
    )
    written = []
    try:
        task_queue = f"record-{uuid.uuid4()}"
        with tempfile.TemporaryDirectory(prefix="afteraction-record-") as home:
            settings = Settings(home=Path(home))
            HOME[:] = [Path(home)]
            async with build_worker(env.client, settings, task_queue=task_queue):
                recorded = await run_scenarios(env.client, task_queue)
                for name, handle in sorted(recorded.items()):
                    history = await handle.fetch_history()
                    path = out / f"{name}-{tag}.json"
                    with path.open("x", encoding="utf-8") as file:  # never overwrite
                        file.write(history.to_json() + "\n")
                    written.append(path)
                    print(f"{path}: {len(history.events)} events")
    finally:
        await env.shutdown()
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Record workflow histories for replay.")
    parser.add_argument(
        "--tag",
        default=datetime.now(UTC).strftime("%Y%m%d"),
        help="suffix of the file names, e.g. the release (default: today's UTC date)",
    )
    parser.add_argument("--out", type=Path, default=HISTORIES, help="where to write")
    args = parser.parse_args(argv)
    asyncio.run(record(args.out, args.tag))


if __name__ == "__main__":
    main(sys.argv[1:])

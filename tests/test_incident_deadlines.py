"""Durable deadlines on the real dev server, with a seconds-scale policy
(tests.policies.fast_policy: ack 2s, status every 4s, resolve 6s, review 3s; ladder owner 0s,
team lead 1s, manager 2s, leadership 3s, then leadership again every 2s).

What must NOT happen (a step after an acknowledgement, a deadline pushed out) is checked on
Temporal's time-skipping server with the same policy in minutes: there the clock moves only
when a test says so, so a command lands between two steps by construction, and the absence
is read after a later escalation that has to come after the moment in question."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio import activity
from temporalio.api.enums.v1 import EventType, WorkflowExecutionStatus
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.commands import Acknowledge, AddTimelineEvent, Cancel, SetSeverity, Transition
from domain.escalation import DeadlineKind, EscalationRecord
from domain.incident import Incident, TimelineKind
from domain.notifications import EscalationNotice
from domain.policy import Policy, Rung
from domain.severity import Severity
from tests.helpers import declare, eventually, sleep_until
from tests.policies import fast_policy, slow_policy
from worker import WORKFLOWS
from workflows.incident import IncidentWorkflow

Handle = WorkflowHandle[IncidentWorkflow, Incident]

TOLERANCE = timedelta(seconds=1)
ACK = DeadlineKind.ACKNOWLEDGE
TEAM_LEAD = ["sre-team-lead"]
MANAGER = ["engineering-manager"]
LEADERSHIP = ["vp-engineering"]
STATUS = DeadlineKind.STATUS_UPDATE
MINUTE = timedelta(minutes=1)


def escalations_for(incident: Incident, kind: DeadlineKind) -> list[EscalationRecord]:
    return [record for record in incident.escalations if record.deadline is kind]


async def state(handle: Handle) -> Incident:
    return await handle.query(IncidentWorkflow.state)


async def wait_for_escalations(
    handle: Handle, kind: DeadlineKind, count: int, *, timeout: float = 15.0
) -> Incident:
    return await eventually(
        lambda: state(handle),
        lambda incident: len(escalations_for(incident, kind)) >= count,
        timeout=timeout,
    )


def assert_close(actual: timedelta, expected: timedelta) -> None:
    assert expected <= actual <= expected + TOLERANCE, f"{actual} is not ~{expected}"


def sev3_slow_policy() -> Policy:
    """The fast policy, but SEV3 with hour-long deadlines (acknowledge, status, resolve, review)."""
    fast = fast_policy()
    slow = slow_policy().for_severity(Severity.SEV3)
    return fast.model_copy(update={"severities": {**fast.severities, Severity.SEV3: slow}})


def minute_policy(**overrides: object) -> Policy:
    """The fast policy in minutes, for the time-skipping server: ack 2m, status every 10m,
    resolve and review in a day; ladder owner 0m, team lead 1m, manager 2m, leadership 3m, then
    leadership again every 2m."""
    ladder = {"owner": "0s", "team_lead": "1m", "manager": "2m", "leadership": "3m"}
    minutes: dict[str, object] = {
        "acknowledge_within": "2m",
        "status_update_every": "10m",
        "resolve_within": "24h",
        "review_within": "24h",
        "escalation": {**ladder, "repeat_every": "2m"},
    }
    return fast_policy(**{**minutes, **overrides})


def sev3_slower_minute_policy() -> Policy:
    """The minute policy, but SEV3 gives an hour to acknowledge and reminds every 30m."""
    minutes = minute_policy()
    slower = minute_policy(acknowledge_within="1h", status_update_every="30m")
    sev3 = slower.for_severity(Severity.SEV3)
    return minutes.model_copy(update={"severities": {**minutes.severities, Severity.SEV3: sev3}})


async def notified_by_activities(handle: Handle, client: Client) -> list[EscalationNotice]:
    """The inputs of every notify_escalation activity the workflow scheduled."""
    notices = []
    async for event in handle.fetch_history_events():
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        attributes = event.activity_task_scheduled_event_attributes
        if attributes.activity_type.name != "notify_escalation":
            continue
        [notice] = await client.data_converter.decode(attributes.input.payloads, [EscalationNotice])
        notices.append(notice)
    return notices


async def stop_and_check_every_escalation_was_notified(handle: Handle, client: Client) -> Incident:
    """Terminate (so the history stops growing), then match escalation records to activities."""
    await handle.terminate("test done")
    incident = await state(handle)
    notices = await notified_by_activities(handle, client)
    assert len(notices) == len(incident.escalations)
    assert [(n.deadline, n.rung, n.recipients, n.due_at) for n in notices] == [
        (r.deadline, r.rung, r.notified, r.due_at) for r in incident.escalations
    ]
    return incident


async def test_unacknowledged_incident_walks_the_ladder_owner_to_leadership_then_repeats(
    client: Client, worker: Worker, task_queue: str
) -> None:
    handle = await declare(client, task_queue, fast_policy(), declared_by="alice")

    # owner at +0s, team lead +1s, manager +2s, leadership +3s, leadership again +5s.
    incident = await wait_for_escalations(handle, ACK, 5)

    due_at = incident.clock.declared_at + timedelta(seconds=2)
    steps = escalations_for(incident, ACK)[:5]
    assert [step.rung for step in steps] == [
        Rung.OWNER,
        Rung.TEAM_LEAD,
        Rung.MANAGER,
        Rung.LEADERSHIP,
        Rung.LEADERSHIP,
    ]
    # No commander yet: the owner is whoever declared the incident.
    assert [step.notified for step in steps] == [
        ["alice"],
        TEAM_LEAD,
        MANAGER,
        LEADERSHIP,
        LEADERSHIP,
    ]
    assert all(step.due_at == due_at for step in steps)
    for step, delay in zip(steps, (0, 1, 2, 3, 5), strict=True):
        assert_close(step.at - step.due_at, timedelta(seconds=delay))
    assert "not acknowledged within" in steps[0].reason
    escalated = [event for event in incident.timeline if event.kind is TimelineKind.ESCALATED]
    assert len(escalated) == len(incident.escalations)

    await stop_and_check_every_escalation_was_notified(handle, client)


async def test_acknowledging_stops_further_acknowledge_escalations(
    ts_env: WorkflowEnvironment, ts_worker: tuple[Client, str]
) -> None:
    client, task_queue = ts_worker
    handle = await declare(client, task_queue, minute_policy(), declared_by="alice")
    due_at = (await state(handle)).clock.declared_at + 2 * MINUTE
    # Past the deadline: the owner is told; the team lead (+1m) is still a minute away.
    await sleep_until(ts_env, due_at + timedelta(seconds=10))
    await wait_for_escalations(handle, ACK, 1)

    status = await handle.execute_update(IncidentWorkflow.acknowledge, Acknowledge(commander="bob"))
    acknowledged_at = status.clock.acknowledged_at
    assert acknowledged_at is not None
    assert acknowledged_at < due_at + MINUTE

    # The first status reminder (acknowledged + 10m) comes after every step the ladder would
    # have taken since: team lead (+1m), manager (+2m), leadership (+3m, +5m, +7m, +9m).
    await sleep_until(ts_env, acknowledged_at + 10 * MINUTE + timedelta(seconds=1))
    await wait_for_escalations(handle, STATUS, 1)

    incident = await stop_and_check_every_escalation_was_notified(handle, client)
    [step] = escalations_for(incident, ACK)
    assert (step.rung, step.notified, step.due_at) == (Rung.OWNER, ["alice"], due_at)
    assert step.at <= acknowledged_at
    [reminder] = escalations_for(incident, STATUS)
    assert reminder.due_at == acknowledged_at + 10 * MINUTE
    assert [record.deadline for record in incident.escalations] == [ACK, STATUS]


async def test_status_reminder_fires_without_timeline_events_and_a_note_resets_it(
    ts_env: WorkflowEnvironment, ts_worker: tuple[Client, str]
) -> None:
    client, task_queue = ts_worker
    handle = await declare(client, task_queue, minute_policy())
    status = await handle.execute_update(IncidentWorkflow.acknowledge, Acknowledge(commander="bob"))
    acknowledged_at = status.clock.acknowledged_at
    assert acknowledged_at is not None

    # Halfway to the reminder (acknowledged + 10m), a note re-arms the cadence from its own time.
    await sleep_until(ts_env, acknowledged_at + 5 * MINUTE)
    await handle.execute_update(
        IncidentWorkflow.add_timeline_event, AddTimelineEvent(text="failover started", by="bob")
    )
    noted = await state(handle)
    [note] = [event for event in noted.timeline if event.kind is TimelineKind.NOTE]
    assert note.at >= acknowledged_at + 5 * MINUTE

    # Then nothing is said for 10m: the reminder goes to the commander, and only that one
    # (none at acknowledged + 10m, which the note moved).
    await sleep_until(ts_env, note.at + 10 * MINUTE + timedelta(seconds=1))
    incident = await wait_for_escalations(handle, STATUS, 1)
    [reminder] = escalations_for(incident, STATUS)
    assert reminder.due_at == note.at + 10 * MINUTE
    assert reminder.rung is Rung.OWNER
    assert reminder.notified == ["bob"]
    assert "no status update for 10m" in reminder.reason
    assert_close(reminder.at - reminder.due_at, timedelta(0))
    incident = await stop_and_check_every_escalation_was_notified(handle, client)
    assert incident.escalations == [reminder]


async def test_resolve_deadline_fires_for_an_unresolved_incident(
    client: Client, worker: Worker, task_queue: str
) -> None:
    # Resolve within 3s instead of 6s, to keep the wait short (status reminders come at 4s).
    handle = await declare(client, task_queue, fast_policy(resolve_within="3s"))
    await handle.execute_update(IncidentWorkflow.acknowledge, Acknowledge(commander="bob"))

    incident = await wait_for_escalations(handle, DeadlineKind.RESOLVE, 1)

    [step] = escalations_for(incident, DeadlineKind.RESOLVE)
    assert step.due_at == incident.clock.declared_at + timedelta(seconds=3)
    assert step.rung is Rung.OWNER
    assert step.notified == ["bob"]
    assert "not resolved within" in step.reason
    assert_close(step.at - step.due_at, timedelta(0))
    assert escalations_for(incident, ACK) == []
    await stop_and_check_every_escalation_was_notified(handle, client)


async def test_review_deadline_fires_after_resolution_and_response_deadlines_stop(
    client: Client, worker: Worker, task_queue: str
) -> None:
    handle = await declare(client, task_queue, fast_policy())
    await handle.execute_update(IncidentWorkflow.acknowledge, Acknowledge(commander="bob"))
    await handle.execute_update(IncidentWorkflow.resolve, Transition(note="rolled back"))

    incident = await wait_for_escalations(handle, DeadlineKind.REVIEW, 2)

    resolved_at = incident.clock.resolved_at
    assert resolved_at is not None
    first, second = escalations_for(incident, DeadlineKind.REVIEW)[:2]
    assert first.due_at == resolved_at + timedelta(seconds=3)
    assert (first.rung, first.notified) == (Rung.OWNER, ["bob"])
    assert (second.rung, second.notified) == (Rung.TEAM_LEAD, TEAM_LEAD)
    assert_close(first.at - first.due_at, timedelta(0))
    assert_close(second.at - second.due_at, timedelta(seconds=1))
    # Resolved at once: the status (4s) and resolve (6s) deadlines no longer apply.
    assert {record.deadline for record in incident.escalations} == {DeadlineKind.REVIEW}
    await stop_and_check_every_escalation_was_notified(handle, client)


async def test_raising_severity_rearms_the_acknowledge_deadline_under_the_new_policy(
    client: Client, worker: Worker, task_queue: str
) -> None:
    # SEV3 would give an hour to acknowledge; SEV1 gives 2s, counted from the declaration.
    handle = await declare(client, task_queue, sev3_slow_policy(), severity=Severity.SEV3)
    await handle.execute_update(IncidentWorkflow.set_severity, SetSeverity(severity=Severity.SEV1))

    incident = await wait_for_escalations(handle, ACK, 1, timeout=6.0)

    [step, *_] = escalations_for(incident, ACK)
    declared_at = incident.clock.declared_at
    assert step.due_at == declared_at + timedelta(seconds=2)
    assert step.rung is Rung.OWNER
    assert "SEV1 not acknowledged within" in step.reason
    assert_close(step.at - declared_at, timedelta(seconds=2))
    await stop_and_check_every_escalation_was_notified(handle, client)


async def test_lowering_severity_pushes_a_pending_deadline_out_so_it_does_not_fire(
    ts_env: WorkflowEnvironment, ts_worker: tuple[Client, str]
) -> None:
    client, task_queue = ts_worker
    policy = sev3_slower_minute_policy()
    handle = await declare(client, task_queue, policy, severity=Severity.SEV1)
    await handle.execute_update(IncidentWorkflow.set_severity, SetSeverity(severity=Severity.SEV3))
    lowered = await state(handle)
    [change] = [e for e in lowered.timeline if e.kind is TimelineKind.SEVERITY_CHANGED]
    assert change.at < lowered.clock.declared_at + 2 * MINUTE  # before the SEV1 deadline

    # The SEV3 status reminder (30m) comes long after the SEV1 acknowledge deadline (2m) and
    # its whole ladder would have; the SEV3 acknowledge deadline (1h) is still ahead.
    await sleep_until(ts_env, change.at + 30 * MINUTE + timedelta(seconds=1))
    await wait_for_escalations(handle, STATUS, 1)

    incident = await stop_and_check_every_escalation_was_notified(handle, client)
    assert incident.severity is Severity.SEV3
    assert [record.deadline for record in incident.escalations] == [STATUS]


async def test_lowering_severity_after_a_miss_stops_the_ladder(
    ts_env: WorkflowEnvironment, ts_worker: tuple[Client, str]
) -> None:
    client, task_queue = ts_worker
    policy = sev3_slower_minute_policy()
    handle = await declare(client, task_queue, policy, severity=Severity.SEV1)
    due_at = (await state(handle)).clock.declared_at + 2 * MINUTE
    # Past the SEV1 deadline: the owner is told; the team lead (+1m) is still a minute away.
    await sleep_until(ts_env, due_at + timedelta(seconds=10))
    await wait_for_escalations(handle, ACK, 1)
    await handle.execute_update(IncidentWorkflow.set_severity, SetSeverity(severity=Severity.SEV3))
    lowered = await state(handle)
    [change] = [e for e in lowered.timeline if e.kind is TimelineKind.SEVERITY_CHANGED]
    assert change.at < due_at + MINUTE

    # Under SEV1 the team lead (+1m), manager (+2m) and leadership (+3m, then every 2m) would
    # have followed; the SEV3 status reminder (30m) comes after all of them, and the SEV3
    # acknowledge deadline (1h) is still ahead.
    await sleep_until(ts_env, change.at + 30 * MINUTE + timedelta(seconds=1))
    await wait_for_escalations(handle, STATUS, 1)

    incident = await stop_and_check_every_escalation_was_notified(handle, client)
    [step] = escalations_for(incident, ACK)
    assert (step.rung, step.due_at) == (Rung.OWNER, due_at)
    assert step.at <= change.at
    assert [record.deadline for record in incident.escalations] == [ACK, STATUS]


@activity.defn(name="notify_escalation")
async def slow_notifier(notice: EscalationNotice) -> None:
    await asyncio.sleep(1.5)


@activity.defn(name="notify_escalation")
async def refusing_notifier(notice: EscalationNotice) -> None:
    raise ApplicationError("the chat webhook refused the message with HTTP 403", non_retryable=True)


def worker_with(
    client: Client, task_queue: str, notifier: Callable[[EscalationNotice], Awaitable[None]]
) -> Worker:
    """The product's workflows with a stand-in notification activity, and no read model:
    incidents on it are declared with record_facts=False."""
    return Worker(client, task_queue=task_queue, workflows=WORKFLOWS, activities=[notifier])


async def activity_events(handle: Handle) -> tuple[int, int]:
    scheduled = completed = 0
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled += 1
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            completed += 1
    return scheduled, completed


async def test_cancel_while_a_notification_is_in_flight_ends_the_workflow(
    client: Client, task_queue: str
) -> None:
    async with worker_with(client, task_queue, slow_notifier):
        handle = await declare(client, task_queue, fast_policy(), record_facts=False)
        await wait_for_escalations(handle, ACK, 1)
        assert (await activity_events(handle))[1] == 0  # the owner's notice is still in flight

        await handle.execute_update(IncidentWorkflow.cancel, Cancel(reason="false alarm"))
        result = await asyncio.wait_for(handle.result(), timeout=10)

        assert result.clock.cancelled_at is not None
        # The workflow finished the notice it had started before it completed.
        scheduled, completed = await activity_events(handle)
        assert scheduled == completed == len(result.escalations) >= 1


async def test_undeliverable_notification_neither_fails_the_incident_nor_stops_the_ladder(
    client: Client, task_queue: str
) -> None:
    async with worker_with(client, task_queue, refusing_notifier):
        handle = await declare(client, task_queue, fast_policy(), record_facts=False)

        # owner (+0s) is refused; team lead (+1s) and manager (+2s) still follow.
        incident = await wait_for_escalations(handle, ACK, 3)

        assert [step.rung for step in escalations_for(incident, ACK)][:3] == [
            Rung.OWNER,
            Rung.TEAM_LEAD,
            Rung.MANAGER,
        ]
        description = await handle.describe()
        assert description.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
        status = await handle.execute_update(
            IncidentWorkflow.acknowledge, Acknowledge(commander="bob")
        )
        assert status.clock.acknowledged_at is not None
        await handle.terminate("test done")

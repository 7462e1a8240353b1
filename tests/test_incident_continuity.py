"""A long-lived incident stays whole: continue-as-new keeps its state and deadlines, the
timeline stays in time order, and the clock has no gaps when steps are skipped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from domain.commands import AddTimelineEvent, Cancel, Transition
from domain.escalation import DeadlineKind
from domain.incident import Incident, IncidentState, TimelineKind
from domain.policy import Rung
from tests.helpers import declare, eventually
from tests.policies import fast_policy, slow_policy
from workflows.incident import IncidentWorkflow


async def test_continue_as_new_keeps_the_incident_and_its_pending_deadline(
    client: Client, worker: Worker, task_queue: str
) -> None:
    # Acknowledge within 4s; the run's history limit is tiny, so a few notes force a new run.
    policy = fast_policy(acknowledge_within="4s", status_update_every="1h", resolve_within="1h")
    handle = await declare(client, task_queue, policy, history_limit=20)
    first_run = (await handle.describe()).run_id
    for number in range(6):
        await handle.execute_update(
            IncidentWorkflow.add_timeline_event, AddTimelineEvent(text=f"note {number}")
        )

    async def latest_run() -> str:
        return (await client.get_workflow_handle(handle.id).describe()).run_id

    await eventually(latest_run, lambda run_id: run_id != first_run)
    first_history = await client.get_workflow_handle(handle.id, run_id=first_run).fetch_history()
    assert first_history.events[-1].event_type is (
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    )

    current: WorkflowHandle[Any, Incident] = client.get_workflow_handle(
        handle.id, result_type=Incident
    )
    incident: Incident = await eventually(
        lambda: current.query(IncidentWorkflow.state), lambda i: bool(i.escalations), timeout=15
    )
    notes = [e.text for e in incident.timeline if e.kind is TimelineKind.NOTE]
    assert notes == [f"note {n}" for n in range(6)]
    first = incident.escalations[0]
    assert (first.deadline, first.rung) == (DeadlineKind.ACKNOWLEDGE, Rung.OWNER)
    assert first.due_at == incident.clock.declared_at + timedelta(seconds=4)

    await current.execute_update(IncidentWorkflow.cancel, Cancel(reason="drill over"))
    result = await current.result()
    assert result.state is IncidentState.CANCELLED
    assert [e.text for e in result.timeline if e.kind is TimelineKind.NOTE] == notes


async def test_backdated_events_take_their_place_in_the_timeline(
    client: Client, worker: Worker, task_queue: str
) -> None:
    started = datetime.now(UTC) - timedelta(hours=1)
    handle = await declare(client, task_queue, slow_policy(), started_at=started)
    earlier = datetime.now(UTC) - timedelta(minutes=30)
    await handle.execute_update(
        IncidentWorkflow.add_timeline_event, AddTimelineEvent(text="error rate rose", at=earlier)
    )
    await handle.execute_update(IncidentWorkflow.add_timeline_event, AddTimelineEvent(text="now"))
    incident = await handle.query(IncidentWorkflow.state)
    assert incident.timeline[0].text == "error rate rose"
    times = [e.at for e in incident.timeline]
    assert times == sorted(times)


async def test_mitigating_an_unacknowledged_incident_stamps_the_acknowledgement(
    client: Client, worker: Worker, task_queue: str
) -> None:
    handle = await declare(client, task_queue, slow_policy())
    status = await handle.execute_update(IncidentWorkflow.mitigate, Transition())
    assert status.state is IncidentState.MITIGATED
    assert status.clock.acknowledged_at == status.clock.mitigated_at


async def test_missed_status_updates_climb_to_the_team_lead_and_no_higher(
    client: Client, worker: Worker, task_queue: str
) -> None:
    policy = fast_policy(acknowledge_within="1h", status_update_every="1s", resolve_within="1h")
    handle = await declare(client, task_queue, policy)

    def reminders(incident: Incident) -> list[Rung]:
        return [e.rung for e in incident.escalations if e.deadline is DeadlineKind.STATUS_UPDATE]

    incident = await eventually(
        lambda: handle.query(IncidentWorkflow.state),
        lambda i: len(reminders(i)) >= 4,
        timeout=15,
    )
    assert reminders(incident)[:4] == [Rung.OWNER, Rung.TEAM_LEAD, Rung.TEAM_LEAD, Rung.TEAM_LEAD]
    await handle.execute_update(IncidentWorkflow.cancel, Cancel(reason="test over"))

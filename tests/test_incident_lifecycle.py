"""The incident lifecycle on the real dev server: commands, clock, roles, timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from domain.commands import (
    Acknowledge,
    AddTimelineEvent,
    AssignRole,
    Cancel,
    SetSeverity,
    Transition,
)
from domain.incident import IncidentState, Role, TimelineKind
from domain.severity import Severity
from tests.helpers import declare
from tests.policies import slow_policy
from workflows.incident import IncidentWorkflow


async def test_full_lifecycle_keeps_clock_roles_and_timeline(
    client: Client, worker: Worker, task_queue: str
) -> None:
    started = datetime.now(UTC) - timedelta(minutes=20)
    detected = datetime.now(UTC) - timedelta(minutes=5)
    handle = await declare(
        client, task_queue, slow_policy(), started_at=started, detected_at=detected
    )

    status = await handle.execute_update(IncidentWorkflow.acknowledge, Acknowledge(commander="bob"))
    assert status.state is IncidentState.MITIGATING
    assert status.roles.commander == "bob"
    await handle.execute_update(
        IncidentWorkflow.assign_role, AssignRole(role=Role.SCRIBE, person="carol")
    )
    await handle.execute_update(
        IncidentWorkflow.assign_role, AssignRole(role=Role.SUBJECT_MATTER_EXPERT, person="dan")
    )
    await handle.execute_update(
        IncidentWorkflow.add_timeline_event,
        AddTimelineEvent(text="rolled back deploy 42", by="bob"),
    )
    await handle.execute_update(
        IncidentWorkflow.set_severity, SetSeverity(severity=Severity.SEV1, reason="all regions")
    )
    status = await handle.execute_update(
        IncidentWorkflow.mitigate, Transition(note="traffic drained")
    )
    assert status.state is IncidentState.MITIGATED
    status = await handle.execute_update(IncidentWorkflow.resolve, Transition())
    assert status.state is IncidentState.RESOLVED

    incident = await handle.query(IncidentWorkflow.state)
    clock = incident.clock
    assert clock.started_at == started
    assert clock.detected_at == detected
    assert clock.declared_at >= detected
    assert clock.acknowledged_at and clock.mitigated_at and clock.resolved_at
    assert clock.declared_at <= clock.acknowledged_at <= clock.mitigated_at <= clock.resolved_at
    assert incident.severity is Severity.SEV1
    assert incident.roles.scribe == "carol"
    assert incident.roles.subject_matter_experts == ["dan"]
    assert [event.kind for event in incident.timeline] == [
        TimelineKind.DECLARED,
        TimelineKind.ACKNOWLEDGED,
        TimelineKind.ROLE_ASSIGNED,
        TimelineKind.ROLE_ASSIGNED,
        TimelineKind.NOTE,
        TimelineKind.SEVERITY_CHANGED,
        TimelineKind.MITIGATED,
        TimelineKind.RESOLVED,
    ]
    assert incident.escalations == []


async def test_cancel_ends_the_workflow_with_the_reason(
    client: Client, worker: Worker, task_queue: str
) -> None:
    handle = await declare(client, task_queue, slow_policy())
    await handle.execute_update(IncidentWorkflow.cancel, Cancel(reason="false alarm", by="alice"))
    result = await handle.result()
    assert result.state is IncidentState.CANCELLED
    assert result.cancel_reason == "false alarm"
    assert result.clock.cancelled_at is not None

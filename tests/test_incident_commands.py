"""Invalid commands are rejected by their validators: a message that says why and what is
allowed, no change to the state, and no trace in the workflow history."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from domain.commands import (
    Acknowledge,
    AddTimelineEvent,
    AssignRole,
    Cancel,
    SetSeverity,
    Transition,
)
from domain.incident import Incident, IncidentState, Role
from domain.severity import Severity
from tests.helpers import declare
from tests.policies import slow_policy
from workflows.incident import IncidentWorkflow

Handle = WorkflowHandle[IncidentWorkflow, Incident]
# A command as the test sends it: the update's name and its argument (built when the test runs,
# so times are relative to then): a command model, or raw JSON as a non-Python client sends it.
Command = tuple[str, Callable[[], BaseModel | dict[str, Any]]]


async def accepted_updates(handle: Handle) -> list[str]:
    """The names of the updates the workflow accepted, from its history, in order."""
    names = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            attributes = event.workflow_execution_update_accepted_event_attributes
            names.append(attributes.accepted_request.input.name)
    return names


async def send(handle: Handle, command: Command) -> Any:
    name, build = command
    return await handle.execute_update(name, build())


ACK_BOB: Command = ("acknowledge", lambda: Acknowledge(commander="bob"))
RESOLVE: Command = ("resolve", lambda: Transition(note="fixed"))
CANCEL: Command = ("cancel", lambda: Cancel(reason="false alarm"))
COMMANDER_BOB: Command = (
    "assign_role",
    lambda: AssignRole(role=Role.COMMANDER, person="bob"),
)
SME_DAN: Command = (
    "assign_role",
    lambda: AssignRole(role=Role.SUBJECT_MATTER_EXPERT, person="dan"),
)


@dataclass(frozen=True)
class Rejection:
    """Valid commands that lead to a state, then the invalid one and what its message says."""

    before: list[Command]
    invalid: Command
    says: list[str] = field(default_factory=list)


AFTER_RESOLVED_ALLOWED = (
    "allowed now: schedule_review, submit_review, assign_role, add_timeline_event, set_severity"
)

REJECTIONS: dict[str, Rejection] = {
    "acknowledge-twice": Rejection(
        before=[ACK_BOB],
        invalid=("acknowledge", lambda: Acknowledge(commander="carol")),
        says=[
            "cannot acknowledge an incident that is mitigating",
            "allowed now: cancel, mitigate, resolve, assign_role",
        ],
    ),
    "mitigate-after-resolved": Rejection(
        before=[ACK_BOB, RESOLVE],
        invalid=("mitigate", lambda: Transition()),
        says=["cannot mitigate an incident that is resolved", AFTER_RESOLVED_ALLOWED],
    ),
    "resolve-after-resolved": Rejection(
        before=[ACK_BOB, RESOLVE],
        invalid=("resolve", lambda: Transition()),
        says=["cannot resolve an incident that is resolved", AFTER_RESOLVED_ALLOWED],
    ),
    "cancel-after-resolved": Rejection(
        before=[ACK_BOB, RESOLVE],
        invalid=("cancel", lambda: Cancel(reason="was a false alarm after all")),
        says=["cannot cancel an incident that is resolved", AFTER_RESOLVED_ALLOWED],
    ),
    "cancel-with-blank-reason": Rejection(
        before=[],
        invalid=("cancel", lambda: Cancel(reason="   ")),
        says=["cancel needs a reason", "e.g. 'false alarm"],
    ),
    "set-severity-to-the-same": Rejection(
        before=[],
        invalid=("set_severity", lambda: SetSeverity(severity=Severity.SEV2)),
        says=["already SEV2", "choose another severity: SEV1, SEV3, SEV4"],
    ),
    "timeline-event-in-the-future": Rejection(
        before=[ACK_BOB],
        invalid=(
            "add_timeline_event",
            lambda: AddTimelineEvent(text="rollback", at=datetime.now(UTC) + timedelta(hours=1)),
        ),
        says=["is in the future", "give the time it happened"],
    ),
    "timeline-event-without-time-zone": Rejection(
        before=[],
        invalid=("add_timeline_event", lambda: {"text": "rollback", "at": "2026-01-05T14:03:00"}),
        says=["has no time zone", "e.g. 2026-11-27T14:03:00Z"],
    ),
    "same-commander-twice": Rejection(
        before=[COMMANDER_BOB],
        invalid=COMMANDER_BOB,
        says=["bob is already the commander", "name someone else"],
    ),
    "same-expert-twice": Rejection(
        before=[SME_DAN],
        invalid=SME_DAN,
        says=["dan is already a subject-matter expert", "add someone else"],
    ),
    "resolved-before-mitigated": Rejection(
        before=[ACK_BOB, ("mitigate", lambda: Transition())],
        invalid=(
            "resolve",
            lambda: Transition(at=datetime.now(UTC) - timedelta(hours=1)),
        ),
        says=["is before it was mitigated", "no earlier than that"],
    ),
    "mitigated-before-started": Rejection(
        before=[ACK_BOB],
        invalid=(
            "mitigate",
            lambda: Transition(at=datetime.now(UTC) - timedelta(days=1)),
        ),
        says=["is before the incident started", "no earlier than that"],
    ),
}


@pytest.mark.parametrize("case", REJECTIONS.values(), ids=list(REJECTIONS))
async def test_invalid_command_is_rejected_with_reason_and_leaves_no_trace(
    client: Client, worker: Worker, task_queue: str, case: Rejection
) -> None:
    handle = await declare(client, task_queue, slow_policy(), severity=Severity.SEV2)
    for command in case.before:
        await send(handle, command)
    before = await handle.query(IncidentWorkflow.state)

    with pytest.raises(WorkflowUpdateFailedError) as raised:
        await send(handle, case.invalid)

    cause = raised.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "CommandRejected"
    for phrase in case.says:
        assert phrase in cause.message
    assert await handle.query(IncidentWorkflow.state) == before
    assert await accepted_updates(handle) == [name for name, _ in case.before]
    # The workflow goes on: a valid command after the rejection is still accepted.
    await send(handle, ("add_timeline_event", lambda: AddTimelineEvent(text="still here")))
    assert await accepted_updates(handle) == [
        *(name for name, _ in case.before),
        "add_timeline_event",
    ]
    await handle.terminate("test done")


async def test_resolve_after_cancel_is_refused_by_the_server_and_changes_nothing(
    client: Client, worker: Worker, task_queue: str
) -> None:
    """Cancel is final and ends the workflow, so no validator is left to answer: the server
    refuses the update itself (NOT_FOUND, "workflow execution already completed")."""
    handle = await declare(client, task_queue, slow_policy())
    await send(handle, CANCEL)
    cancelled = await handle.result()
    assert cancelled.state is IncidentState.CANCELLED

    with pytest.raises(RPCError) as raised:
        await send(handle, RESOLVE)

    assert raised.value.status is RPCStatusCode.NOT_FOUND
    assert "already completed" in raised.value.message
    after = await handle.query(IncidentWorkflow.state)
    assert after == cancelled
    assert after.clock.resolved_at is None
    assert await accepted_updates(handle) == ["cancel"]


async def test_every_command_after_cancel_is_refused(
    client: Client, worker: Worker, task_queue: str
) -> None:
    handle = await declare(client, task_queue, slow_policy())
    await send(handle, CANCEL)
    await handle.result()
    for command in (ACK_BOB, ("mitigate", lambda: Transition()), CANCEL, COMMANDER_BOB):
        with pytest.raises(RPCError, match="already completed"):
            await send(handle, command)
    assert await accepted_updates(handle) == ["cancel"]

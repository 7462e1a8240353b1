"""Durability: the worker goes away mid-incident and a new one picks the incident up.

The acknowledge deadline falls due while no worker is running; the server keeps the timer (its
TimerFired event is in the history with no worker to run it), and the first new worker replays
the history, fires the missed step and carries on with the state and the rest of the ladder.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from domain.commands import Acknowledge, AddTimelineEvent, AssignRole, Transition
from domain.escalation import DeadlineKind
from domain.incident import Incident, IncidentState, Role, TimelineKind
from domain.policy import Policy, Rung
from settings import Settings
from tests.helpers import declare, eventually
from tests.policies import fast_policy
from worker import build_worker
from workflows.incident import IncidentWorkflow


def ack_only_policy() -> Policy:
    """Acknowledge within 2s (ladder owner 0s, team lead 1s, manager 2s, leadership 4s); the
    review due 2s after the resolution; status and resolve an hour away."""
    ladder = {"owner": "0s", "team_lead": "1s", "manager": "2s", "leadership": "4s"}
    return fast_policy(
        status_update_every="1h",
        resolve_within="1h",
        review_within="2s",
        escalation={**ladder, "repeat_every": "2s"},
    )


async def timers_fired(handle: WorkflowHandle[IncidentWorkflow, Incident]) -> int:
    """How many of the workflow's timers the server has fired (worker or not)."""
    fired = 0
    async for event in handle.fetch_history_events():
        fired += event.event_type == EventType.EVENT_TYPE_TIMER_FIRED
    return fired


async def test_deadline_missed_while_no_worker_runs_fires_on_restart_with_state_intact(
    client: Client, task_queue: str, settings: Settings
) -> None:
    async with build_worker(client, settings, task_queue=task_queue):
        handle = await declare(client, task_queue, ack_only_policy(), declared_by="alice")
        await handle.execute_update(
            IncidentWorkflow.assign_role, AssignRole(role=Role.COMMANDER, person="carol")
        )
        await handle.execute_update(
            IncidentWorkflow.assign_role, AssignRole(role=Role.SCRIBE, person="dan")
        )
        before = await handle.query(IncidentWorkflow.state)
    assert before.escalations == []
    assert before.state is IncidentState.DECLARED

    # No worker: the server fires the acknowledge deadline's timer (+2s) all the same.
    await eventually(lambda: timers_fired(handle), lambda fired: fired == 1, timeout=15)
    restarted_at = datetime.now(UTC)

    async with build_worker(client, settings, task_queue=task_queue):
        incident = await eventually(
            lambda: handle.query(IncidentWorkflow.state),
            lambda incident: len(incident.escalations) >= 3,
            timeout=15,
        )
        due_at = before.clock.declared_at + timedelta(seconds=2)
        steps = incident.escalations[:3]
        assert [step.deadline for step in steps] == [DeadlineKind.ACKNOWLEDGE] * 3
        assert [step.rung for step in steps] == [Rung.OWNER, Rung.TEAM_LEAD, Rung.MANAGER]
        # The commander named before the outage is the owner the ladder starts with.
        assert steps[0].notified == ["carol"]
        assert all(step.due_at == due_at for step in steps)
        # Nothing could run during the outage: every step is stamped after the restart.
        assert all(step.at >= restarted_at - timedelta(milliseconds=500) for step in steps)

        # The state from before the outage is intact.
        assert incident.clock == before.clock
        assert incident.roles == before.roles
        assert incident.timeline[: len(before.timeline)] == before.timeline
        assert incident.roles.commander == "carol"
        assert incident.roles.scribe == "dan"

        # Commands keep working, and the acknowledgement ends the acknowledge ladder.
        status = await handle.execute_update(
            IncidentWorkflow.acknowledge, Acknowledge(commander="carol")
        )
        assert status.state is IncidentState.MITIGATING
        await handle.execute_update(
            IncidentWorkflow.add_timeline_event, AddTimelineEvent(text="back online")
        )
        status = await handle.execute_update(IncidentWorkflow.resolve, Transition())
        assert status.state is IncidentState.RESOLVED
        acknowledged_at = status.clock.acknowledged_at
        assert acknowledged_at is not None

        # The review deadline (resolved + 2s) falls no earlier than the leadership step (+4s)
        # would have: once it is told, the acknowledge ladder has shown all it ever will.
        final = await eventually(
            lambda: handle.query(IncidentWorkflow.state),
            lambda incident: any(e.deadline is DeadlineKind.REVIEW for e in incident.escalations),
            timeout=15,
        )
        acknowledge = [e for e in final.escalations if e.deadline is DeadlineKind.ACKNOWLEDGE]
        assert [step.rung for step in acknowledge] == [Rung.OWNER, Rung.TEAM_LEAD, Rung.MANAGER]
        assert all(step.at <= acknowledged_at for step in acknowledge)
        [review, *_] = [e for e in final.escalations if e.deadline is DeadlineKind.REVIEW]
        assert status.clock.resolved_at is not None
        assert review.due_at == status.clock.resolved_at + timedelta(seconds=2)
        assert review.due_at >= due_at + timedelta(seconds=4)  # the leadership step's time
        kinds = [e.kind for e in final.timeline if e.kind is not TimelineKind.ESCALATED]
        assert kinds[-3:] == [
            TimelineKind.ACKNOWLEDGED,
            TimelineKind.NOTE,
            TimelineKind.RESOLVED,
        ]
        await handle.terminate("test done")

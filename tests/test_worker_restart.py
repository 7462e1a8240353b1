"""Durability: the worker goes away mid-incident and a new one picks the incident up.

The acknowledge deadline falls due while no worker is running; the server keeps the timer, and
the first new worker replays the history, fires the missed steps and carries on with the state.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from temporalio.client import Client

from domain.commands import Acknowledge, AddTimelineEvent, AssignRole, Transition
from domain.escalation import DeadlineKind
from domain.incident import IncidentState, Role, TimelineKind
from domain.policy import Policy, Rung
from settings import Settings
from tests.helpers import declare, eventually
from tests.policies import fast_policy
from worker import build_worker
from workflows.incident import IncidentWorkflow


def ack_only_policy() -> Policy:
    """Acknowledge within 2s (ladder 0/1/2/3s); every other deadline an hour away."""
    return fast_policy(status_update_every="1h", resolve_within="1h", review_within="1h")


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

    # No worker: the acknowledge deadline (+2s), the team lead (+3s) and manager (+4s) pass.
    await asyncio.sleep(4.5)
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
        # Nothing could fire during the outage: every step is stamped after the restart.
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

        await asyncio.sleep(1.5)  # the leadership step (+3s) would have come by now
        final = await handle.query(IncidentWorkflow.state)
        assert all(step.at <= acknowledged_at for step in final.escalations)
        assert [event.kind for event in final.timeline][-3:] == [
            TimelineKind.ACKNOWLEDGED,
            TimelineKind.NOTE,
            TimelineKind.RESOLVED,
        ]
        await handle.terminate("test done")

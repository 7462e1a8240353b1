"""What reaches an incident at the same time, on the dev server: item reports that arrive out
of order, and review commands that overlap.

The items are stand-ins that start and say nothing, so every report the incident sees is one
this test sends; the facilitator activity is a stand-in under the real name, held until the
test lets it answer (or failing every attempt)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateHandle,
    WorkflowUpdateStage,
)
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from domain.action_item import ActionItemState, ActionItemSummary, StartActionItem
from domain.commands import Acknowledge, Transition
from domain.incident import Incident, IncidentState, IncidentStatus
from domain.policy import ActionKind
from domain.review import ScheduleReview, SubmitReview
from tests.helpers import declare, eventually
from tests.policies import slow_policy
from tests.reviews import full_review, item_spec, local_route
from workflows.incident import IncidentWorkflow

Handle = WorkflowHandle[IncidentWorkflow, Incident]
State = ActionItemState
POOL = ["fran", "gus"]
TEAMS = ("payments", "platform", "mobile")


@workflow.defn(name="ActionItemWorkflow", sandboxed=False)
class SilentActionItem:
    """Starts and ends without reporting: the test speaks for the items."""

    @workflow.run
    async def run(self, start: StartActionItem) -> None:
        return None


class HeldFacilitator:
    """propose_facilitator that answers only once the test releases it."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()
        self.release = asyncio.Event()

    @activity.defn(name="propose_facilitator")
    async def propose_facilitator(self, pool: list[str]) -> str:
        self.asked.set()
        await self.release.wait()
        return pool[-1]


@activity.defn(name="propose_facilitator")
async def unavailable_facilitator(pool: list[str]) -> str:
    raise RuntimeError("visibility is unavailable")


def worker_with(client: Client, task_queue: str, *activities: Callable[..., Any]) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[IncidentWorkflow, SilentActionItem],
        activities=list(activities),
    )


async def resolved(client: Client, task_queue: str) -> Handle:
    policy = slow_policy().model_copy(update={"facilitators": POOL})
    # The stand-in workers register no read model: the incident writes no facts.
    handle = await declare(client, task_queue, policy, record_facts=False)
    await handle.execute_update(IncidentWorkflow.acknowledge, Acknowledge(commander="bob"))
    await handle.execute_update(IncidentWorkflow.resolve, Transition())
    return handle


def review(teams: Sequence[str] = TEAMS) -> SubmitReview:
    return SubmitReview(
        review=full_review(*(item_spec(team, f"Fix it for {team}") for team in teams)),
        routes={team: local_route(team) for team in teams},
        by="fran",
    )


def report(held: ActionItemSummary, state: ActionItemState, sequence: int) -> ActionItemSummary:
    return held.model_copy(update={"state": state, "sequence": sequence})


def states(incident: Incident) -> list[ActionItemState]:
    return [item.state for item in incident.action_items]


# ---- reports out of order ----------------------------------------------------------------


def test_a_report_supersedes_only_an_older_one_and_never_leaves_done_or_accepted() -> None:
    held = ActionItemSummary(
        number=1,
        id="INC-1-1",
        title="Cap the pool size",
        owning_team="payments",
        kind=ActionKind.SHORT_TERM,
        state=State.VERIFYING,
        due_at=datetime(2026, 12, 1, tzinfo=UTC),
        sequence=2,
    )
    assert report(held, State.DONE, 3).supersedes(held)
    assert not report(held, State.OPEN, 1).supersedes(held)
    assert not report(held, State.OPEN, 2).supersedes(held)
    done = report(held, State.DONE, 3)
    assert not report(held, State.VERIFYING, 2).supersedes(done)
    assert not report(held, State.VERIFYING, 4).supersedes(done)
    assert not report(held, State.OPEN, 9).supersedes(report(held, State.ACCEPTED, 3))
    # Unnumbered reports come from item runs older than numbering: later than nothing numbered.
    unnumbered = report(held, State.OPEN, 0)
    assert unnumbered.supersedes(report(held, State.CREATING, 0))
    assert not unnumbered.supersedes(held)
    assert report(held, State.OPEN, 1).supersedes(report(held, State.CREATING, 0))


async def test_late_reports_do_not_overwrite_newer_or_final_ones_and_the_incident_closes(
    client: Client, task_queue: str
) -> None:
    async with worker_with(client, task_queue):
        handle = await resolved(client, task_queue)
        status = await handle.execute_update(IncidentWorkflow.submit_review, review())
        assert status.state is IncidentState.TRACKING
        first, second, third = (await handle.query(IncidentWorkflow.state)).action_items
        assert states(await handle.query(IncidentWorkflow.state)) == [State.CREATING] * 3

        async def send(*reports: ActionItemSummary) -> None:
            for one in reports:
                await handle.signal(IncidentWorkflow.action_item_changed, one)

        await send(
            report(first, State.VERIFYING, 2),
            report(first, State.OPEN, 1),  # older: dropped
            report(first, State.DONE, 3),
            report(first, State.VERIFYING, 2),  # the late "verifying" after "done": dropped
            report(second, State.ACCEPTED, 2),
            report(second, State.OPEN, 3),  # out of a final state: dropped, whatever its number
            report(third, State.OPEN, 1),
        )
        # Signals are applied in the order they were sent: once the last one shows, all have.
        incident = await eventually(
            lambda: handle.query(IncidentWorkflow.state),
            lambda incident: incident.action_items[2].state is State.OPEN,
        )
        assert states(incident) == [State.DONE, State.ACCEPTED, State.OPEN]
        assert [item.sequence for item in incident.action_items] == [3, 2, 1]
        assert incident.state is IncidentState.TRACKING

        await send(report(third, State.DONE, 2))
        closed = await handle.result()
        assert closed.state is IncidentState.CLOSED
        assert states(closed) == [State.DONE, State.ACCEPTED, State.DONE]


# ---- review commands that overlap ----------------------------------------------------------

Update = WorkflowUpdateHandle[IncidentStatus]


async def schedule_waiting_for(facilitator: HeldFacilitator, handle: Handle) -> Update:
    """schedule_review, accepted and waiting for its facilitator to be proposed."""
    scheduling = await handle.start_update(
        IncidentWorkflow.schedule_review,
        ScheduleReview(at=datetime.now(UTC) + timedelta(days=1)),
        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
    )
    await asyncio.wait_for(facilitator.asked.wait(), timeout=20)
    return scheduling


async def submit_accepted(handle: Handle, teams: Sequence[str]) -> Update:
    return await handle.start_update(
        IncidentWorkflow.submit_review, review(teams), wait_for_stage=WorkflowUpdateStage.ACCEPTED
    )


def refused_as_tracking(error: WorkflowUpdateFailedError) -> bool:
    cause = error.cause
    return isinstance(cause, ApplicationError) and (
        "cannot submit_review an incident that is tracking" in cause.message
    )


async def test_a_review_submitted_while_the_facilitator_is_proposed_stays_submitted(
    client: Client, task_queue: str
) -> None:
    facilitator = HeldFacilitator()
    async with worker_with(client, task_queue, facilitator.propose_facilitator):
        handle = await resolved(client, task_queue)
        scheduling = await schedule_waiting_for(facilitator, handle)
        # Accepted meanwhile: its validator sees the incident still resolved.
        submitting = await submit_accepted(handle, TEAMS[:1])
        facilitator.release.set()

        assert (await scheduling.result()).state is IncidentState.IN_REVIEW
        assert (await submitting.result()).state is IncidentState.TRACKING
        incident = await handle.query(IncidentWorkflow.state)
        assert incident.state is IncidentState.TRACKING
        assert incident.review is not None and incident.review.submitted_by == "fran"
        assert incident.review_schedule is not None
        assert incident.review_schedule.facilitator == POOL[-1]
        assert len(incident.action_items) == 1

        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(IncidentWorkflow.submit_review, review(TEAMS[1:]))
        assert refused_as_tracking(refused.value)
        assert len((await handle.query(IncidentWorkflow.state)).action_items) == 1


async def test_two_reviews_submitted_while_the_facilitator_is_proposed_record_only_the_first(
    client: Client, task_queue: str
) -> None:
    facilitator = HeldFacilitator()
    async with worker_with(client, task_queue, facilitator.propose_facilitator):
        handle = await resolved(client, task_queue)
        scheduling = await schedule_waiting_for(facilitator, handle)
        first = await submit_accepted(handle, TEAMS[:1])
        second = await submit_accepted(handle, TEAMS[1:])
        facilitator.release.set()

        await scheduling.result()
        assert (await first.result()).state is IncidentState.TRACKING
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await second.result()
        assert refused_as_tracking(refused.value)
        incident = await handle.query(IncidentWorkflow.state)
        assert [item.owning_team for item in incident.action_items] == [TEAMS[0]]


async def test_schedule_review_gives_up_on_an_unavailable_facilitator_pool_and_changes_nothing(
    client: Client, task_queue: str
) -> None:
    async with worker_with(client, task_queue, unavailable_facilitator):
        handle = await resolved(client, task_queue)
        at = datetime.now(UTC) + timedelta(days=1)
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            # Three tries a second or two apart; retrying forever would hit the timeout.
            await asyncio.wait_for(
                handle.execute_update(IncidentWorkflow.schedule_review, ScheduleReview(at=at)),
                timeout=30,
            )
        assert isinstance(failed.value.cause, ApplicationError)
        assert "name the facilitator" in failed.value.cause.message
        assert "visibility is unavailable" in failed.value.cause.message
        incident = await handle.query(IncidentWorkflow.state)
        assert incident.state is IncidentState.RESOLVED and incident.review_schedule is None

        status = await handle.execute_update(
            IncidentWorkflow.schedule_review, ScheduleReview(at=at, facilitator="fran")
        )
        assert status.state is IncidentState.IN_REVIEW

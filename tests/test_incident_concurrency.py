"""What reaches an incident at the same time, on the dev server: item reports that arrive out
of order.

The items are stand-ins that start and say nothing, so every report the incident sees is one
this test sends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from domain.action_item import ActionItemState, ActionItemSummary, StartActionItem
from domain.commands import Acknowledge, Transition
from domain.incident import Incident, IncidentState
from domain.policy import ActionKind
from domain.review import SubmitReview
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


def worker_with(client: Client, task_queue: str, *activities: Callable[..., Any]) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[IncidentWorkflow, SilentActionItem],
        activities=list(activities),
    )


async def resolved(client: Client, task_queue: str) -> Handle:
    policy = slow_policy().model_copy(update={"facilitators": POOL})
    handle = await declare(client, task_queue, policy)
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

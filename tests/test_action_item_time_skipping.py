"""Action items over weeks under the DEFAULT policy, on Temporal's time-skipping test server.

The worker is the product's own (worker.build_worker) with the local tracker in a temp folder;
only the clock is virtual. Time moves only when a test calls env.sleep, so each check runs at
an exact point of the item's life. SEV2 items (default policy): short-term due 14 days after
the review, reminders 3 days and 1 day before, a stall after 14 days without tracker activity,
and the ladder owner (at once), team lead (+2d), manager (+7d), leadership (+14d), then
leadership again every 7 days.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from domain.action_item import (
    ActionItem,
    ActionItemState,
    ActionItemSummary,
    ExtendDeadline,
    TeamRoute,
    TicketChanged,
    TicketStatus,
    action_workflow_id,
)
from domain.commands import Acknowledge, Transition
from domain.escalation import DeadlineKind, EscalationRecord
from domain.incident import Incident, IncidentState
from domain.policy import ActionKind, Rung, default_policy
from domain.review import SubmitReview
from domain.severity import Severity
from domain.tickets import TicketComment as Comment
from integrations.local import LocalTracker
from settings import Settings
from tests.helpers import declare, eventually
from tests.reviews import full_review, item_spec
from worker import build_worker
from workflows.incident import IncidentWorkflow

# The virtual clock stamps a timer's workflow task a few milliseconds after it is due.
TOLERANCE = timedelta(seconds=5)
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
DUE = DeadlineKind.ACTION_DUE
STALLED = DeadlineKind.ACTION_STALLED
ROUTE = TeamRoute(
    team="payments",
    target="local",
    assignee="payments-oncall",
    contacts={
        Rung.TEAM_LEAD: ["payments-lead"],
        Rung.MANAGER: ["payments-manager"],
        Rung.LEADERSHIP: ["vp-eng"],
    },
)
# (delay after the due date, rung, who is mentioned): the default action-item ladder.
LADDER = [
    (timedelta(0), Rung.OWNER, "payments-oncall"),
    (2 * DAY, Rung.TEAM_LEAD, "payments-lead"),
    (7 * DAY, Rung.MANAGER, "payments-manager"),
    (14 * DAY, Rung.LEADERSHIP, "vp-eng"),
    (21 * DAY, Rung.LEADERSHIP, "vp-eng"),
    (28 * DAY, Rung.LEADERSHIP, "vp-eng"),
]


@dataclass
class Items:
    """Incidents reviewed on the time-skipping server, their items, and the local tracker."""

    env: WorkflowEnvironment
    client: Client
    task_queue: str
    tracker: LocalTracker
    started: list[str] = field(default_factory=list)

    async def review(
        self, *kinds: ActionKind, severity: Severity = Severity.SEV2
    ) -> tuple[WorkflowHandle[IncidentWorkflow, Incident], list[ActionItem]]:
        handle = await declare(self.client, self.task_queue, default_policy(), severity=severity)
        await handle.execute_update(IncidentWorkflow.acknowledge, Acknowledge(commander="bob"))
        await handle.execute_update(IncidentWorkflow.resolve, Transition())
        specs = [item_spec("payments", f"Item {n}", kind=kind) for n, kind in enumerate(kinds)]
        await handle.execute_update(
            IncidentWorkflow.submit_review,
            SubmitReview(review=full_review(*specs), routes={"payments": ROUTE}),
        )
        key = (await handle.query(IncidentWorkflow.state)).key
        self.started.append(handle.id)
        items = []
        for number in range(1, len(kinds) + 1):
            workflow_id = action_workflow_id(key, number)
            self.started.append(workflow_id)
            items.append(
                await eventually(
                    lambda workflow_id=workflow_id: self.state(workflow_id),  # type: ignore[misc]
                    lambda item: item.state is ActionItemState.OPEN,
                    timeout=10,
                )
            )
        return handle, items

    async def state(self, workflow_id: str) -> ActionItem:
        item: ActionItem = await self.client.get_workflow_handle(workflow_id).query(
            "state", result_type=ActionItem
        )
        return item

    async def sleep_until(self, moment: datetime) -> None:
        now = await self.env.get_current_time()
        assert moment > now, f"{moment} is already past ({now})"
        await self.env.sleep(moment - now)

    async def escalations_at(
        self, item: ActionItem, moment: datetime, *, expect: int
    ) -> list[EscalationRecord]:
        """Skip to `moment`, then the item's escalations: polled (in real time) until `expect`
        are there, in case the last workflow task is still running; the caller asserts."""
        await self.sleep_until(moment)
        try:
            found = await eventually(
                lambda: self.state(workflow_id(item)),
                lambda state: len(state.escalations) >= expect,
                timeout=5,
            )
        except AssertionError:
            found = await self.state(workflow_id(item))
        return found.escalations

    async def ticket_activity(self, item: ActionItem, event: str = "commented") -> None:
        """The team touches the ticket (a comment, say): what keeps an item from stalling."""
        assert item.ticket is not None
        await self.client.get_workflow_handle(workflow_id(item)).signal(
            "ticket_changed",
            TicketChanged(
                ticket_key=item.ticket.key,
                event=event,
                status=TicketStatus.CLOSED if event == "closed" else TicketStatus.OPEN,
                at=await self.env.get_current_time(),
                source="local",
                delivery_id=str(uuid.uuid4()),
            ),
        )

    async def comments(self, item: ActionItem, count: int) -> list[str]:
        """The texts of the item's ticket comments once there are `count` (activities write
        them beside the workflow, in real time)."""
        assert item.ticket is not None
        key = item.ticket.key

        async def texts() -> list[Comment]:
            return await asyncio.to_thread(self.tracker.comments, key)

        try:
            found = await eventually(texts, lambda found: len(found) >= count, timeout=5)
        except AssertionError:
            found = await texts()
        return [comment.text for comment in found]

    async def labels(self, item: ActionItem, label: str) -> list[str]:
        assert item.ticket is not None
        key = item.ticket.key

        async def labels() -> list[str]:
            return (await asyncio.to_thread(self.tracker.get, "local", key)).labels

        return await eventually(labels, lambda found: label in found, timeout=5)


def workflow_id(item: ActionItem) -> str:
    return action_workflow_id(item.incident_key, item.number)


def of_kind(records: list[EscalationRecord], kind: DeadlineKind) -> list[EscalationRecord]:
    return [record for record in records if record.deadline is kind]


@pytest.fixture
async def items(ts_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Items]:
    task_queue = f"ts-{uuid.uuid4()}"
    async with build_worker(ts_env.client, Settings(home=tmp_path), task_queue=task_queue):
        started = Items(
            ts_env, ts_env.client, task_queue, LocalTracker.configured(Settings(home=tmp_path))
        )
        yield started
        # Items outlive their incident (parent close policy ABANDON). One left running with no
        # worker would hold the test server's clock (a pending task locks time skipping).
        for workflow_id in started.started:
            with contextlib.suppress(RPCError):
                await ts_env.client.get_workflow_handle(workflow_id).terminate("test done")


async def test_sev2_item_is_reminded_3d_and_1d_before_due_then_walks_the_overdue_ladder(
    items: Items,
) -> None:
    handle, [item] = await items.review(ActionKind.SHORT_TERM)
    due = item.due_at
    assert abs(due - item.created_at - 14 * DAY) < TOLERANCE
    assert item.ticket is not None
    ticket = items.tracker.get("local", item.ticket.key)
    assert ticket.due_at == due

    # Reminders on the ticket, 3 days and 1 day before; none before their time.
    for count, before in enumerate((3 * DAY, DAY)):
        await items.ticket_activity(item)  # keeps the stall away; see the stall test
        await items.sleep_until(due - before - MINUTE)
        state = await items.state(workflow_id(item))
        assert len(state.reminders_sent) == count
        await items.sleep_until(due - before + MINUTE)
        state = await eventually(
            lambda: items.state(workflow_id(item)),
            lambda state, count=count: len(state.reminders_sent) == count + 1,  # type: ignore[misc]
            timeout=5,
        )
        assert state.reminders_sent[-1] == due - before
        assert state.escalations == []
    texts = await items.comments(item, 2)
    assert texts[0].startswith(f"@payments-oncall reminder: {item.id} is due ")
    assert "(in 3d)" in texts[0]
    assert "Success criteria: error rate < 0.1% for 7 days" in texts[0]
    assert texts[1].startswith("@payments-oncall reminder:") and "(in 1d)" in texts[1]

    # Overdue: one rung per step, a minute either side of each; the ticket keeps getting
    # comments from the team, which stops a stall but not the overdue ladder.
    for count, (delay, rung, person) in enumerate(LADDER):
        await items.ticket_activity(item)
        early = await items.escalations_at(item, due + delay - MINUTE, expect=count)
        assert len(early) == count, f"step {count} ({rung}) came early: {early}"
        late = await items.escalations_at(item, due + delay + MINUTE, expect=count + 1)
        assert len(late) == count + 1, f"step {count} ({rung}) did not come: {late}"
        step = late[-1]
        assert (step.deadline, step.rung, step.notified) == (DUE, rung, [person])
        assert step.due_at == due
        assert delay <= step.at - due <= delay + TOLERANCE
        assert f"{item.id} is overdue" in step.reason

        texts = await items.comments(item, 2 + count + 1)
        assert len(texts) == 2 + count + 1
        rung_name = rung.value.replace("_", " ")
        assert texts[-1].startswith(f"@{person} escalated to {rung_name}: {item.id} is overdue")
        assert f"escalated:{rung.value}" in await items.labels(item, f"escalated:{rung.value}")

    final = await items.state(workflow_id(item))
    assert of_kind(final.escalations, STALLED) == []
    assert final.state is ActionItemState.OPEN
    incident = await handle.query(IncidentWorkflow.state)
    assert incident.state is IncidentState.TRACKING


async def test_stalled_item_walks_its_own_ladder_until_tracker_activity_resets_it(
    items: Items,
) -> None:
    # Long-term (due in 45 days), so only the stall can fire in the first weeks.
    _, [item] = await items.review(ActionKind.LONG_TERM)
    stall = item.last_activity_at + 14 * DAY
    assert item.due_at > stall + 14 * DAY
    assert await items.escalations_at(item, stall - MINUTE, expect=0) == []
    [owner] = await items.escalations_at(item, stall + MINUTE, expect=1)
    assert (owner.deadline, owner.rung, owner.notified) == (
        STALLED,
        Rung.OWNER,
        ["payments-oncall"],
    )
    assert owner.due_at == stall
    assert timedelta(0) <= owner.at - stall <= TOLERANCE
    assert "has had no tracker activity for 14d" in owner.reason
    steps = await items.escalations_at(item, stall + 2 * DAY + MINUTE, expect=2)
    assert [(s.deadline, s.rung) for s in steps] == [
        (STALLED, Rung.OWNER),
        (STALLED, Rung.TEAM_LEAD),
    ]
    texts = await items.comments(item, 2)
    assert texts[-1].startswith(
        f"@payments-lead escalated to team lead: {item.id} has had no tracker activity"
    )

    # Someone comments on the ticket: the stall ladder stops (no manager at +7d) and the
    # next stall is 14 days after that activity, starting again from the owner.
    active_at = await items.env.get_current_time()
    await items.ticket_activity(item)
    steps = await items.escalations_at(item, stall + 7 * DAY + MINUTE, expect=2)
    assert len(steps) == 2, steps
    restarted = await items.escalations_at(item, active_at + 14 * DAY + MINUTE, expect=3)
    assert len(restarted) == 3
    assert (restarted[-1].deadline, restarted[-1].rung) == (STALLED, Rung.OWNER)
    assert abs(restarted[-1].due_at - (active_at + 14 * DAY)) < TOLERANCE


async def test_item_overdue_and_stalled_at_once_walks_only_the_overdue_ladder(
    items: Items,
) -> None:
    """A SEV2 short-term item nobody touched is due and stalled at the same moment (both 14
    days after the review): the overdue ladder speaks for it, so no rung hears twice."""
    _, [item] = await items.review(ActionKind.SHORT_TERM)
    due = item.due_at
    assert abs(item.last_activity_at + 14 * DAY - due) < TOLERANCE
    first = await items.escalations_at(item, due + MINUTE, expect=1)
    assert [(r.deadline, r.rung) for r in first] == [(DUE, Rung.OWNER)]
    texts = await items.comments(item, 3)  # two reminders, then the overdue owner
    assert len(texts) == 3
    assert "is overdue" in texts[2]

    steps = await items.escalations_at(item, due + 2 * DAY + MINUTE, expect=2)
    assert [(s.deadline, s.rung) for s in steps] == [(DUE, Rung.OWNER), (DUE, Rung.TEAM_LEAD)]
    assert of_kind(steps, STALLED) == []


async def test_extension_moves_the_due_date_and_stops_the_ladder_until_the_new_date(
    items: Items,
) -> None:
    _, [item] = await items.review(ActionKind.SHORT_TERM)
    due = item.due_at
    await items.sleep_until(due - 4 * DAY)
    await items.ticket_activity(item)
    steps = await items.escalations_at(item, due + 2 * DAY + MINUTE, expect=2)
    assert [(s.deadline, s.rung) for s in steps] == [(DUE, Rung.OWNER), (DUE, Rung.TEAM_LEAD)]

    # Two days more: less than the 3-day reminder, so only the 1-day one is still to come.
    new_due = (await items.env.get_current_time()) + 2 * DAY
    extended = await items.client.get_workflow_handle(workflow_id(item)).execute_update(
        "extend_deadline",
        ExtendDeadline(due_at=new_due, reason="waiting on the vendor", by="bob"),
        result_type=ActionItemSummary,
    )
    assert extended.due_at == new_due
    assert item.ticket is not None
    key = item.ticket.key
    await eventually(
        lambda: asyncio.to_thread(items.tracker.get, "local", key),
        lambda ticket: ticket.due_at == new_due,
        timeout=5,
    )
    texts = await items.comments(item, 5)
    assert any("due date extended to" in t and "waiting on the vendor" in t for t in texts)

    # Until the new date: no reminder for a moment already past, no further rung.
    assert len(await items.escalations_at(item, new_due - DAY - MINUTE, expect=2)) == 2
    state = await items.state(workflow_id(item))
    assert state.reminders_sent == []
    await items.sleep_until(new_due - DAY + MINUTE)
    state = await eventually(
        lambda: items.state(workflow_id(item)),
        lambda state: len(state.reminders_sent) == 1,
        timeout=5,
    )
    assert state.reminders_sent == [new_due - DAY]
    assert len(state.escalations) == 2
    assert [e.due_at for e in state.extensions] == [new_due]
    assert [e.previous_due_at for e in state.extensions] == [due]

    # The new date missed in turn: the ladder starts again from the owner.
    await items.ticket_activity(item)
    steps = await items.escalations_at(item, new_due + MINUTE, expect=3)
    assert len(steps) == 3
    assert (steps[-1].rung, steps[-1].due_at) == (Rung.OWNER, new_due)
    texts = await items.comments(item, 7)
    reminders = [t for t in texts if " reminder: " in t]
    assert len(reminders) == 3, reminders  # 3d and 1d before the first date, 1d before this
    assert "(in 1d)" in reminders[-1]


async def test_reopened_overdue_item_goes_on_up_the_ladder_and_never_tells_a_rung_twice(
    items: Items,
) -> None:
    """Overdue, its ticket closed, then reopened a day later: the same due date is still
    missed, so the ladder goes on from where it stood (the team lead at +2d), and the owner,
    who heard at the due date, is not told again."""
    _, [item] = await items.review(ActionKind.SHORT_TERM)
    due = item.due_at
    await items.sleep_until(due - 4 * DAY)
    await items.ticket_activity(item)  # keeps the stall away
    steps = await items.escalations_at(item, due + MINUTE, expect=1)
    assert [(s.deadline, s.rung) for s in steps] == [(DUE, Rung.OWNER)]

    await items.ticket_activity(item, "closed")
    await eventually(
        lambda: items.state(workflow_id(item)),
        lambda state: state.state is ActionItemState.VERIFYING,
        timeout=5,
    )
    await items.sleep_until(due + DAY)
    await items.ticket_activity(item, "reopened")
    reopened = await eventually(
        lambda: items.state(workflow_id(item)),
        lambda state: state.state is ActionItemState.OPEN,
        timeout=5,
    )
    # The reopen and the run loop's pass over the deadlines are one workflow task.
    assert [(s.deadline, s.rung) for s in reopened.escalations] == [(DUE, Rung.OWNER)]

    steps = await items.escalations_at(item, due + 2 * DAY + MINUTE, expect=2)
    assert [(s.deadline, s.rung) for s in steps] == [(DUE, Rung.OWNER), (DUE, Rung.TEAM_LEAD)]
    assert all(step.due_at == due for step in steps)
    texts = await items.comments(item, 4)  # the 3d and 1d reminders, then one per rung
    assert [text.split(":")[0] for text in texts if " escalated to " in text] == [
        "@payments-oncall escalated to owner",
        "@payments-lead escalated to team lead",
    ]


async def test_item_without_verification_is_done_when_its_ticket_closes(items: Items) -> None:
    # The default SEV4 policy does not ask anyone to confirm the success criteria.
    assert not default_policy().for_severity(Severity.SEV4).action_items.verification_required
    handle, [item] = await items.review(ActionKind.SHORT_TERM, severity=Severity.SEV4)
    await items.env.sleep(3 * DAY)
    assert item.ticket is not None
    items.tracker.close("local", item.ticket.key)
    await items.ticket_activity(item, "closed")

    done = await client_result(items, workflow_id(item))
    assert done.state is ActionItemState.DONE
    assert done.verification is None
    assert done.closed_at is not None
    assert done.closed_at - done.created_at >= 3 * DAY
    incident = await handle.result()
    assert incident.state is IncidentState.CLOSED
    assert [summary.state for summary in incident.action_items] == [ActionItemState.DONE]


async def client_result(items: Items, workflow_id: str) -> ActionItem:
    handle = items.client.get_workflow_handle(workflow_id, result_type=ActionItem)
    return await handle.result()

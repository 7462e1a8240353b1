"""Repeat incidents: a new incident of the same service (at declaration) or the same failure
mode (at review) within the policy's window shows the earlier incidents and their open fixes,
and each open fix escalates one rung at once, with a comment on its ticket naming the new
incident. The real worker on the dev server, the local tracker, the facts read model."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from activities.facts import FactsRecorder
from domain.action_item import (
    ActionItem,
    ActionItemSpec,
    ActionItemState,
    TeamRoute,
    action_workflow_id,
)
from domain.commands import Transition
from domain.escalation import DeadlineKind, EscalationRecord
from domain.incident import Incident, IncidentState, TimelineKind
from domain.policy import ActionKind, Policy, Rung
from domain.recurrence import (
    DESCRIPTION_CHARS,
    EARLIER_INCIDENTS,
    EarlierIncident,
    EarlierItem,
    Recurrence,
    RecurrenceStage,
    RepeatQuery,
    describe,
    next_rung,
    shared,
)
from domain.review import SubmitReview
from domain.severity import Severity
from integrations.local import LocalTracker
from settings import Settings
from store import configured_store
from store.facts import FactsRepository
from tests.helpers import declare, eventually
from tests.reviews import full_review, item_spec, item_state, local_route, quick_items_policy
from tests.test_metrics_interfaces import incident as facts_of
from tests.test_metrics_interfaces import item as item_of
from workflows.incident import IncidentWorkflow

MODE = "connection-pool-exhaustion"
ROUTES = {"payments": local_route("payments")}


def repeat_policy() -> Policy:
    """Short-term items due 3 s after the review, reaching the manager 2 s later; leadership
    only after an hour, so an item waits at the manager rung."""
    policy = quick_items_policy()
    severities = {}
    for severity, rules in policy.severities.items():
        ladder = rules.action_items.escalation.model_copy(update={"leadership": timedelta(hours=1)})
        items = rules.action_items.model_copy(update={"escalation": ladder})
        severities[severity] = rules.model_copy(update={"action_items": items})
    return policy.model_copy(update={"severities": severities})


async def state(handle: WorkflowHandle[IncidentWorkflow, Incident]) -> Incident:
    return await handle.query(IncidentWorkflow.state)


async def reviewed(
    handle: WorkflowHandle[IncidentWorkflow, Incident], *items: ActionItemSpec, **fields: Any
) -> str:
    await handle.execute_update(IncidentWorkflow.resolve, Transition())
    routes: dict[str, TeamRoute] = ROUTES
    await handle.execute_update(
        IncidentWorkflow.submit_review,
        SubmitReview(review=full_review(*items, **fields), routes=routes),
    )
    return (await state(handle)).key


async def first_incident(
    client: Client, task_queue: str, policy: Policy, *items: ActionItemSpec
) -> str:
    """The earlier incident: checkout's pool exhausted, reviewed with its items."""
    handle = await declare(client, task_queue, policy, title="Checkout pool exhausted")
    return await reviewed(handle, *items, failure_modes=[MODE])


def repeat_escalations(item: ActionItem) -> list[EscalationRecord]:
    return [e for e in item.escalations if e.deadline is DeadlineKind.REPEAT]


async def test_a_repeat_shows_the_earlier_open_fix_and_the_same_failure_escalates_it(
    client: Client, task_queue: str, settings: Settings, worker: object
) -> None:
    policy = repeat_policy()
    first_key = await first_incident(
        client,
        task_queue,
        policy,
        item_spec("payments", "Alert on pool saturation", kind=ActionKind.LONG_TERM),
        item_spec("payments", "Cap the pool size"),
    )
    alert, fix = (action_workflow_id(first_key, n) for n in (1, 2))
    await eventually(
        lambda: item_state(client, fix),
        lambda item: bool(item.escalations) and item.escalations[-1].rung is Rung.MANAGER,
    )
    facts = FactsRepository(configured_store(settings))
    # The read model has the fix at the manager rung before the next incident looks.
    await eventually(
        lambda: asyncio.to_thread(facts.action_items, [f"{first_key}-2"]),
        lambda rows: bool(rows) and rows[f"{first_key}-2"]["rung"] == "manager",
    )

    # The same service: shown at declaration, with the earlier fixes as they stand, but a
    # service fails in many ways, so nothing escalates yet.
    second = await declare(client, task_queue, policy, title="Checkout down again")
    incident = await eventually(lambda: state(second), lambda i: bool(i.recurrences))
    [recurrence] = incident.recurrences
    assert (recurrence.stage, recurrence.escalated) == (RecurrenceStage.DECLARATION, [])
    [earlier] = recurrence.earlier
    assert (earlier.key, earlier.matched_on, earlier.action_items) == (
        first_key,
        ["service checkout"],
        2,
    )
    by_id = {item.id: item for item in earlier.open_items}
    assert sorted(by_id) == [f"{first_key}-1", f"{first_key}-2"]
    cap = by_id[f"{first_key}-2"]
    assert (cap.state, cap.overdue, cap.rung) == (ActionItemState.OPEN, True, Rung.MANAGER)
    assert (by_id[f"{first_key}-1"].overdue, by_id[f"{first_key}-1"].rung) == (False, None)
    [said] = [event for event in incident.timeline if event.kind is TimelineKind.REPEAT]
    assert f"this failure happened on {first_key} (service checkout)" in said.text
    assert (
        f"its item {first_key}-2 (Cap the pool size) is still open, overdue at the manager rung"
        in said.text
    )
    assert "proves" not in said.text

    # Its review names the same failure mode: that proves the earlier fixes necessary, and
    # each goes one rung up at once (the overdue one from the manager to leadership, the one
    # not yet due from its owner to the team lead).
    second_key = await reviewed(
        second,
        item_spec("payments", "Pool per tenant", kind=ActionKind.LONG_TERM),
        failure_modes=[MODE],
    )
    incident = await eventually(lambda: state(second), lambda i: len(i.recurrences) == 2)
    at_review = incident.recurrences[1]
    assert at_review.stage is RecurrenceStage.REVIEW
    assert [(e.key, e.matched_on) for e in at_review.earlier] == [
        (first_key, [f"failure mode {MODE}"])
    ]
    assert at_review.escalated == [f"{first_key}-1", f"{first_key}-2"]
    climbed = await eventually(
        lambda: item_state(client, fix), lambda item: bool(repeat_escalations(item))
    )
    [step] = repeat_escalations(climbed)
    assert step.rung is Rung.LEADERSHIP
    assert (
        f'{second_key} "Checkout down again" repeats {first_key} (failure mode {MODE})'
        in step.reason
    )
    assert climbed.proven_by == [second_key]
    waiting = await eventually(
        lambda: item_state(client, alert), lambda item: bool(repeat_escalations(item))
    )
    assert [e.rung for e in repeat_escalations(waiting)] == [Rung.TEAM_LEAD]
    assert waiting.escalations[-1].notified == ["payments-lead"]

    # The fix's ticket hears of it, naming the new incident, and carries the rung's label.
    local = LocalTracker.configured(settings)
    assert climbed.ticket is not None
    ticket_key = climbed.ticket.key

    async def ticket_heard() -> tuple[list[str], list[str]]:
        detail = await asyncio.to_thread(local.detail, ticket_key)
        return [c.text for c in detail.comments], detail.labels

    comments, _ = await eventually(
        ticket_heard,
        lambda heard: (
            any(second_key in text for text in heard[0]) and "escalated:leadership" in heard[1]
        ),
    )
    [comment] = [text for text in comments if second_key in text]
    assert comment.startswith("@leadership escalated to leadership: ")

    # The read model counts the repeat once, and knows the failure mode its review named.
    rows = await eventually(
        lambda: asyncio.to_thread(facts.incidents, [second_key]),
        lambda rows: bool(rows) and rows[second_key]["failure_modes"] != "[]",
    )
    assert (rows[second_key]["repeat_of"], rows[second_key]["failure_modes"]) == (
        f'["{first_key}"]',
        f'["{MODE}"]',
    )

    # Another service, declared as the same failure mode: both earlier incidents, latest
    # first, and their open fixes escalate at once (leadership is the top: it stays there).
    third = await declare(
        client, task_queue, policy, services=["ledger"], failure_modes=[MODE], title="Ledger"
    )
    found = await eventually(lambda: state(third), lambda i: bool(i.recurrences))
    [at_declaration] = found.recurrences
    assert [e.key for e in at_declaration.earlier] == [second_key, first_key]
    assert {e.key: e.matched_on for e in at_declaration.earlier} == {
        second_key: [f"failure mode {MODE}"],
        first_key: [f"failure mode {MODE}"],
    }
    assert at_declaration.escalated == [f"{second_key}-1", f"{first_key}-1", f"{first_key}-2"]
    again = await eventually(
        lambda: item_state(client, fix), lambda item: len(repeat_escalations(item)) == 2
    )
    assert [e.rung for e in repeat_escalations(again)] == [Rung.LEADERSHIP, Rung.LEADERSHIP]
    assert again.proven_by == [second_key, found.key]
    newer_fix = await eventually(
        lambda: item_state(client, action_workflow_id(second_key, 1)),
        lambda item: bool(repeat_escalations(item)),
    )
    assert newer_fix.proven_by == [found.key]


async def scheduled_activities(
    handle: WorkflowHandle[IncidentWorkflow, Incident],
) -> list[str] | None:
    """The activities its history scheduled; None before it completed a workflow task."""
    names, completed = [], False
    async for event in handle.fetch_history_events():
        completed |= event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            names.append(event.activity_task_scheduled_event_attributes.activity_type.name)
    return names if completed else None


async def test_a_window_of_zero_looks_for_no_earlier_incident(
    client: Client, task_queue: str, settings: Settings, worker: object
) -> None:
    policy = repeat_policy()
    first_key = await first_incident(
        client,
        task_queue,
        policy,
        item_spec("payments", "Cap the pool size", kind=ActionKind.LONG_TERM),
    )
    fix = action_workflow_id(first_key, 1)
    await eventually(lambda: item_state(client, fix), lambda i: i.state is ActionItemState.OPEN)
    facts = FactsRepository(configured_store(settings))
    await eventually(lambda: asyncio.to_thread(facts.action_items, [f"{first_key}-1"]), bool)

    closed_window = policy.model_copy(update={"repeat_window": timedelta(0)})
    blind = await declare(client, task_queue, closed_window, failure_modes=[MODE])
    seeing = await declare(client, task_queue, policy, failure_modes=[MODE])
    await eventually(lambda: state(seeing), lambda i: bool(i.recurrences))
    # The look starts with the first workflow task: a completed one without it never looks.
    looked = await eventually(lambda: scheduled_activities(seeing), lambda names: bool(names))
    assert looked == ["find_earlier_incidents"]
    assert await eventually(lambda: scheduled_activities(blind), lambda n: n is not None) == []
    item = await eventually(lambda: item_state(client, fix), lambda i: bool(repeat_escalations(i)))
    assert item.proven_by == [seeing.id.removeprefix("incident/")]


def test_what_a_repeat_shares_and_how_far_it_climbs() -> None:
    query = RepeatQuery(
        key="INC-261202-AAAA",
        services=["checkout", "cart"],
        failure_modes=[MODE],
        since=datetime(2026, 9, 1, tzinfo=UTC),
        until=datetime(2026, 12, 1, tzinfo=UTC),
    )
    assert shared(["cart"], [MODE, "dns"], query) == (["cart"], [MODE])
    assert shared(["ledger"], ["dns"], query) == ([], [])
    many = [f"svc-{n}" for n in range(50)]
    wide = query.model_copy(update={"services": many})
    assert shared(many, [], wide) == (many[:EARLIER_INCIDENTS], [])
    assert [next_rung(r) for r in (None, *Rung)] == [
        Rung.TEAM_LEAD,
        Rung.TEAM_LEAD,
        Rung.MANAGER,
        Rung.LEADERSHIP,
        Rung.LEADERSHIP,
    ]


def test_the_timeline_sentence_is_bounded() -> None:
    item = EarlierItem(
        id="INC-261101-AAAA-1",
        number=1,
        title="x" * 200,
        owning_team="payments",
        state=ActionItemState.OPEN,
        due_at=datetime(2026, 11, 20, tzinfo=UTC),
        rung=Rung.MANAGER,
        overdue=True,
    )
    earlier = [
        EarlierIncident(
            key=f"INC-261101-AA{n:02d}",
            title="Checkout",
            severity=Severity.SEV2,
            declared_at=datetime(2026, 11, 1, tzinfo=UTC),
            same_services=["checkout"],
            action_items=20,
            open_items=[item] * 20,
        )
        for n in range(20)
    ]
    recurrence = Recurrence(
        stage=RecurrenceStage.DECLARATION,
        found_at=datetime(2026, 12, 1, tzinfo=UTC),
        earlier=earlier,
    )
    text = describe(recurrence)
    assert len(text) == DESCRIPTION_CHARS
    assert text.endswith("(more in `afteraction show`)")
    short = describe(recurrence.model_copy(update={"earlier": earlier[:1]}))
    assert short.startswith("repeat: this failure happened on INC-261101-AA00 (service checkout)")


def test_the_look_reads_the_window_leaves_out_cancelled_and_lists_open_items_latest_first(
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path)
    facts = FactsRepository(configured_store(settings))
    now = datetime.now(UTC).replace(microsecond=0)
    day = timedelta(days=1)
    rows = {
        "INC-OLD": facts_of("INC-OLD", declared=now - 100 * day),  # before the window
        "INC-A": facts_of("INC-A", declared=now - 30 * day, failure_modes=[MODE]),
        "INC-B": facts_of("INC-B", declared=now - 10 * day, services=["ledger"]),
        "INC-GONE": facts_of("INC-GONE", declared=now - 5 * day, state=IncidentState.CANCELLED),
        "INC-C": facts_of("INC-C", declared=now - 2 * day, services=["checkout", "cart"]),
    }
    for row in rows.values():
        facts.record_incident(row, at=now)
    for number, state, due in (
        (1, ActionItemState.DONE, now - day),
        (2, ActionItemState.OPEN, now - day),
        (3, ActionItemState.VERIFYING, now + day),
    ):
        facts.record_action_item(
            item_of("INC-A", number, created=now - 29 * day, due=due, state=state, rung=None),
            at=now,
        )
    query = RepeatQuery(
        key="INC-NEW",
        services=["checkout"],
        failure_modes=[MODE],
        since=now - 90 * day,
        until=now,
    )
    found = FactsRecorder(settings).find_earlier_incidents(query)
    assert [(e.key, e.matched_on) for e in found] == [
        ("INC-C", ["service checkout"]),
        ("INC-A", ["service checkout", f"failure mode {MODE}"]),
    ]
    earlier_a = found[1]
    assert [(i.id, i.state, i.overdue) for i in earlier_a.open_items] == [
        ("INC-A-2", ActionItemState.OPEN, True),
        ("INC-A-3", ActionItemState.VERIFYING, False),
    ]
    assert (found[0].proves_fixes, earlier_a.proves_fixes) == (False, True)
    excluded = query.model_copy(update={"exclude": ["INC-A"]})
    assert [e.key for e in FactsRecorder(settings).find_earlier_incidents(excluded)] == ["INC-C"]

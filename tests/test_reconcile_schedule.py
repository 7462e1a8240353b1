"""The reconciler's Temporal Schedule: created once, kept in line with the settings, triggered."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
)
from temporalio.testing import ActivityEnvironment

from activities.reconcile import TicketReconciler
from domain.action_item import ActionItemState, action_workflow_id
from domain.reconcile import WORKFLOW_NAME, ReconcileRequest, ReconcileResult, TargetsRequest
from domain.search_attributes import OPEN_ACTION_ITEMS, TRACKER
from integrations.local import TARGET as LOCAL_TARGET
from integrations.local import LocalTracker
from integrations.registry import TrackerRegistry
from integrations.temporal_schedules import ensure_reconcile_schedule, schedule_id
from settings import Settings
from tests.helpers import eventually, new_key
from tests.reviews import item_state, standalone_item
from worker import build_worker
from workflows.action_item import ActionItemWorkflow
from workflows.reconcile import TicketReconcilerWorkflow


async def test_workers_create_the_schedule_once_and_follow_the_interval_setting(
    client: Client,
) -> None:
    task_queue = f"tq-{uuid.uuid4()}"
    every = timedelta(minutes=5)
    assert await ensure_reconcile_schedule(client, task_queue, every) == "created"
    assert await ensure_reconcile_schedule(client, task_queue, every) == "unchanged"
    handle = client.get_schedule_handle(schedule_id(task_queue))
    described = await handle.describe()
    action = described.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert action.workflow == WORKFLOW_NAME and action.task_queue == task_queue
    assert [i.every for i in described.schedule.spec.intervals] == [every]

    assert await ensure_reconcile_schedule(client, task_queue, timedelta(minutes=1)) == "updated"
    described = await handle.describe()
    assert [i.every for i in described.schedule.spec.intervals] == [timedelta(minutes=1)]

    assert await ensure_reconcile_schedule(client, task_queue, timedelta(0)) == "deleted"
    assert await ensure_reconcile_schedule(client, task_queue, timedelta(0)) == "off"


async def test_triggered_runs_hand_their_watermarks_on_and_catch_a_closed_ticket(
    client: Client, tmp_path: Path
) -> None:
    task_queue = f"tq-{uuid.uuid4()}"
    key = new_key()
    item_id = action_workflow_id(key, 1)
    await ensure_reconcile_schedule(client, task_queue, timedelta(hours=1))
    schedule = client.get_schedule_handle(schedule_id(task_queue))
    settings = Settings(home=tmp_path)
    try:
        async with build_worker(client, settings, task_queue=task_queue):
            item = await client.start_workflow(
                ActionItemWorkflow.run,
                standalone_item(key, history_limit=1000),
                id=item_id,
                task_queue=task_queue,
            )
            opened = await eventually(
                lambda: item_state(client, item_id),
                lambda found: found.ticket is not None,
            )
            assert opened.ticket is not None

            async def run(number: int) -> ReconcileResult:
                await schedule.trigger()
                described = await eventually(
                    schedule.describe,
                    lambda found: len(found.info.recent_actions) >= number,
                    timeout=20,
                )
                action = described.info.recent_actions[number - 1].action
                assert isinstance(action, ScheduleActionExecutionStartWorkflow)
                handle = client.get_workflow_handle(
                    action.workflow_id,
                    run_id=action.first_execution_run_id,
                    result_type=ReconcileResult,
                )
                return await handle.result()

            # The first run may come before visibility lists the new item: run until it does.
            first = await run(1)
            runs = 1
            while LOCAL_TARGET not in first.watermarks and runs < 10:
                runs += 1
                first = await run(runs)
            [report] = first.reports
            assert report.target == LOCAL_TARGET and report.error is None

            # Closed in the local tracker without telling the workflow (a lost signal).
            LocalTracker.configured(Settings(home=tmp_path)).close(LOCAL_TARGET, opened.ticket.key)
            second = await run(runs + 1)
            [again] = second.reports
            assert again.since == first.watermarks[LOCAL_TARGET]  # read from the last run's
            assert second.signalled == 1
            await eventually(
                lambda: item_state(client, item_id),
                lambda found: found.state is ActionItemState.VERIFYING,
            )
            await item.terminate("done")
    finally:
        await schedule.delete()


async def test_the_daily_sweep_has_its_own_schedule(client: Client) -> None:
    task_queue = f"tq-{uuid.uuid4()}"
    day = timedelta(days=1)
    assert await ensure_reconcile_schedule(client, task_queue, day, full_sweep=True) == "created"
    assert await ensure_reconcile_schedule(client, task_queue, timedelta(minutes=5)) == "created"
    sweep = client.get_schedule_handle(schedule_id(task_queue, full_sweep=True))
    described = await sweep.describe()
    assert [i.every for i in described.schedule.spec.intervals] == [day]
    assert schedule_id(task_queue, full_sweep=True) != schedule_id(task_queue)
    for full_sweep in (True, False):
        every = timedelta(0)
        assert (
            await ensure_reconcile_schedule(client, task_queue, every, full_sweep=full_sweep)
            == "deleted"
        )


async def test_a_full_sweep_repairs_drift_that_no_recent_change_shows(
    client: Client, tmp_path: Path
) -> None:
    task_queue = f"tq-{uuid.uuid4()}"
    key = new_key()
    item_id = action_workflow_id(key, 1)
    async with build_worker(client, Settings(home=tmp_path), task_queue=task_queue):
        item = await client.start_workflow(
            ActionItemWorkflow.run,
            standalone_item(key, history_limit=1000),
            id=item_id,
            task_queue=task_queue,
        )
        opened = await eventually(
            lambda: item_state(client, item_id), lambda found: found.ticket is not None
        )
        assert opened.ticket is not None
        # Closed without telling the item, and long enough ago that the frequent runs' window
        # has moved past it: only a sweep can see it.
        LocalTracker.configured(Settings(home=tmp_path)).close(LOCAL_TARGET, opened.ticket.key)
        past_the_change = datetime.now(UTC) + timedelta(minutes=10)

        async def reconcile(request: ReconcileRequest) -> ReconcileResult:
            return await client.execute_workflow(
                TicketReconcilerWorkflow.run,
                request,
                id=f"reconcile-{uuid.uuid4()}",
                task_queue=task_queue,
            )

        frequent = await eventually(
            lambda: reconcile(ReconcileRequest(watermarks={LOCAL_TARGET: past_the_change})),
            lambda result: LOCAL_TARGET in result.watermarks,  # visibility lists the item
        )
        assert frequent.signalled == 0, "the change is before the window"
        assert (await item_state(client, item_id)).state is ActionItemState.OPEN
        swept = await reconcile(ReconcileRequest(full_sweep=True))
        [report] = swept.reports
        assert report.since == (await item.describe()).start_time
        assert swept.signalled == 1
        await eventually(
            lambda: item_state(client, item_id),
            lambda found: found.state is ActionItemState.VERIFYING,
        )
        await item.terminate("done")


async def test_a_run_counts_its_known_targets_and_lists_only_the_items_of_new_ones(
    client: Client, tmp_path: Path
) -> None:
    task_queue = f"tq-{uuid.uuid4()}"
    elsewhere = "github:acme/new-target"  # no GitHub token: its items wait for their tickets
    starts = {}
    async with build_worker(client, Settings(home=tmp_path), task_queue=task_queue):
        for number, target in enumerate((LOCAL_TARGET, LOCAL_TARGET, elsewhere)):
            start = standalone_item(new_key(), history_limit=1000)
            route = start.route.model_copy(update={"target": target})
            handle = await client.start_workflow(
                ActionItemWorkflow.run,
                start.model_copy(update={"route": route}),
                id=f"recon-{task_queue}-{number}",
                task_queue=task_queue,
            )
            starts[handle.id] = target
        # Listed once their first task has set their tracker target.
        on_queue = (
            f"{OPEN_ACTION_ITEMS} AND TaskQueue = '{task_queue}' AND {TRACKER.name} IS NOT NULL"
        )
        await eventually(
            lambda: client.count_workflows(on_queue), lambda counted: counted.count == 3
        )
        reconciler = TicketReconciler(client, TrackerRegistry(Settings(home=tmp_path)))
        environment = ActivityEnvironment()
        environment.info = dataclasses.replace(environment.info, task_queue=task_queue)

        async def find(**request: Any) -> dict[str, datetime]:
            windows = await environment.run(reconciler.find_targets, TargetsRequest(**request))
            return {window.target: window.oldest_open_at for window in windows}

        # A run that knows no target lists every open item: each target from its oldest.
        discovered = await find()
        assert set(discovered) == {LOCAL_TARGET, elsewhere}
        # One that knows the local target keeps its watermark for it, finds the new target by
        # listing only the items not on known targets, and drops a known target left empty.
        watermark = datetime(2026, 12, 1, tzinfo=UTC)
        found = await find(known={LOCAL_TARGET: watermark, "jira:GONE": watermark})
        assert found == {LOCAL_TARGET: watermark, elsewhere: discovered[elsewhere]}
        # A full sweep lists them all again, watermarks or not.
        assert await find(known={LOCAL_TARGET: watermark}, full_sweep=True) == discovered
        for workflow_id in starts:
            await client.get_workflow_handle(workflow_id).terminate("done")

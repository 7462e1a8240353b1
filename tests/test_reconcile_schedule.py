"""The reconciler's Temporal Schedule: created once, kept in line with the settings, triggered."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
)

from domain.action_item import ActionItemState, action_workflow_id
from domain.reconcile import WORKFLOW_NAME, ReconcileResult
from integrations.local import TARGET as LOCAL_TARGET
from integrations.local import LocalTracker
from integrations.temporal_schedules import ensure_reconcile_schedule, schedule_id
from settings import Settings
from tests.helpers import eventually, new_key
from tests.reviews import item_state, standalone_item
from worker import build_worker
from workflows.action_item import ActionItemWorkflow


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

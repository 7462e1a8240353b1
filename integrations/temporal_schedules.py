"""The ticket reconciler's Temporal Schedules, kept in line with the settings by every worker.

Two schedules per task queue (so two deployments on one namespace do not share them): every
`AFTERACTION_RECONCILE_EVERY` a TicketReconciler run reads what changed since the last run;
every `AFTERACTION_RECONCILE_SWEEP_EVERY` (a day by default) a full sweep reads every ticket of
the targets with open items. A run still going when the next is due makes the next one skip.
Workers call `ensure_reconcile_schedule` at start-up:
the first creates the schedule, later ones find it and update it only when the interval or the
task queue changed; 0 deletes it.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Literal

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from domain.reconcile import SCHEDULE_ID, SWEEP_SCHEDULE_ID, WORKFLOW_NAME, ReconcileRequest

Outcome = Literal["created", "updated", "unchanged", "deleted", "off"]
RUN_TIMEOUT = timedelta(minutes=15)


def schedule_id(task_queue: str, *, full_sweep: bool = False) -> str:
    return f"{SWEEP_SCHEDULE_ID if full_sweep else SCHEDULE_ID}/{task_queue}"


def reconcile_schedule(task_queue: str, every: timedelta, *, full_sweep: bool = False) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            WORKFLOW_NAME,
            ReconcileRequest(full_sweep=full_sweep),
            id=schedule_id(task_queue, full_sweep=full_sweep),
            task_queue=task_queue,
            # A run stuck on a hung tracker must not make every later run skip.
            execution_timeout=RUN_TIMEOUT,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


def _same(current: Schedule, wanted: Schedule) -> bool:
    action = current.action
    intervals = [interval.every for interval in current.spec.intervals]
    return (
        isinstance(action, ScheduleActionStartWorkflow)
        and isinstance(wanted.action, ScheduleActionStartWorkflow)
        and action.task_queue == wanted.action.task_queue
        and intervals == [interval.every for interval in wanted.spec.intervals]
    )


async def ensure_reconcile_schedule(
    client: Client, task_queue: str, every: timedelta, *, full_sweep: bool = False
) -> Outcome:
    """The frequent schedule, or with `full_sweep` the sweep's; `every` 0 deletes it."""
    name = schedule_id(task_queue, full_sweep=full_sweep)
    handle = client.get_schedule_handle(name)
    if every <= timedelta(0):
        try:
            await handle.delete()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return "off"
            raise
        return "deleted"
    wanted = reconcile_schedule(task_queue, every, full_sweep=full_sweep)
    with contextlib.suppress(ScheduleAlreadyRunningError):
        await client.create_schedule(name, wanted)
        return "created"
    current = await handle.describe()
    if _same(current.schedule, wanted):
        return "unchanged"

    def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=wanted)

    await handle.update(replace)
    return "updated"

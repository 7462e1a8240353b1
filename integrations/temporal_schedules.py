"""The Temporal Schedules every worker keeps in line with its settings and policy: the ticket
reconciler's two, and the weekly digest's.

Two schedules per task queue (so two deployments on one namespace do not share them): every
`AFTERACTION_RECONCILE_EVERY` a TicketReconciler run reads what changed since the last run;
every `AFTERACTION_RECONCILE_SWEEP_EVERY` (a day by default) a full sweep reads every ticket of
the targets with open items. A run still going when the next is due makes the next one skip.
The weekly digest runs on a calendar (the policy's weekday and time, in its zone). Workers call
`ensure_reconcile_schedule` and `ensure_digest_schedule` at start-up:
the first creates the schedule, later ones find it and update it only when the interval or the
task queue changed; 0 deletes it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Literal

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from domain.digest_policy import DigestPolicy
from domain.digest_runs import SCHEDULE_ID as DIGEST_SCHEDULE_ID
from domain.digest_runs import WORKFLOW_NAME as DIGEST_WORKFLOW_NAME
from domain.digest_runs import DigestRequest
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
    wanted = None
    if every > timedelta(0):
        wanted = reconcile_schedule(task_queue, every, full_sweep=full_sweep)
    return await _ensure(client, name, wanted, _same)


async def _ensure(
    client: Client,
    name: str,
    wanted: Schedule | None,
    same: Callable[[Schedule, Schedule], bool],
) -> Outcome:
    """Create `wanted` under `name`, or update the schedule there unless it is the `same`;
    None deletes it."""
    handle = client.get_schedule_handle(name)
    if wanted is None:
        try:
            await handle.delete()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return "off"
            raise
        return "deleted"
    with contextlib.suppress(ScheduleAlreadyRunningError):
        await client.create_schedule(name, wanted)
        return "created"
    current = await handle.describe()
    if same(current.schedule, wanted):
        return "unchanged"

    def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=wanted)

    await handle.update(replace)
    return "updated"


# ---- the weekly digest ------------------------------------------------------------------------

# Runs the server could not start on time (it was down) are started when it is back, if their
# slot is this recent: a week, so only the latest missed slot is caught up, never one per week.
DIGEST_CATCHUP_WINDOW = timedelta(days=7)
# A run waits this long for a worker; meanwhile later slots are skipped (the run sends the
# latest slot whenever it runs).
DIGEST_RUN_TIMEOUT = timedelta(days=6)
_DAYS_OF_WEEK = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 0}  # ISO weekday -> Temporal's (0 Sunday)


def digest_schedule_id(task_queue: str) -> str:
    return f"{DIGEST_SCHEDULE_ID}/{task_queue}"


def digest_schedule(task_queue: str, policy: DigestPolicy, timezone: str) -> Schedule:
    calendar = ScheduleCalendarSpec(
        second=[ScheduleRange(0)],
        minute=[ScheduleRange(policy.minute)],
        hour=[ScheduleRange(policy.hour)],
        day_of_week=[ScheduleRange(_DAYS_OF_WEEK[policy.weekday.iso])],
        comment=f"{policy.weekday.value} {policy.time}",
    )
    return Schedule(
        action=ScheduleActionStartWorkflow(
            DIGEST_WORKFLOW_NAME,
            DigestRequest(),
            id=digest_schedule_id(task_queue),
            task_queue=task_queue,
            execution_timeout=DIGEST_RUN_TIMEOUT,
        ),
        spec=ScheduleSpec(calendars=[calendar], time_zone_name=timezone),
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.SKIP, catchup_window=DIGEST_CATCHUP_WINDOW
        ),
    )


def _same_digest(current: Schedule, wanted: Schedule) -> bool:
    action = current.action
    return (
        isinstance(action, ScheduleActionStartWorkflow)
        and isinstance(wanted.action, ScheduleActionStartWorkflow)
        and action.task_queue == wanted.action.task_queue
        and current.spec.time_zone_name == wanted.spec.time_zone_name
        and [c.comment for c in current.spec.calendars]
        == [c.comment for c in wanted.spec.calendars]
        and current.policy.catchup_window == wanted.policy.catchup_window
    )


async def ensure_digest_schedule(
    client: Client, task_queue: str, policy: DigestPolicy, timezone: str
) -> Outcome:
    """The weekly digest's schedule as the policy says; deleted when the policy disables it."""
    wanted = digest_schedule(task_queue, policy, timezone) if policy.enabled else None
    return await _ensure(client, digest_schedule_id(task_queue), wanted, _same_digest)

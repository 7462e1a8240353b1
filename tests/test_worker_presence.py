"""A missing worker is told from a busy one: the rules on what the task queue remembers, and a
real worker busy with a slow update, which is waited for and never called missing."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio import activity, workflow
from temporalio.api.enums.v1 import PendingWorkflowTaskState
from temporalio.api.workflow.v1 import PendingWorkflowTaskInfo
from temporalio.client import Client
from temporalio.worker import Worker

from app.services.incidents import answered
from app.services.workers import CHECK_AFTER, LastPoll, NoWorker, absence, unless_absent

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
QUEUE = "afteraction"


def pending(scheduled: datetime, *, started: bool = False) -> PendingWorkflowTaskInfo:
    stamp = Timestamp()
    stamp.FromDatetime(scheduled)
    state = (
        PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_STARTED
        if started
        else PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED
    )
    return PendingWorkflowTaskInfo(state=state, scheduled_time=stamp)


def polled(seconds_ago: float) -> LastPoll:
    return LastPoll(identity="4242@host", at=NOW - timedelta(seconds=seconds_ago))


def test_a_queue_nobody_polls_has_no_worker() -> None:
    assert absence(QUEUE, None, now=NOW) == "no worker is polling task queue 'afteraction'"


def test_a_poll_older_than_a_long_poll_means_no_worker() -> None:
    assert absence(QUEUE, polled(300), now=NOW) == (
        "no worker is polling task queue 'afteraction' (the last poll was 5m ago, by 4242@host)"
    )


def test_an_idle_worker_between_polls_is_not_missing() -> None:
    assert absence(QUEUE, polled(60), now=NOW) is None


def test_work_scheduled_after_the_last_poll_and_not_taken_means_no_worker() -> None:
    waiting = pending(NOW - timedelta(seconds=5))
    assert absence(QUEUE, polled(20), now=NOW, pending=waiting) == (
        "no worker is polling task queue 'afteraction': work waiting since 5s ago was not "
        "taken (the last poll was 20s ago, by 4242@host)"
    )


@pytest.mark.parametrize(
    "task",
    [
        pending(NOW - timedelta(seconds=30)),  # a worker has polled since: it is busy
        pending(NOW - timedelta(seconds=5), started=True),  # a worker is on it
        pending(NOW - timedelta(milliseconds=200)),  # scheduled a moment ago
    ],
    ids=["polled-since", "started", "just-scheduled"],
)
def test_a_busy_worker_is_not_missing(task: PendingWorkflowTaskInfo) -> None:
    assert absence(QUEUE, polled(10), now=NOW, pending=task) is None


async def test_a_slow_answer_is_waited_for_while_the_check_finds_a_worker() -> None:
    async def slow() -> str:
        await asyncio.sleep(CHECK_AFTER.total_seconds() + 0.5)
        return "answered"

    async def present() -> str | None:
        return None

    assert await unless_absent(slow(), present) == "answered"


async def test_a_slow_answer_stops_at_once_when_the_check_finds_no_worker() -> None:
    cancelled = asyncio.Event()

    async def never() -> str:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        return "unreachable"

    async def missing() -> str | None:
        return "no worker is polling task queue 'q'"

    with pytest.raises(NoWorker, match="Temporal answers, but no worker is polling task queue"):
        await unless_absent(never(), missing)
    assert cancelled.is_set()


# ---- a real worker, busy with a slow update ------------------------------------------------

SLOW = timedelta(seconds=3)


@activity.defn(name="slow_step")
async def slow_step() -> str:
    await asyncio.sleep(SLOW.total_seconds())
    return "done"


@workflow.defn(name="BusyWorkflow", sandboxed=False)
class BusyWorkflow:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.update
    async def work(self) -> str:
        result: str = await workflow.execute_activity(
            slow_step, start_to_close_timeout=timedelta(seconds=30)
        )
        return result


async def test_a_worker_busy_with_a_slow_update_is_not_reported_missing(client: Client) -> None:
    task_queue = f"tq-{uuid.uuid4()}"
    async with Worker(
        client, task_queue=task_queue, workflows=[BusyWorkflow], activities=[slow_step]
    ):
        handle = await client.start_workflow(
            BusyWorkflow.run, id=f"busy-{uuid.uuid4()}", task_queue=task_queue
        )
        started = time.monotonic()
        result = await answered(client, handle.id, handle.execute_update(BusyWorkflow.work))
        assert result == "done"
        assert time.monotonic() - started >= SLOW.total_seconds()
        await handle.terminate("test over")

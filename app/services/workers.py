"""Whether a worker serves a task queue: Temporal can be up while no worker runs, and then a
query or an update waits for one until it times out. This says so within a second instead,
naming the task queue, without calling a busy worker missing.

What the server tells: every worker long-polls its task queue, and the queue remembers the
start of each worker's latest poll. A worker that waits for work starts a new poll at least
every LONG_POLL; one that works polls again as soon as it has a free slot. A workflow task
that a waiting worker would have taken at once, still waiting with no poll since it was
scheduled, means that no worker serves the queue (or that every slot of it has been stuck
since then, which is no better).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from temporalio.api.enums.v1 import PendingWorkflowTaskState, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflow.v1 import PendingWorkflowTaskInfo
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

T = TypeVar("T")

# How long a query or an update may take before the task queue is looked at.
CHECK_AFTER = timedelta(seconds=1)
# The server ends an idle long poll after a minute and the worker starts the next at once; a
# queue whose latest poll began longer ago than this has no worker polling it.
LONG_POLL = timedelta(seconds=90)
# A workflow task still waiting this long after it was scheduled was not taken at once.
NOT_TAKEN_AFTER = timedelta(seconds=1)
_SCHEDULED = PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED
START_HINT = (
    "start one with `make run` (the whole local stack), or `afteraction worker` beside a "
    "Temporal you run yourself"
)


class NoWorker(Exception):
    """No worker serves the task queue a workflow runs on; the message says which and how to
    start one."""


@dataclass(frozen=True)
class LastPoll:
    """The latest poll a task queue remembers: which worker, and when it began."""

    identity: str
    at: datetime


async def last_poll(client: Client, task_queue: str) -> LastPoll | None:
    """The latest workflow-task poll on `task_queue`, or None when it remembers none (the
    server forgets a worker some minutes after its last poll). Raises RPCError."""
    answer = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    polls = [
        LastPoll(identity=poller.identity, at=poller.last_access_time.ToDatetime(UTC))
        for poller in answer.pollers
        if poller.HasField("last_access_time")
    ]
    return max(polls, key=lambda poll: poll.at, default=None)


def _ago(moment: datetime, now: datetime) -> str:
    seconds = max(0, int((now - moment).total_seconds()))
    return f"{seconds}s ago" if seconds < 120 else f"{seconds // 60}m ago"


def absence(
    task_queue: str,
    latest: LastPoll | None,
    *,
    now: datetime,
    pending: PendingWorkflowTaskInfo | None = None,
) -> str | None:
    """Why no worker serves `task_queue`, in words; None when one may (it may be busy).

    Args:
        latest: the queue's latest poll (`last_poll`).
        pending: the workflow's pending workflow task, when it has one.
    """
    where = f"no worker is polling task queue {task_queue!r}"
    if latest is None:
        return where
    last = f"the last poll was {_ago(latest.at, now)}, by {latest.identity}"
    if now - latest.at > LONG_POLL:
        return f"{where} ({last})"
    if pending is not None and pending.state == _SCHEDULED:
        scheduled = pending.scheduled_time.ToDatetime(UTC)
        if scheduled > latest.at and now - scheduled >= NOT_TAKEN_AFTER:
            return f"{where}: work waiting since {_ago(scheduled, now)} was not taken ({last})"
    return None


def no_worker(reason: str) -> str:
    """The message for a call no worker can answer, from `absence`'s reason."""
    return f"Temporal answers, but {reason}; {START_HINT}"


async def unless_absent(call: Awaitable[T], absent: Callable[[], Awaitable[str | None]]) -> T:
    """The answer of `call` (a query or an update). When it has not come after CHECK_AFTER and
    `absent()` then says why no worker serves the queue, NoWorker with that reason at once;
    otherwise (a worker may be busy, or the check itself failed) the call's own answer."""
    task = asyncio.ensure_future(call)
    done, _ = await asyncio.wait({task}, timeout=CHECK_AFTER.total_seconds())
    if not done:
        try:
            reason = await absent()
        except RPCError:
            reason = None  # the call's own error, when it comes, says more
        if reason is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            raise NoWorker(no_worker(reason))
    return await task

"""What IncidentWorkflow and ActionItemWorkflow share: refusals, notifications that run
beside the deadline loop, and when to continue as new. Deterministic code only."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.limits import RUN_GROWTH_BYTES
    from domain.notifications import EscalationNotice

NOTIFY_TIMEOUT = timedelta(seconds=30)
NOTIFY_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1), maximum_attempts=20)
# An activity inside an update handler: someone is waiting for the answer, and the handler
# holds its turn meanwhile, so it gives up after a few tries instead of retrying forever.
UPDATE_ACTIVITY_TIMEOUT = timedelta(seconds=10)
UPDATE_ACTIVITY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)
# Every step due by now has fired before a loop waits, so its timeout is positive; the floor
# only guards against a zero timeout, which the SDK treats as "now".
MIN_TIMER = timedelta(milliseconds=10)
# Histories recorded before this handed the whole state to the next run, and only when the run
# had many events: now a run also hands over once it has grown by RUN_GROWTH_BYTES, and carries
# only the latest of its long lists.
BOUNDED_HANDOVER = "bounded-continue-as-new"


def rejected(message: str) -> ApplicationError:
    """What a validator raises: the command is refused and nothing reaches the history."""
    return ApplicationError(message, type="CommandRejected", non_retryable=True)


class RunLength:
    """When a run should continue as new: Temporal suggests it, the run has more than `limit`
    events, or its history has grown by RUN_GROWTH_BYTES since it started (the state holds what
    the run's commands added, and must stay far below Temporal's payload limit)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        # The start event holds what the previous run carried over: count only the growth.
        self._start_size = workflow.info().get_current_history_size()

    def exceeded(self) -> bool:
        info = workflow.info()
        if info.is_continue_as_new_suggested() or info.get_current_history_length() > self._limit:
            return True
        grown = info.get_current_history_size() - self._start_size > RUN_GROWTH_BYTES
        # Asked only when it would change the course, so a history recorded before it replays.
        return grown and workflow.patched(BOUNDED_HANDOVER)


class Background:
    """Side effects that run beside a workflow's loop; `idle` once all have finished."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def idle(self) -> bool:
        return not self._tasks

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def notify_escalation(notice: EscalationNotice) -> None:
    """The escalation is already recorded in the state: a notification channel that stays
    down must not fail the workflow, nor hold up the deadlines that follow."""
    try:
        await workflow.execute_activity(
            "notify_escalation",
            notice,
            start_to_close_timeout=NOTIFY_TIMEOUT,
            retry_policy=NOTIFY_RETRY,
        )
    except ActivityError as error:
        workflow.logger.error(
            "escalation notice %s for %s not delivered: %s",
            notice.step,
            notice.title,
            error.cause or error,
        )

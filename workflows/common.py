"""What IncidentWorkflow and ActionItemWorkflow share: refusals, notifications that run
beside the deadline loop, and the continue-as-new trigger. Deterministic code only."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
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


def rejected(message: str) -> ApplicationError:
    """What a validator raises: the command is refused and nothing reaches the history."""
    return ApplicationError(message, type="CommandRejected", non_retryable=True)


def history_too_long(limit: int) -> bool:
    info = workflow.info()
    return info.is_continue_as_new_suggested() or info.get_current_history_length() > limit


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

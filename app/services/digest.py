"""The weekly digest for people: preview a week's (from the read model, under the deployment's
published digest settings), or send one now (a WeeklyDigest run of its own on Temporal)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from temporalio.client import Client

from domain.digest import Digest
from domain.digest_policy import DigestPolicy
from domain.digest_runs import (
    MANUAL_PREFIX,
    SCHEDULE_ID,
    DigestRequest,
    DigestRunResult,
    latest_slot,
    slot_in_week,
)
from settings import Settings
from store import Store
from store.digest_facts import DigestReader
from workflows.digest import WeeklyDigestWorkflow

# Long enough for a slow mail server's retries to show; a send still going is not lost.
SEND_WAIT = timedelta(seconds=90)


class WeekError(ValueError):
    """A week the digest cannot use; the message says what to give instead."""


class SendPending(Exception):
    """The send was started but has not finished within SEND_WAIT (no worker, say)."""


def digest_slot(
    policy: DigestPolicy, timezone: str, week: str | None, *, now: datetime | None = None
) -> datetime:
    """The slot of an ISO week (2026-W49), or by default the latest slot before now."""
    if week is None:
        return latest_slot(now or datetime.now(UTC), policy, timezone)
    try:
        return slot_in_week(week, policy, timezone)
    except ValueError as error:
        raise WeekError(str(error)) from None


def preview(
    store: Store, settings: Settings, policy: DigestPolicy, week: str | None = None
) -> Digest:
    timezone = policy.effective_timezone(settings.timezone)
    slot = digest_slot(policy, timezone, week)
    return DigestReader(store).digest(task_queue=settings.task_queue, slot=slot, timezone=timezone)


async def send_now(client: Client, settings: Settings, week: str | None = None) -> DigestRunResult:
    """Send a digest by hand, under its own delivery key (never a scheduled slot's)."""
    delivery = f"{MANUAL_PREFIX}{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    handle = await client.start_workflow(
        WeeklyDigestWorkflow.run,
        DigestRequest(delivery=delivery, week=week),
        id=f"{SCHEDULE_ID}/{settings.task_queue}/{delivery}",
        task_queue=settings.task_queue,
    )
    try:
        return await asyncio.wait_for(handle.result(), timeout=SEND_WAIT.total_seconds())
    except TimeoutError:
        raise SendPending(
            f"the digest {delivery} is started but not sent yet; is a worker running on task "
            f"queue {settings.task_queue!r}? `temporal workflow show --workflow-id {handle.id}` "
            "follows it"
        ) from None

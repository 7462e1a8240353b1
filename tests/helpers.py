"""Small helpers for workflow tests: unique keys, declaring, polling."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from domain.commands import DeclareIncident
from domain.incident import Incident, workflow_id_for
from domain.policy import Policy
from domain.severity import Severity
from workflows.incident import IncidentWorkflow

T = TypeVar("T")


def new_key() -> str:
    return f"INC-T{uuid.uuid4().hex[:10].upper()}"


async def declare(
    client: Client,
    task_queue: str,
    policy: Policy,
    *,
    severity: Severity = Severity.SEV2,
    **fields: Any,
) -> WorkflowHandle[IncidentWorkflow, Incident]:
    key = fields.pop("key", None) or new_key()
    declaration = DeclareIncident(
        key=key,
        title=fields.pop("title", "Checkout errors"),
        severity=severity,
        services=fields.pop("services", ["checkout"]),
        declared_by=fields.pop("declared_by", "alice"),
        policy=policy,
        **fields,
    )
    return await client.start_workflow(
        IncidentWorkflow.run, declaration, id=workflow_id_for(key), task_queue=task_queue
    )


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    *,
    timeout: float = 20.0,
    interval: float = 0.2,
) -> T:
    """Poll `probe` until `accept` holds; return the accepted value or fail with the last one."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if accept(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        await asyncio.sleep(interval)


async def sleep_until(env: WorkflowEnvironment, moment: datetime) -> None:
    """Move the time-skipping server's virtual clock to `moment`."""
    now = await env.get_current_time()
    assert moment > now, f"{moment} is already past ({now})"
    await env.sleep(moment - now)


def eventually_sync(
    probe: Callable[[], T],
    accept: Callable[[T], bool],
    *,
    timeout: float = 20.0,
    interval: float = 0.02,
) -> T:
    """`eventually` for synchronous tests: poll `probe` until `accept` holds, or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        time.sleep(interval)


class FakeClock:
    """A clock a test moves by hand (the GitHub emulator's updated_at and rate-limit resets)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

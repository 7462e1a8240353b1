"""What the tracker end-to-end tests share: waiting for an item, running the reconciler."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from temporalio.client import Client, WorkflowHandle

from domain.action_item import ActionItem, ActionItemState, action_workflow_id
from domain.reconcile import ReconcileRequest, ReconcileResult
from settings import Settings
from tests.api_server import serving_api
from tests.helpers import eventually
from tests.reviews import item_state
from worker import build_worker
from workflows.reconcile import TicketReconcilerWorkflow


@asynccontextmanager
async def serving(
    client: Client, settings: Settings, listen: Callable[[str], None]
) -> AsyncIterator[tuple[str, str]]:
    """The API over HTTP and a worker on a fresh task queue; `listen(api_url)` points the
    emulator's webhooks at the API. Yields (task queue, API URL)."""
    task_queue = f"tq-{uuid.uuid4()}"
    with serving_api(settings) as api_url:
        listen(api_url)
        async with build_worker(client, settings, task_queue=task_queue):
            yield task_queue, api_url


async def item_reaches(
    client: Client,
    key: str,
    number: int,
    wanted: ActionItemState | Callable[[ActionItem], bool],
    timeout: float = 20,
) -> ActionItem:
    """Item `number` of incident `key`, once it is in state `wanted` (or passes the check)."""
    check = wanted if callable(wanted) else (lambda item: item.state is wanted)
    return await eventually(
        lambda: item_state(client, action_workflow_id(key, number)), check, timeout=timeout
    )


async def reconcile(
    client: Client, task_queue: str, watermarks: dict[str, datetime] | None = None
) -> ReconcileResult:
    """One TicketReconciler run started by hand (not by its schedule), from these watermarks."""
    return await client.execute_workflow(
        TicketReconcilerWorkflow.run,
        ReconcileRequest(watermarks=watermarks or {}),
        id=f"reconcile-{uuid.uuid4()}",
        task_queue=task_queue,
    )


async def finish(client: Client, incident: WorkflowHandle, key: str, items: int) -> None:
    """Terminate an incident and its items (tests end them instead of closing them)."""
    for number in range(1, items + 1):
        await client.get_workflow_handle(action_workflow_id(key, number)).terminate("done")
    await incident.terminate("done")

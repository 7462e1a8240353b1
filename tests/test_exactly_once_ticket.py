"""Exactly-once ticket creation across a worker crash, with the worker in a real process.

The worker (tests/worker_process.py, running worker.build_worker) is SIGKILLed right after the
local tracker commits a ticket and before ensure_ticket can report it, the one window where a
retry could make a second ticket. The server retries the attempt once its start-to-close
timeout (TRACKER_TIMEOUT, 20s) runs out; a new worker process runs the retry, which must find
the committed ticket by its idempotency key instead of creating another.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from domain.action_item import ActionItem, ActionItemState, action_workflow_id
from domain.commands import Acknowledge, Transition
from domain.incident import IncidentState
from domain.review import SubmitReview
from integrations.local import LocalTracker
from settings import Settings
from tests import worker_process
from tests.helpers import declare, eventually, new_key
from tests.policies import slow_policy
from tests.reviews import full_review, item_spec, local_route
from tests.stack import stop_processes
from workflows.action_item import TRACKER_TIMEOUT
from workflows.incident import IncidentWorkflow

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def worker_processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every worker process started in the block is stopped when it ends, however it ends."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        stop_processes(started)


def start_worker(
    address: str,
    task_queue: str,
    home: Path,
    log: Path,
    *,
    die_marker: Path | None = None,
    die_on: str = "",
    settings: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """A worker process; `settings` are AFTERACTION_* variables (e.g. a tracker's token)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERACTION_")}
    env.update(settings or {})
    env.pop(worker_process.DIE_AFTER_TICKET, None)
    env.pop(worker_process.DIE_ON_TARGET, None)
    if die_marker is not None:
        env[worker_process.DIE_AFTER_TICKET] = str(die_marker)
        env[worker_process.DIE_ON_TARGET] = die_on
    command = [sys.executable, "-m", "tests.worker_process", "--address", address]
    command += ["--task-queue", task_queue, "--home", str(home)]
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def tickets_by_key(home: Path) -> dict[str, list[str]]:
    """idempotency key -> the local tracker's ticket keys (LOCAL-n) carrying it, read from the
    store the worker processes write."""
    found: dict[str, list[str]] = {}
    for ticket in LocalTracker.configured(Settings(home=home)).tickets():
        found.setdefault(ticket.idempotency_key or "", []).append(ticket.ref.key)
    return found


async def killed_worker_log(worker: subprocess.Popen[bytes], log: Path, committed: str) -> str:
    """The output of a worker that must die by its kill switch right after committing the
    ticket of `committed` (an item's workflow id); fails with that output otherwise."""

    async def exit_code() -> int | None:
        return worker.poll()

    code = await eventually(exit_code, lambda code: code is not None, timeout=30)
    output = log.read_text(errors="replace")
    assert code == -signal.SIGKILL, f"the worker was not killed (exit {code}):\n{output}"
    assert f"killed after committing {committed}\n" in output, output
    return output


async def ensure_ticket_attempts(client: Client, workflow_id: str) -> tuple[int, list[int]]:
    """How many ensure_ticket activities completed, and the attempt numbers that started."""
    completed, attempts = 0, []
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            completed += 1
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attempts.append(event.activity_task_started_event_attributes.attempt)
    return completed, attempts


async def test_worker_killed_after_the_tracker_commits_leaves_exactly_one_ticket_per_item(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    client = dev_env.client
    address = client.service_client.config.target_host
    task_queue = f"tq-{uuid.uuid4()}"
    home, marker = tmp_path / "home", tmp_path / "killed"
    key = new_key()
    items = [action_workflow_id(key, 1), action_workflow_id(key, 2)]

    with worker_processes() as workers:
        workers.append(
            start_worker(address, task_queue, home, tmp_path / "first.log", die_marker=marker)
        )
        handle = await declare(client, task_queue, slow_policy(), key=key)
        await handle.execute_update(IncidentWorkflow.acknowledge, Acknowledge(commander="bob"))
        await handle.execute_update(IncidentWorkflow.resolve, Transition())
        review = full_review(
            item_spec("payments", "Cap the pool size"),
            item_spec("platform", "Alert on pool saturation"),
        )
        routes = {team: local_route(team) for team in ("payments", "platform")}
        # The worker may die while the update is still starting the items; a later worker
        # finishes it, so it runs beside the crash instead of before it.
        submitted = asyncio.create_task(
            handle.execute_update(
                IncidentWorkflow.submit_review, SubmitReview(review=review, routes=routes)
            )
        )

        async def first_exit() -> int | None:
            return workers[0].poll()

        code = await eventually(first_exit, lambda code: code is not None, timeout=20)
        log = (tmp_path / "first.log").read_text(errors="replace")
        assert code == -signal.SIGKILL, f"the worker was not killed (exit {code}):\n{log}"
        assert marker.exists()
        committed = tickets_by_key(home)
        assert 1 <= len(committed) <= 2, committed
        assert set(committed) <= set(items), committed
        assert all(len(keys) == 1 for keys in committed.values()), committed
        [killed_in] = [wid for wid in items if f"committing {wid}\n" in log] or [log]
        assert killed_in in committed, f"no item named as killed in the worker's output:\n{log}"
        # The activity that committed it never reported: only a retry can give the item its key.
        assert (await ensure_ticket_attempts(client, killed_in))[0] == 0

        workers.append(start_worker(address, task_queue, home, tmp_path / "second.log"))

        async def states() -> list[ActionItem]:
            handles = [client.get_workflow_handle(workflow_id) for workflow_id in items]
            return [await h.query("state", result_type=ActionItem) for h in handles]

        timeout = TRACKER_TIMEOUT.total_seconds() + 20
        opened = await eventually(
            states,
            lambda found: all(item.state is ActionItemState.OPEN for item in found),
            timeout=timeout,
            interval=0.5,
        )
        status = await asyncio.wait_for(submitted, timeout=10)
        assert status.state is IncidentState.TRACKING

        final = tickets_by_key(home)
        assert {workflow_id: len(keys) for workflow_id, keys in final.items()} == {
            items[0]: 1,
            items[1]: 1,
        }
        for workflow_id, item in zip(items, opened, strict=True):
            assert item.ticket is not None
            assert item.ticket.key == final[workflow_id][0]
        # The crashed item kept the ticket committed before the crash, through a retry.
        assert final[killed_in] == committed[killed_in]
        completed, attempts = await ensure_ticket_attempts(client, killed_in)
        assert completed == 1
        assert attempts and attempts[-1] >= 2, attempts

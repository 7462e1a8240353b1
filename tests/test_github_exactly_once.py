"""Exactly-once GitHub issue across a worker crash: the worker process is SIGKILLed right after
GitHub created the issue and before ensure_ticket could report it. The retry, in a new worker
process after the attempt's start-to-close timeout, finds the issue by its key label."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from domain.action_item import ActionItemState, TeamRoute, action_workflow_id
from domain.commands import Transition
from domain.review import SubmitReview
from tests.emulators.github import GitHubEmulator
from tests.helpers import declare, eventually, new_key
from tests.policies import slow_policy
from tests.reviews import full_review, item_spec, item_state
from tests.test_exactly_once_ticket import (
    ensure_ticket_attempts,
    killed_worker_log,
    start_worker,
    worker_processes,
)
from workflows.action_item import TRACKER_TIMEOUT
from workflows.incident import IncidentWorkflow

TOKEN = "ghp_emulated_token"
REPO = "acme/payments"
CREATE = "POST /repos/{owner}/{repo}/issues"


async def test_worker_killed_after_github_created_the_issue_leaves_exactly_one(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    client = dev_env.client
    address = client.service_client.config.target_host
    task_queue = f"tq-{uuid.uuid4()}"
    home, marker = tmp_path / "home", tmp_path / "killed"
    key = new_key()
    item_id = action_workflow_id(key, 1)
    with GitHubEmulator(token=TOKEN) as emulator, worker_processes() as workers:
        emulator.add_repo(REPO)
        github = {
            "AFTERACTION_GITHUB_TOKEN": TOKEN,
            "AFTERACTION_GITHUB_BASE_URL": emulator.base_url,
        }
        workers.append(
            start_worker(
                address,
                task_queue,
                home,
                tmp_path / "first.log",
                die_marker=marker,
                settings=github,
            )
        )
        handle = await declare(client, task_queue, slow_policy(), key=key)
        await handle.execute_update(IncidentWorkflow.resolve, Transition())
        route = TeamRoute(team="payments", target=f"github:{REPO}")
        submitted = asyncio.create_task(
            handle.execute_update(
                IncidentWorkflow.submit_review,
                SubmitReview(
                    review=full_review(item_spec("payments", "Cap the pool size")),
                    routes={"payments": route},
                ),
            )
        )

        await killed_worker_log(workers[0], tmp_path / "first.log", item_id)
        assert list(emulator.repo(REPO).issues) == [1]  # GitHub has it; the workflow does not
        assert (await ensure_ticket_attempts(client, item_id))[0] == 0

        workers.append(
            start_worker(address, task_queue, home, tmp_path / "second.log", settings=github)
        )
        item = await eventually(
            lambda: item_state(client, item_id),
            lambda found: found.state is ActionItemState.OPEN,
            timeout=TRACKER_TIMEOUT.total_seconds() + 20,
            interval=0.5,
        )
        await asyncio.wait_for(submitted, timeout=10)
        assert item.ticket is not None and item.ticket.key == f"{REPO}#1"
        assert list(emulator.repo(REPO).issues) == [1]
        assert emulator.counts[CREATE] == 1
        completed, attempts = await ensure_ticket_attempts(client, item_id)
        assert completed == 1 and attempts[-1] >= 2
        assert emulator.contract_errors == []
        await client.get_workflow_handle(item_id).terminate("done")
        await handle.terminate("done")

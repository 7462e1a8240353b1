"""Action items routed to Jira, end to end: the real worker and workflows on the dev server,
the real `jira` client, the contract-checked Jira emulator.

One incident mixes a Jira team and a local one: the Jira ticket is created once with its
fields, and the item's ladder lands on it as mention comments and `escalated-<rung>` labels.
Then exactly-once across a crash: the worker process is SIGKILLed right after Jira created the
issue, before the activity could report it; the server's retry (after the 20 s start-to-close
timeout, longer than the emulated index lag) finds the issue instead of creating another.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from domain.action_item import ActionItem, ActionItemState, action_workflow_id
from domain.commands import Transition
from domain.policy import Policy
from domain.review import SubmitReview
from domain.routing import load_routing
from settings import Settings
from tests.emulators.jira import JiraEmulator
from tests.helpers import declare, eventually, new_key
from tests.policies import slow_policy
from tests.reviews import full_review, item_spec, item_state, quick_items_policy
from tests.test_exactly_once_ticket import (
    ensure_ticket_attempts,
    killed_worker_log,
    start_worker,
    worker_processes,
)
from worker import build_worker
from workflows.action_item import TRACKER_TIMEOUT
from workflows.incident import IncidentWorkflow

EMAIL = "bot@example.com"
API_TOKEN = "atl-emulated-token"
ALICE = "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077"
LEAD = "5b10ac8d82e05b22cc7d4ef5"
ROUTING = f"""
[teams.payments]
tracker = "jira:PAY"
assignee = "{ALICE}"
team_lead = ["{LEAD}"]
components = ["billing-api"]

[teams.platform]
tracker = "local"

[jira.PAY]
issue_type = "Bug"
priorities = {{ P2 = "Highest" }}
"""


@pytest.fixture
def emulator() -> Iterator[JiraEmulator]:
    emu = JiraEmulator(flavor="cloud", email=EMAIL, api_token=API_TOKEN, index_lag=1.0).start()
    emu.add_project("PAY", issue_types=("Task", "Bug"), components=["billing-api"])
    emu.add_user(ALICE, "Alice")
    emu.add_user(LEAD, "Lee Lead")
    try:
        yield emu
        assert emu.contract_errors == []
    finally:
        emu.stop()


@pytest.fixture
def routing_file(tmp_path: Path) -> Path:
    path = tmp_path / "routing.toml"
    path.write_text(ROUTING, encoding="utf-8")
    return path


def review(routing_file: Path, policy: Policy) -> SubmitReview:
    routing = load_routing(routing_file)
    return SubmitReview(
        review=full_review(
            item_spec("payments", "Cap the pool", slo_link="https://slo.example/checkout"),
            item_spec("platform", "Alert on saturation", kind="long_term_systemic"),
        ),
        routes={team: routing.route(team, policy) for team in ("payments", "platform")},
    )


async def test_one_incident_sends_one_item_to_jira_and_one_to_local_and_escalates_on_jira(
    client: Client, emulator: JiraEmulator, routing_file: Path, tmp_path: Path
) -> None:
    settings = Settings(
        home=tmp_path,
        jira_url=emulator.url,
        jira_email=EMAIL,
        jira_api_token=SecretStr(API_TOKEN),
        routing_file=routing_file,
    )
    task_queue = f"tq-{uuid.uuid4()}"
    policy = quick_items_policy()
    async with build_worker(client, settings, task_queue=task_queue):
        handle = await declare(client, task_queue, policy)
        await handle.execute_update(IncidentWorkflow.resolve, Transition())
        await handle.execute_update(IncidentWorkflow.submit_review, review(routing_file, policy))
        key = (await handle.query(IncidentWorkflow.state)).key
        on_jira = await eventually(
            lambda: item_state(client, action_workflow_id(key, 1)),
            lambda item: len(item.escalations) >= 2,
            timeout=20,
        )
        on_local = await item_state(client, action_workflow_id(key, 2))
        assert on_jira.ticket is not None and on_jira.ticket.key == "PAY-1"
        assert on_jira.ticket.url == f"{emulator.url}/browse/PAY-1"
        assert on_local.ticket is not None and on_local.ticket.target == "local"
        assert on_local.state is ActionItemState.OPEN

        issue = emulator.issue("PAY-1")
        assert issue.summary == f"[{key}] Cap the pool"
        assert (issue.issuetype, issue.priority, issue.components) == (
            "Bug",
            "Highest",
            ["billing-api"],
        )
        assert issue.assignee == ALICE
        assert issue.duedate == f"{on_jira.due_at:%Y-%m-%d}"
        assert {"afteraction", "short_term_mitigation", "sev2", f"afteraction-key:{key}-1"} <= set(
            issue.labels
        )
        assert "SLO: https://slo.example/checkout" in issue.description
        assert f"afteraction:key={action_workflow_id(key, 1)}" in issue.description

        def texts() -> list[str]:
            return [comment.body for comment in emulator.issue("PAY-1").comments]

        found = await eventually(
            lambda: asyncio.to_thread(texts),
            lambda bodies: any(f"[~accountid:{LEAD}]" in body for body in bodies),
        )
        assert any(body.startswith(f"[~accountid:{ALICE}] escalated to owner") for body in found)
        labels = await eventually(
            lambda: asyncio.to_thread(lambda: set(emulator.issue("PAY-1").labels)),
            lambda now: "escalated-team_lead" in now,
        )
        assert "escalated-owner" in labels
        assert emulator.counts["POST /rest/api/2/issue"] == 1
        # A first attempt cannot have been preceded by another: it creates without a look-up.
        assert emulator.counts["GET /rest/api/2/search/jql"] == 0
        for number in (1, 2):
            await client.get_workflow_handle(action_workflow_id(key, number)).terminate("done")
        await handle.terminate("done")


async def test_worker_killed_after_jira_created_the_issue_leaves_one_issue(
    dev_env: WorkflowEnvironment, emulator: JiraEmulator, routing_file: Path, tmp_path: Path
) -> None:
    client = dev_env.client
    address = client.service_client.config.target_host
    task_queue = f"tq-{uuid.uuid4()}"
    home, marker = tmp_path / "home", tmp_path / "killed"
    env = {
        "AFTERACTION_JIRA_URL": emulator.url,
        "AFTERACTION_JIRA_EMAIL": EMAIL,
        "AFTERACTION_JIRA_API_TOKEN": API_TOKEN,
        "AFTERACTION_ROUTING_FILE": str(routing_file),
    }
    key = new_key()
    item = action_workflow_id(key, 1)
    policy = slow_policy()
    with worker_processes() as workers:
        workers.append(
            # Only the Jira create kills it: the local item's create runs at the same time.
            start_worker(
                address,
                task_queue,
                home,
                tmp_path / "first.log",
                die_marker=marker,
                die_on="jira:",
                settings=env,
            )
        )
        handle = await declare(client, task_queue, policy, key=key)
        await handle.execute_update(IncidentWorkflow.resolve, Transition())
        submitted = asyncio.create_task(
            handle.execute_update(IncidentWorkflow.submit_review, review(routing_file, policy))
        )

        await killed_worker_log(workers[0], tmp_path / "first.log", item)
        assert [issue.key for issue in emulator.issues("PAY")] == ["PAY-1"]
        assert (await ensure_ticket_attempts(client, item))[0] == 0

        workers.append(
            start_worker(address, task_queue, home, tmp_path / "second.log", settings=env)
        )

        async def state() -> ActionItem:
            return await client.get_workflow_handle(item).query("state", result_type=ActionItem)

        opened = await eventually(
            state,
            lambda found: found.state is ActionItemState.OPEN,
            timeout=TRACKER_TIMEOUT.total_seconds() + 25,
            interval=0.5,
        )
        await asyncio.wait_for(submitted, timeout=15)
        assert opened.ticket is not None and opened.ticket.key == "PAY-1"
        assert [issue.key for issue in emulator.issues("PAY")] == ["PAY-1"]
        assert emulator.counts["POST /rest/api/2/issue"] == 1
        # The retry after the kill looked the issue up (and found it) instead of creating one.
        assert emulator.counts["GET /rest/api/2/search/jql"] >= 1
        completed, attempts = await ensure_ticket_attempts(client, item)
        assert completed == 1 and attempts[-1] >= 2, attempts
        for number in (1, 2):
            await client.get_workflow_handle(action_workflow_id(key, number)).terminate("done")
        await handle.terminate("done")

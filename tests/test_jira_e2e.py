"""Jira end to end: the emulator sends signed webhooks to the real API, which signals the real
workflows on the dev server; the reconciler catches a lost webhook and closes a duplicate.

People act in the emulator as they would in Jira's UI (`transition_as`, `comment_as`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from jira import JIRA
from pydantic import SecretStr
from temporalio.client import Client, WorkflowHandle

from domain.action_item import ActionItem, ActionItemState, action_workflow_id
from domain.commands import Transition
from domain.reconcile import ReconcileResult
from domain.review import SubmitReview
from domain.routing import load_routing
from integrations import ticket_markers
from settings import Settings
from tests.e2e_trackers import finish, item_reaches, reconcile, serving
from tests.emulators.jira import JiraEmulator
from tests.emulators.webhook_sender import sign
from tests.helpers import declare, eventually
from tests.policies import slow_policy
from tests.reviews import full_review, item_spec, item_state
from workflows.incident import IncidentWorkflow

EMAIL = "bot@example.com"
API_TOKEN = "atl-emulated-token"
SECRET = "jira-webhook-secret-for-tests"
ALICE = "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077"
TARGET = "jira:PAY"
ROUTING = f"""
[teams.payments]
tracker = "{TARGET}"
assignee = "{ALICE}"
"""


@pytest.fixture
def emulator() -> Iterator[JiraEmulator]:
    emu = JiraEmulator(flavor="cloud", email=EMAIL, api_token=API_TOKEN).start()
    emu.add_project("PAY")
    emu.add_user(ALICE, "Alice")
    try:
        yield emu
        assert emu.contract_errors == []
    finally:
        emu.stop()


@dataclass
class World:
    client: Client
    emulator: JiraEmulator
    settings: Settings
    task_queue: str
    api_url: str

    async def incident_with_jira_items(self, *titles: str) -> tuple[WorkflowHandle, str]:
        assert self.settings.routing_file is not None
        routing = load_routing(self.settings.routing_file)
        handle = await declare(self.client, self.task_queue, slow_policy())
        await handle.execute_update(IncidentWorkflow.resolve, Transition())
        await handle.execute_update(
            IncidentWorkflow.submit_review,
            SubmitReview(
                review=full_review(*(item_spec("payments", title) for title in titles)),
                routes={"payments": routing.route("payments", slow_policy())},
            ),
        )
        key = (await handle.query(IncidentWorkflow.state)).key
        for number in range(1, len(titles) + 1):
            await self.item(key, number, lambda item: item.state is ActionItemState.OPEN)
        return handle, key

    async def item(
        self, key: str, number: int, wanted: ActionItemState | Callable[[ActionItem], bool]
    ) -> ActionItem:
        return await item_reaches(self.client, key, number, wanted)

    async def reconcile(self, since: datetime) -> ReconcileResult:
        return await reconcile(self.client, self.task_queue, {TARGET: since})


@asynccontextmanager
async def world(client: Client, emulator: JiraEmulator, tmp_path: Path) -> AsyncIterator[World]:
    routing_file = tmp_path / "routing.toml"
    routing_file.write_text(ROUTING, encoding="utf-8")
    settings = Settings(
        home=tmp_path,
        temporal_address=client.service_client.config.target_host,
        namespace=client.namespace,
        jira_url=emulator.url,
        jira_email=EMAIL,
        jira_api_token=SecretStr(API_TOKEN),
        jira_webhook_secret=SecretStr(SECRET),
        routing_file=routing_file,
    )

    def listen(api_url: str) -> None:
        emulator.send_webhooks_to(f"{api_url}/webhooks/jira", SECRET)

    async with serving(client, settings, listen) as (task_queue, api_url):
        yield World(client, emulator, settings, task_queue, api_url)


async def test_transitions_and_comments_in_jira_reach_the_item_through_signed_webhooks(
    client: Client, emulator: JiraEmulator, tmp_path: Path
) -> None:
    async with world(client, emulator, tmp_path) as w:
        incident, key = await w.incident_with_jira_items("Cap the pool size")
        created = await item_state(client, action_workflow_id(key, 1))
        assert created.ticket is not None and created.ticket.key == "PAY-1"

        emulator.transition_as("PAY-1", "Done", by=ALICE)
        await w.item(key, 1, ActionItemState.VERIFYING)
        closed = emulator.deliveries[-1]
        assert closed.status == 202
        emulator.transition_as("PAY-1", "To Do", by=ALICE)
        await w.item(key, 1, ActionItemState.OPEN)

        # Jira Cloud's comment_created names only the issue: the API finds the item by key.
        before = (await item_state(client, action_workflow_id(key, 1))).last_activity_at
        emulator.comment_as("PAY-1", "rolled out to 10%", by=ALICE)
        comment = emulator.deliveries[-1]
        assert comment.event == "comment_created" and comment.status == 202
        routed = await eventually(
            lambda: item_state(client, action_workflow_id(key, 1)),
            lambda item: item.last_activity_at > before,
        )
        assert routed.state is ActionItemState.OPEN

        # A forged delivery is refused.
        forged = {**closed.headers, "X-Hub-Signature": sign("not-the-secret", closed.body)}
        async with httpx.AsyncClient(base_url=w.api_url) as http:
            answer = await http.post("/webhooks/jira", content=closed.body, headers=forged)
        assert answer.status_code == 401
        await finish(client, incident, key, 1)


async def test_the_reconciler_catches_a_lost_webhook_and_closes_a_duplicate(
    client: Client, emulator: JiraEmulator, tmp_path: Path
) -> None:
    async with world(client, emulator, tmp_path) as w:
        incident, key = await w.incident_with_jira_items("Cap the pool", "Alert on it")
        item_id = action_workflow_id(key, 2)
        # The items create in either order: find whose ticket is whose.
        one, two = [await item_state(client, action_workflow_id(key, n)) for n in (1, 2)]
        assert one.ticket is not None and two.ticket is not None
        emulator.drop_next_webhooks(1)
        emulator.transition_as(two.ticket.key, "Done", by=ALICE)
        assert emulator.deliveries[-1].status is None  # lost on the way

        # A second ticket carrying item 1's key, as a create retried past the index lag makes.
        jira = JIRA(server=emulator.url, basic_auth=(EMAIL, API_TOKEN), get_server_info=False)
        original = emulator.issue(one.ticket.key)
        duplicate = jira.create_issue(
            fields={
                "project": {"key": "PAY"},
                "issuetype": {"name": "Task"},
                "summary": original.summary,
                "labels": list(original.labels),
            }
        )
        jira.close()

        emulator.reset_counts()
        result = await eventually(
            lambda: w.reconcile(datetime.now(UTC) - timedelta(hours=1)),
            lambda result: result.signalled == 1,  # visibility may lag a moment behind
        )
        [report] = [r for r in result.reports if r.target == TARGET]
        assert report.error is None
        assert [d.workflow_id for d in report.drift] == [item_id]
        assert [(d.duplicate, d.original) for d in report.duplicates_closed] == [
            (duplicate.key, one.ticket.key)
        ]
        await w.item(key, 2, ActionItemState.VERIFYING)
        assert emulator.issue(duplicate.key).status.category == "done"
        assert emulator.issue(one.ticket.key).status.category != "done"
        assert (await item_state(client, action_workflow_id(key, 1))).state is (
            ActionItemState.OPEN
        )
        searches = {k: v for k, v in emulator.counts.items() if "search" in k}
        assert sum(searches.values()) >= 1

        # The next run: the duplicate is closed already, nothing differs, one search.
        emulator.reset_counts()
        again = await w.reconcile(result.watermarks[TARGET])
        [second] = [r for r in again.reports if r.target == TARGET]
        assert again.signalled == 0 and second.duplicates_closed == []
        assert sum(v for k, v in emulator.counts.items() if "search" in k) == 1
        assert ticket_markers.LABEL_PREFIX not in json.dumps(
            list(emulator.issue(duplicate.key).labels)
        )
        await finish(client, incident, key, 2)


async def test_an_outage_and_a_429_end_with_every_ticket_created_once_and_none_early(
    client: Client, emulator: JiraEmulator, tmp_path: Path
) -> None:
    create = "POST /rest/api/2/issue"
    emulator.fail_next(2, status=502, method="GET", path="/rest/api/2/search/jql")
    emulator.rate_limit_next(1, retry_after=4, method="POST", path="/rest/api/2/issue")
    async with world(client, emulator, tmp_path) as w:
        titles = ("Cap the pool", "Alert on saturation", "Load-test checkout")
        incident, key = await w.incident_with_jira_items(*titles)
        items = [await item_state(client, action_workflow_id(key, n)) for n in (1, 2, 3)]
        assert sorted(item.ticket.key for item in items if item.ticket) == [
            "PAY-1",
            "PAY-2",
            "PAY-3",
        ]
        assert len(emulator.issues("PAY")) == 3
        keys = {label for issue in emulator.issues("PAY") for label in issue.labels}
        assert len({label for label in keys if label.startswith("afteraction-key:")}) == 3
        [limited] = [r for r in emulator.requests if r.status == 429]
        after = [r for r in emulator.requests if r.at > limited.answered + 0.05]
        assert after and all(r.at >= limited.answered + 4 - 0.1 for r in after), [
            (r.path, r.at - limited.answered) for r in after
        ]
        assert emulator.counts[create] == 4  # three creates and the refused one
        await finish(client, incident, key, 3)

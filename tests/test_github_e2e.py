"""GitHub end to end: the emulator sends signed webhooks to the real API, which signals the real
workflows on the dev server; the reconciler catches what a lost webhook did not say.

People act in the emulator as they would in GitHub's UI (`close_as`, `reopen_as`, `comment_as`);
afteraction's own calls make GitHub send deliveries too, which must not count as anyone's work.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client, WorkflowHandle

from domain.action_item import ActionItem, ActionItemState, TeamRoute, action_workflow_id
from domain.commands import Transition
from domain.policy import Policy, Rung
from domain.reconcile import ReconcileResult
from domain.review import SubmitReview
from settings import Settings
from tests.e2e_trackers import finish, item_reaches, reconcile, serving
from tests.emulators.github import GitHubEmulator, github_serving
from tests.emulators.webhook_sender import sign
from tests.helpers import declare, eventually
from tests.policies import slow_policy
from tests.reviews import full_review, item_spec, item_state, quick_items_policy
from workflows.incident import IncidentWorkflow

TOKEN = "ghp_emulated_token"
SECRET = "webhook-secret-for-tests"
REPO = "acme/payments"
TARGET = f"github:{REPO}"
LIST_ISSUES = "GET /repos/{owner}/{repo}/issues"


@pytest.fixture
def emulator() -> Iterator[GitHubEmulator]:
    with github_serving(REPO, token=TOKEN) as emulator:
        yield emulator


@dataclass
class World:
    client: Client
    emulator: GitHubEmulator
    settings: Settings
    task_queue: str
    api_url: str

    async def incident_with_github_items(
        self, *titles: str, policy: Policy | None = None
    ) -> tuple[WorkflowHandle, str]:
        handle = await declare(self.client, self.task_queue, policy or slow_policy())
        await handle.execute_update(IncidentWorkflow.resolve, Transition())
        route = TeamRoute(
            team="payments", target=TARGET, contacts={Rung.TEAM_LEAD: ["payments-lead"]}
        )
        await handle.execute_update(
            IncidentWorkflow.submit_review,
            SubmitReview(
                review=full_review(*(item_spec("payments", title) for title in titles)),
                routes={"payments": route},
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

    async def reconcile(self, watermarks: dict[str, datetime] | None = None) -> ReconcileResult:
        return await reconcile(self.client, self.task_queue, watermarks)


@asynccontextmanager
async def world(client: Client, emulator: GitHubEmulator, tmp_path: Path) -> AsyncIterator[World]:
    settings = Settings(
        home=tmp_path,
        temporal_address=client.service_client.config.target_host,
        namespace=client.namespace,
        github_token=SecretStr(TOKEN),
        github_base_url=emulator.base_url,
        github_webhook_secret=SecretStr(SECRET),
    )

    def listen(api_url: str) -> None:
        emulator.send_webhooks_to(f"{api_url}/webhooks/github", SECRET)

    async with serving(client, settings, listen) as (task_queue, api_url):
        yield World(client, emulator, settings, task_queue, api_url)


async def test_closing_and_reopening_the_issue_through_signed_webhooks_moves_the_item(
    client: Client, emulator: GitHubEmulator, tmp_path: Path
) -> None:
    async with world(client, emulator, tmp_path) as w:
        incident, key = await w.incident_with_github_items("Cap the pool size")
        created = await item_state(client, action_workflow_id(key, 1))
        assert created.ticket is not None and created.ticket.key == f"{REPO}#1"
        emulator.wait_for_webhooks()
        # GitHub told the API about afteraction's own create: not acted on.
        own = [d for d in emulator.deliveries if d.status is not None]
        assert own and all(d.status == 204 for d in own), [(d.event, d.status) for d in own]

        emulator.comment_as(REPO, 1, "working on it: PR #42", by="alice")
        emulator.close_as(REPO, 1, by="alice")
        verifying = await w.item(key, 1, ActionItemState.VERIFYING)
        assert verifying.closed_at is not None
        emulator.wait_for_webhooks()
        routed = [d for d in emulator.deliveries if d.status == 202]
        assert [d.payload["action"] for d in routed] == ["created", "closed"]
        close = routed[-1]
        answer = httpx.Response(202, text=close.answer).json()
        assert answer == {
            "event": "closed",
            "ticket": f"{REPO}#1",
            "workflow_id": action_workflow_id(key, 1),
        }

        emulator.reopen_as(REPO, 1, by="bob")
        await w.item(key, 1, ActionItemState.OPEN)

        # The close delivered again (same X-GitHub-Delivery) changes nothing the second time.
        again = emulator.webhooks.redeliver(close)
        emulator.wait_for_webhooks()
        assert again.status == 202
        after = await item_state(client, action_workflow_id(key, 1))
        assert after.state is ActionItemState.OPEN

        # A forged delivery is refused before anything is read.
        body = close.body.replace(b'"closed"', b'"reopened"')
        async with httpx.AsyncClient(base_url=w.api_url) as http:
            forged = await http.post(
                "/webhooks/github",
                content=body,
                headers={**close.headers, "X-Hub-Signature-256": sign("not-the-secret", body)},
            )
        assert forged.status_code == 401
        await finish(client, incident, key, 1)


async def test_the_reconciler_catches_a_dropped_webhook_with_one_call_per_target(
    client: Client, emulator: GitHubEmulator, tmp_path: Path
) -> None:
    async with world(client, emulator, tmp_path) as w:
        incident, key = await w.incident_with_github_items("Cap the pool", "Alert on it")
        emulator.wait_for_webhooks()
        two = await item_state(client, action_workflow_id(key, 2))
        assert two.ticket is not None
        number = int(two.ticket.key.split("#")[1])  # the items create in either order
        emulator.drop_next_webhooks(1)
        emulator.close_as(REPO, number, by="alice")
        emulator.wait_for_webhooks()
        assert emulator.deliveries[-1].dropped
        assert (await item_state(client, action_workflow_id(key, 2))).state is (
            ActionItemState.OPEN
        )

        emulator.reset_counts()
        since = datetime.now(UTC) - timedelta(hours=1)
        result = await eventually(
            lambda: w.reconcile({TARGET: since}),
            lambda result: result.signalled == 1,  # visibility may lag a moment behind
        )
        [report] = [r for r in result.reports if r.target == TARGET]
        assert [d.workflow_id for d in report.drift] == [action_workflow_id(key, 2)]
        assert report.drift[0].change.event == "closed"
        assert report.error is None
        await w.item(key, 2, ActionItemState.VERIFYING)
        assert (await item_state(client, action_workflow_id(key, 1))).state is (
            ActionItemState.OPEN
        )
        calls_per_run = emulator.counts[LIST_ISSUES]
        assert dict(emulator.counts) == {LIST_ISSUES: calls_per_run}

        # The next run starts from this run's watermark and finds nothing to tell.
        emulator.reset_counts()
        second = await w.reconcile(result.watermarks)
        assert second.signalled == 0
        assert dict(emulator.counts) == {LIST_ISSUES: 1}
        assert second.watermarks[TARGET] >= result.watermarks[TARGET]

        await finish(client, incident, key, 2)


async def test_a_target_that_fails_keeps_its_watermark_and_the_run_goes_on(
    client: Client, emulator: GitHubEmulator, tmp_path: Path
) -> None:
    async with world(client, emulator, tmp_path) as w:
        incident, key = await w.incident_with_github_items("Cap the pool")
        since = datetime.now(UTC) - timedelta(hours=1)
        emulator.fail_next(10, status=502, method="GET", path="/repos/{owner}/{repo}/issues")
        result = await eventually(
            lambda: w.reconcile({TARGET: since}),
            lambda result: any(r.target == TARGET for r in result.reports),
        )
        [report] = [r for r in result.reports if r.target == TARGET]
        assert report.error is not None and "502" in report.error
        assert result.watermarks[TARGET] == since
        await finish(client, incident, key, 1)


async def test_outage_and_rate_limit_end_with_every_ticket_created_once_and_none_early(
    client: Client, emulator: GitHubEmulator, tmp_path: Path
) -> None:
    create = "POST /repos/{owner}/{repo}/issues"
    emulator.fail_next(2, status=502, method="GET", path="/repos/{owner}/{repo}/issues")
    emulator.fail_next(1, status=503, method="POST", path="/repos/{owner}/{repo}/issues")
    reset = emulator.rate_limit_next(1, status=403, reset_in=6, method="POST", path=None)
    async with world(client, emulator, tmp_path) as w:
        titles = ("Cap the pool", "Alert on saturation", "Load-test checkout")
        incident, key = await w.incident_with_github_items(*titles)
        items = [await item_state(client, action_workflow_id(key, n)) for n in (1, 2, 3)]
        issues = emulator.repo(REPO).issues
        assert len(issues) == 3 and emulator.counts[create] >= 3
        assert sorted(item.ticket.key for item in items if item.ticket) == [
            f"{REPO}#{n}" for n in (1, 2, 3)
        ]
        idempotency = [
            label
            for issue in issues.values()
            for label in issue.labels
            if "afteraction-key" in label
        ]
        assert len(set(idempotency)) == 3  # one issue per item
        [limited] = [r for r in emulator.requests if r.status == 403]
        after = [r for r in emulator.requests if r.at > limited.answered + 0.05]
        assert after and all(r.at >= reset for r in after), [(r.path, r.at - reset) for r in after]
        await finish(client, incident, key, 3)


async def test_afteractions_own_escalation_comments_come_back_but_are_not_activity(
    client: Client, emulator: GitHubEmulator, tmp_path: Path
) -> None:
    async with world(client, emulator, tmp_path) as w:
        incident, key = await w.incident_with_github_items(
            "Cap the pool size", policy=quick_items_policy()
        )
        before = await item_state(client, action_workflow_id(key, 1))
        escalated = await w.item(key, 1, lambda item: len(item.escalations) >= 2)
        emulator.wait_for_webhooks()
        routed = [d for d in emulator.deliveries if d.status == 202]
        events = {(d.event, d.payload["action"]) for d in routed}
        assert {("issue_comment", "created"), ("issues", "labeled")} <= events
        after = await item_state(client, action_workflow_id(key, 1))
        # The ladder's own comments and labels did not reset the item's activity clock.
        assert after.last_activity_at == before.last_activity_at
        assert len(after.escalations) >= len(escalated.escalations)
        await finish(client, incident, key, 1)

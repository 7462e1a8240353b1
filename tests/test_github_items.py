"""Action items routed to GitHub, end to end: the real worker and workflows on the dev
server, the real PyGithub client, the contract-checked emulator. One incident mixes a
GitHub team and a local one; the GitHub item's ladder lands on its issue."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import github
import pytest
from pydantic import SecretStr
from temporalio.client import Client

from domain.action_item import ActionItemState, TeamRoute, action_workflow_id
from domain.commands import Transition
from domain.policy import Rung
from domain.review import SubmitReview
from settings import Settings
from tests.emulators.github import GitHubEmulator, github_serving
from tests.helpers import declare, eventually
from tests.reviews import full_review, item_spec, item_state, local_route, quick_items_policy
from worker import build_worker
from workflows.incident import IncidentWorkflow

TOKEN = "ghp_emulated_token"
REPO = "acme/payments"


@pytest.fixture
def emulator() -> Iterator[GitHubEmulator]:
    with github_serving(REPO, token=TOKEN) as emulator:
        yield emulator


async def test_one_incident_sends_one_item_to_github_and_one_to_local_and_escalates_on_github(
    client: Client, emulator: GitHubEmulator, tmp_path: Path
) -> None:
    settings = Settings(
        home=tmp_path, github_token=SecretStr(TOKEN), github_base_url=emulator.base_url
    )
    task_queue = f"tq-{uuid.uuid4()}"
    async with build_worker(client, settings, task_queue=task_queue):
        handle = await declare(client, task_queue, quick_items_policy())
        await handle.execute_update(IncidentWorkflow.resolve, Transition())
        github_route = TeamRoute(
            team="payments",
            target=f"github:{REPO}",
            assignee="pat",
            contacts={Rung.TEAM_LEAD: ["payments-lead"]},
        )
        await handle.execute_update(
            IncidentWorkflow.submit_review,
            SubmitReview(
                review=full_review(
                    item_spec("payments", "Cap the pool"),
                    item_spec("platform", "Alert on saturation", kind="long_term_systemic"),
                ),
                routes={"payments": github_route, "platform": local_route("platform")},
            ),
        )
        key = (await handle.query(IncidentWorkflow.state)).key
        on_github = await eventually(
            lambda: item_state(client, action_workflow_id(key, 1)),
            lambda item: len(item.escalations) >= 2,
            timeout=20,
        )
        on_local = await item_state(client, action_workflow_id(key, 2))
        assert on_github.ticket is not None and on_github.ticket.target == f"github:{REPO}"
        assert on_github.ticket.key == f"{REPO}#1"
        assert on_local.ticket is not None and on_local.ticket.target == "local"
        assert on_local.state is ActionItemState.OPEN

        gh = github.Github(base_url=emulator.base_url, auth=github.Auth.Token(TOKEN))
        issue = gh.get_repo(REPO).get_issue(1)

        def comments() -> list[str]:
            return [comment.body for comment in issue.get_comments()]

        texts = await eventually(
            lambda: asyncio.to_thread(comments),
            lambda found: any("@payments-lead" in text for text in found),
        )
        assert any(text.startswith("@pat escalated to owner") for text in texts)
        labels = {label.name for label in gh.get_repo(REPO).get_issue(1).labels}
        assert {"afteraction", "escalated:owner", "escalated:team_lead"} <= labels
        assert emulator.counts["POST /repos/{owner}/{repo}/issues"] == 1
        gh.close()
        for number in (1, 2):
            await client.get_workflow_handle(action_workflow_id(key, number)).terminate("done")
        await handle.terminate("done")

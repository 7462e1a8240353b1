"""An action item whose risk is accepted closes its ticket as won't do, with the approver and
the rationale in a comment, on each tracker: GitHub (state_reason not_planned), Jira (the
Won't Do resolution where the done transition's screen takes one), the local tracker
(not_planned). The real worker on the dev server, the real clients, the emulators."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.client import Client

from domain.action_item import AcceptRisk, ActionItemState, TeamRoute, action_workflow_id
from domain.commands import Transition
from domain.review import SubmitReview
from integrations.local import LocalTracker
from settings import Settings
from store import configured_store
from store.facts import FactsRepository
from tests.emulators.github import GitHubEmulator, github_serving
from tests.emulators.jira import JiraEmulator, JiraWorkflow, Status
from tests.emulators.jira import Transition as JiraTransition
from tests.helpers import declare, eventually
from tests.policies import slow_policy
from tests.reviews import full_review, item_spec, item_state, local_route
from worker import build_worker
from workflows.incident import IncidentWorkflow

GITHUB_TOKEN = "ghp_emulated_token"
REPO = "acme/payments"
JIRA_EMAIL, JIRA_TOKEN = "bot@example.com", "atl-emulated-token"
# A done transition whose screen takes the resolution, as Jira's own templates have.
WORKFLOW = JiraWorkflow(
    statuses=[Status("To Do", "10000", "new"), Status("Done", "10002", "done")],
    transitions=[
        JiraTransition("21", "Done", "Done", ("To Do",), screen=("resolution",)),
        JiraTransition("41", "Reopen", "To Do", ("Done",)),
    ],
)


@pytest.fixture
def github_emulator() -> Iterator[GitHubEmulator]:
    with github_serving(REPO, token=GITHUB_TOKEN) as emulator:
        yield emulator


@pytest.fixture
def jira_emulator() -> Iterator[JiraEmulator]:
    emu = JiraEmulator(flavor="cloud", email=JIRA_EMAIL, api_token=JIRA_TOKEN).start()
    emu.add_project("OPS", issue_types=("Task",), workflow=WORKFLOW)
    try:
        yield emu
        assert emu.contract_errors == []
    finally:
        emu.stop()


def three_trackers(home: Path, github: GitHubEmulator, jira: JiraEmulator) -> Settings:
    """A worker's settings for the emulated GitHub and Jira, and the local tracker in `home`."""
    return Settings(
        home=home,
        github_token=SecretStr(GITHUB_TOKEN),
        github_base_url=github.base_url,
        jira_url=jira.url,
        jira_email=JIRA_EMAIL,
        jira_api_token=SecretStr(JIRA_TOKEN),
    )


def three_routes() -> dict[str, TeamRoute]:
    """A team on each tracker: payments on GitHub, ops on Jira, platform on the local one."""
    return {
        "payments": TeamRoute(team="payments", target=f"github:{REPO}"),
        "ops": TeamRoute(team="ops", target="jira:OPS", issue_type="Task"),
        "platform": local_route("platform"),
    }


async def opened(client: Client, workflow_id: str) -> None:
    """Once the item has its ticket."""
    await eventually(
        lambda: item_state(client, workflow_id), lambda item: item.state is ActionItemState.OPEN
    )


async def test_accepting_the_risk_closes_the_ticket_as_wont_do_on_every_tracker(
    client: Client, github_emulator: GitHubEmulator, jira_emulator: JiraEmulator, tmp_path: Path
) -> None:
    settings = three_trackers(tmp_path, github_emulator, jira_emulator)
    task_queue = f"tq-{uuid.uuid4()}"
    routes = three_routes()
    async with build_worker(client, settings, task_queue=task_queue):
        handle = await declare(client, task_queue, slow_policy())
        await handle.execute_update(IncidentWorkflow.resolve, Transition())
        items = [item_spec(team, f"Fix it for {team}") for team in routes]
        await handle.execute_update(
            IncidentWorkflow.submit_review,
            SubmitReview(review=full_review(*items), routes=routes),
        )
        key = (await handle.query(IncidentWorkflow.state)).key
        workflow_ids = [action_workflow_id(key, number) for number in (1, 2, 3)]
        for workflow_id in workflow_ids:
            await opened(client, workflow_id)
            await client.get_workflow_handle(workflow_id).execute_update(
                "accept_risk", AcceptRisk(rationale="replaced by the rewrite", approver="vp-eng")
            )
        closed = await handle.result()
        assert {item.state for item in closed.action_items} == {ActionItemState.ACCEPTED}
        # The incident closes on its items' reports; each item ends only once its ticket calls
        # (the comment, the close) are done.
        for workflow_id in workflow_ids:
            await client.get_workflow_handle(workflow_id).result()

    github_issue = github_emulator.repo(REPO).issues[1]
    assert (github_issue.state, github_issue.state_reason) == ("closed", "not_planned")
    assert any("risk accepted by vp-eng" in c.body for c in github_issue.comments)

    jira_issue = jira_emulator.issue("OPS-1")
    assert (jira_issue.status.category, jira_issue.resolution) == ("done", "Won't Do")

    local = LocalTracker.configured(settings)
    [ticket] = await asyncio.to_thread(local.tickets)
    assert (ticket.status.value, ticket.resolution) == ("closed", "not_planned")
    comments = await asyncio.to_thread(local.comments, ticket.ref.key)
    assert any(
        "risk accepted by vp-eng (won't do): replaced by the rewrite" in c.text for c in comments
    )
    # The read model keeps who accepted each risk (the weekly digest lists them).
    rows = await eventually(
        lambda: asyncio.to_thread(FactsRepository(configured_store(settings)).action_items),
        lambda found: {row["approver"] for row in found.values()} == {"vp-eng"},
    )
    assert len(rows) == 3

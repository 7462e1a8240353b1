"""Tracker API calls: per action item over its life, and per reconcile run as open items grow.

    .venv/bin/python -m bench.tracker_calls --items 20 --open 10,100,1000

For each tracker (GitHub, Jira; `--trackers`):

Life: one incident whose review routes N items to a tracker on its emulator (the real client
library over HTTP). Each item's ticket is created; a person closes it in the tracker, whose
signed webhook reaches the real API and moves the item to verifying; the item is verified. The
emulator counts every API call by endpoint (a person's actions are not API calls). The default
policy gives no reminder or escalation inside the run, so the figures leave those comments out.

Reconcile: for each count of open items, that many ActionItemWorkflows run in a fresh project
and create their tickets, with the emulator's clock an hour back (so the tickets were last
touched before the runs measured).
`first_run_calls` reads every open ticket (a watermark before them all: what a first run or a
long outage reads, one call per page); `steady_run_calls` is a run a minute after the previous
one, with a few tickets closed meanwhile (the webhooks lost), which it signals.

Needs nothing running: its own dev server, worker, API and emulators. One JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from pydantic import SecretStr
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from bench.output import emit_and_exit, stdout_to_stderr
from domain import search_attributes
from domain.action_item import (
    ActionItemState,
    StartActionItem,
    TeamRoute,
    VerifyItem,
    action_workflow_id,
)
from domain.commands import Transition
from domain.policy import default_policy
from domain.reconcile import ReconcileRequest, TargetReport
from domain.review import SubmitReview
from domain.severity import Severity
from integrations import github as github_module
from integrations.rate_limits import WriteBudget
from settings import Settings
from telemetry.logs import configure_logging
from tests.api_server import serving_api
from tests.emulators.github import GitHubEmulator
from tests.emulators.jira import JiraEmulator
from tests.helpers import declare, eventually, new_key
from tests.reviews import full_review, item_spec
from worker import build_worker
from workflows.action_item import ActionItemWorkflow
from workflows.incident import IncidentWorkflow
from workflows.reconcile import TicketReconcilerWorkflow

SECRET = "bench-webhook-secret"
CLOSED_BETWEEN_RUNS = 3
GITHUB_TOKEN = "ghp_bench_token"
JIRA_EMAIL, JIRA_TOKEN, JIRA_PERSON = "bot@example.com", "atl-bench-token", "557058:bench-alice"


class Rig(Protocol):
    """One tracker's emulator and what the benchmark does with it."""

    name: str
    counts: Counter[str]
    contract_errors: list[str]

    def settings(self) -> dict[str, Any]: ...
    def listen(self, api_url: str) -> None: ...
    def add_target(self, name: str) -> str: ...
    def close_as_a_person(self, target: str, ticket_key: str) -> None: ...
    def set_clock(self, at: datetime | None) -> None: ...
    def reset_counts(self) -> None: ...
    def drop_next_webhooks(self, n: int) -> None: ...
    def wait_for_webhooks(self) -> None: ...


class GitHubRig:
    name = "github"

    def __init__(self, emulator: GitHubEmulator) -> None:
        self.emulator = emulator
        self.counts = emulator.counts
        self.contract_errors = emulator.contract_errors

    def settings(self) -> dict[str, Any]:
        return {
            "github_token": SecretStr(GITHUB_TOKEN),
            "github_base_url": self.emulator.base_url,
            "github_webhook_secret": SecretStr(SECRET),
        }

    def listen(self, api_url: str) -> None:
        self.emulator.send_webhooks_to(f"{api_url}/webhooks/github", SECRET)

    def add_target(self, name: str) -> str:
        self.emulator.add_repo(f"acme/{name.lower()}")
        return f"github:acme/{name.lower()}"

    def close_as_a_person(self, target: str, ticket_key: str) -> None:
        repo, number = ticket_key.split("#")
        self.emulator.close_as(repo, int(number), by="alice")

    def set_clock(self, at: datetime | None) -> None:
        """The emulator's time: `at` (fixed), or the real time again with None."""
        self.emulator.clock = (lambda: at) if at is not None else (lambda: datetime.now(UTC))

    def reset_counts(self) -> None:
        self.emulator.reset_counts()

    def drop_next_webhooks(self, n: int) -> None:
        self.emulator.drop_next_webhooks(n)

    def wait_for_webhooks(self) -> None:
        self.emulator.wait_for_webhooks()


class JiraRig:
    name = "jira"

    def __init__(self, emulator: JiraEmulator) -> None:
        self.emulator = emulator
        self.counts = emulator.counts
        self.contract_errors = emulator.contract_errors
        emulator.add_user(JIRA_PERSON, "Alice")

    def settings(self) -> dict[str, Any]:
        return {
            "jira_url": self.emulator.url,
            "jira_email": JIRA_EMAIL,
            "jira_api_token": SecretStr(JIRA_TOKEN),
            "jira_webhook_secret": SecretStr(SECRET),
        }

    def listen(self, api_url: str) -> None:
        self.emulator.send_webhooks_to(f"{api_url}/webhooks/jira", SECRET)

    def add_target(self, name: str) -> str:
        self.emulator.add_project(name.upper())
        return f"jira:{name.upper()}"

    def close_as_a_person(self, target: str, ticket_key: str) -> None:
        self.emulator.transition_as(ticket_key, "Done", by=JIRA_PERSON)

    def set_clock(self, at: datetime | None) -> None:
        """The emulator's time: `at` (fixed), or the real time again with None."""
        self.emulator.clock = (lambda: at) if at is not None else (lambda: datetime.now(UTC))

    def reset_counts(self) -> None:
        self.emulator.reset_counts()

    def drop_next_webhooks(self, n: int) -> None:
        self.emulator.drop_next_webhooks(n)

    def wait_for_webhooks(self) -> None:
        return  # the Jira emulator delivers before the person's action returns


async def item_states(client: Client, ids: list[str]) -> list[ActionItemState]:
    states = []
    for workflow_id in ids:
        item = await client.get_workflow_handle(workflow_id).query(ActionItemWorkflow.state)
        states.append(item.state)
    return states


async def all_items_in(client: Client, ids: list[str], state: ActionItemState) -> None:
    await eventually(
        lambda: item_states(client, ids),
        lambda states: all(found is state for found in states),
        timeout=120,
    )


def calls_per_item(counts: Counter[str], n: int) -> dict[str, Any]:
    by_endpoint = {endpoint: round(count / n, 2) for endpoint, count in sorted(counts.items())}
    return {
        "items": n,
        "calls_per_item": round(sum(counts.values()) / n, 2),
        "calls_per_item_by_endpoint": by_endpoint,
    }


async def life(client: Client, rig: Rig, task_queue: str, n: int) -> dict[str, Any]:
    target = rig.add_target("life")
    handle = await declare(client, task_queue, default_policy())
    await handle.execute_update(IncidentWorkflow.resolve, Transition())
    route = TeamRoute(team="payments", target=target)
    specs = [item_spec("payments", f"Fix {number}") for number in range(1, n + 1)]
    await handle.execute_update(
        IncidentWorkflow.submit_review,
        SubmitReview(review=full_review(*specs), routes={"payments": route}),
    )
    key = (await handle.query(IncidentWorkflow.state)).key
    ids = [action_workflow_id(key, number) for number in range(1, n + 1)]
    await all_items_in(client, ids, ActionItemState.OPEN)  # tickets created
    for workflow_id in ids:
        item = await client.get_workflow_handle(workflow_id).query(ActionItemWorkflow.state)
        assert item.ticket is not None
        rig.close_as_a_person(target, item.ticket.key)
    await all_items_in(client, ids, ActionItemState.VERIFYING)  # webhooks routed
    for workflow_id in ids:
        await client.get_workflow_handle(workflow_id).execute_update(
            ActionItemWorkflow.verify, VerifyItem(evidence="error rate 0.01% for 7 days", by="bob")
        )
    await handle.result()  # every item is done: the incident closes itself
    rig.wait_for_webhooks()
    return calls_per_item(rig.counts, n)


async def reconcile_at(client: Client, rig: Rig, task_queue: str, n: int) -> dict[str, Any]:
    target = rig.add_target(f"open{n}")
    key = new_key()
    policy = default_policy().for_severity(Severity.SEV3).action_items
    starts = [
        StartActionItem(
            incident_key=key,
            incident_title="Checkout errors",
            number=number,
            severity=Severity.SEV3,
            spec=item_spec("payments", f"Fix {number}"),
            due_at=datetime.now(UTC) + timedelta(days=30),
            route=TeamRoute(team="payments", target=target),
            policy=policy,
        )
        for number in range(1, n + 1)
    ]
    # The items create their tickets with the emulator's clock an hour back: last touched
    # before the runs measured.
    seeded_at = datetime.now(UTC) - timedelta(hours=1)
    rig.set_clock(seeded_at)
    gate = asyncio.Semaphore(50)

    async def start_item(start: StartActionItem) -> None:
        async with gate:
            await client.start_workflow(
                ActionItemWorkflow.run,
                start,
                id=action_workflow_id(key, start.number),
                task_queue=task_queue,
            )

    await asyncio.gather(*(start_item(start) for start in starts))
    query = (
        f"WorkflowType = 'ActionItemWorkflow' AND ExecutionStatus = 'Running' AND "
        f"{search_attributes.TRACKER.name} = '{target}' AND "
        f"{search_attributes.TICKET_KEY.name} IS NOT NULL"
    )
    await eventually(
        lambda: client.count_workflows(query), lambda found: found.count >= n, timeout=600
    )
    rig.set_clock(None)

    async def reconcile(since: datetime) -> tuple[TargetReport, int]:
        rig.reset_counts()
        result = await client.execute_workflow(
            TicketReconcilerWorkflow.run,
            ReconcileRequest(watermarks={target: since}),
            id=f"reconcile-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        [report] = [r for r in result.reports if r.target == target]
        return report, sum(rig.counts.values())

    first, first_calls = await reconcile(seeded_at - timedelta(minutes=1))
    rig.drop_next_webhooks(CLOSED_BETWEEN_RUNS)  # only the reconciler can tell them
    for number in range(1, CLOSED_BETWEEN_RUNS + 1):
        item = await client.get_workflow_handle(action_workflow_id(key, number)).query(
            ActionItemWorkflow.state
        )
        assert item.ticket is not None
        rig.close_as_a_person(target, item.ticket.key)
    steady, steady_calls = await reconcile(datetime.now(UTC) - timedelta(minutes=1))
    for number in range(1, n + 1):
        await client.get_workflow_handle(action_workflow_id(key, number)).terminate("bench done")
    return {
        "open_items": n,
        "first_run_calls": first_calls,
        "first_run_tickets_read": first.tickets_read,
        "steady_run_calls": steady_calls,
        "steady_run_tickets_read": steady.tickets_read,
        "steady_run_signalled": len(steady.drift),
    }


@contextmanager
def rigs() -> Iterator[dict[str, Rig]]:
    with (
        GitHubEmulator(token=GITHUB_TOKEN) as github,
        JiraEmulator(flavor="cloud", email=JIRA_EMAIL, api_token=JIRA_TOKEN) as jira,
    ):
        yield {"github": GitHubRig(github), "jira": JiraRig(jira)}


async def run(items: int, open_counts: list[int], trackers: list[str]) -> dict[str, Any]:
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        search_attributes=search_attributes.ALL,
        dev_server_startup_timeout=timedelta(seconds=60),
    )
    result: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="afteraction-bench-") as home, rigs() as by_name:
            client = env.client
            fields: dict[str, Any] = {}
            for rig in by_name.values():
                fields.update(rig.settings())
            settings = Settings(
                home=Path(home),
                temporal_address=client.service_client.config.target_host,
                reconcile_every=timedelta(0),
                **fields,
            )
            task_queue = f"bench-{uuid.uuid4()}"
            # The bench counts calls, not GitHub's pace: lift the worker's 80-creates-a-minute
            # budget, or a thousand items would take over twelve minutes to get their tickets.
            github_module.WriteBudget = functools.partial(WriteBudget, 100_000)  # type: ignore[assignment,misc]
            with serving_api(settings) as api_url:
                for rig in by_name.values():
                    rig.listen(api_url)
                async with build_worker(client, settings, task_queue=task_queue):
                    for name in trackers:
                        rig = by_name[name]
                        rig.reset_counts()
                        lived = await life(client, rig, task_queue, items)
                        runs = [await reconcile_at(client, rig, task_queue, n) for n in open_counts]
                        result[name] = {
                            "life": lived,
                            "reconcile": runs,
                            "contract_errors": len(rig.contract_errors),
                        }
    finally:
        await env.shutdown()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="Tracker API calls per item and per reconcile.")
    parser.add_argument("--items", type=int, default=20, help="items driven through life (20)")
    parser.add_argument(
        "--open", default="10,100,1000", help="open item counts for reconcile (10,100,1000)"
    )
    parser.add_argument(
        "--trackers", default="github,jira", help="which emulated trackers (github,jira)"
    )
    args = parser.parse_args()
    trackers = [name.strip() for name in args.trackers.split(",") if name.strip()]
    if not trackers or set(trackers) - {"github", "jira"}:
        parser.error("--trackers takes github, jira or both, separated by commas")
    try:
        open_counts = [int(n) for n in args.open.split(",") if n.strip()]
    except ValueError:
        parser.error("--open takes numbers separated by commas, e.g. 10,100,1000")
    if args.items < 1 or not open_counts or min(open_counts) < 1:
        parser.error("--items and every --open count must be at least 1")
    with stdout_to_stderr():
        configure_logging(log_format="json", level="warning")
        result = asyncio.run(run(args.items, open_counts, trackers))
    emit_and_exit(result)


if __name__ == "__main__":
    from bench.tracker_calls import main as main_of_module

    main_of_module()

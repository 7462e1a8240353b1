"""Tracker API calls: per action item over its life, and per reconcile run as open items grow.

    .venv/bin/python -m bench.tracker_calls --items 20 --open 10,100,1000

Life: one incident whose review routes N items to a tracker on its emulator (the real client
library over HTTP). Each item's ticket is created; a person closes it in the tracker, whose
signed webhook reaches the real API and moves the item to verifying; the item is verified. The
emulator counts every API call by endpoint (a person's actions are not API calls). The default
policy gives no reminder or escalation inside the run, so the figures leave those comments out.

Reconcile: for each count of open items, that many tickets exist in a fresh project and that
many ActionItemWorkflows run (their look-up finds the ticket, so seeding costs no create).
`first_run_calls` reads every open ticket (a watermark before them all: what a first run or a
long outage reads, one call per page); `steady_run_calls` is a run a minute after the previous
one, with a few tickets closed meanwhile (the webhooks lost), which it signals.

Needs nothing running: its own dev server, worker, API and emulators. One JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from app.logs import configure_logging
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
from domain.reconcile import ReconcileRequest, ReconcileResult
from domain.review import SubmitReview
from domain.severity import Severity
from integrations.github import GitHubTracker
from integrations.rate_limits import WriteBudget
from integrations.tracker import TicketDraft
from settings import Settings
from tests.api_server import serving_api
from tests.emulators.github import GitHubEmulator
from tests.helpers import declare, new_key
from tests.reviews import full_review, item_spec
from worker import build_worker
from workflows.action_item import ActionItemWorkflow
from workflows.incident import IncidentWorkflow
from workflows.reconcile import TicketReconcilerWorkflow

TOKEN = "ghp_bench_token"
SECRET = "bench-webhook-secret"
CLOSED_BETWEEN_RUNS = 3


async def wait_for(probe: Any, accept: Any, timeout: float = 120, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        await asyncio.sleep(0.2)


async def item_states(client: Client, ids: list[str]) -> list[ActionItemState]:
    states = []
    for workflow_id in ids:
        item = await client.get_workflow_handle(workflow_id).query(ActionItemWorkflow.state)
        states.append(item.state)
    return states


@contextmanager
def github_world(home: Path, client: Client) -> Iterator[tuple[GitHubEmulator, Settings]]:
    with GitHubEmulator(token=TOKEN) as emulator:
        settings = Settings(
            home=home,
            temporal_address=client.service_client.config.target_host,
            github_token=SecretStr(TOKEN),
            github_base_url=emulator.base_url,
            github_webhook_secret=SecretStr(SECRET),
            reconcile_every=timedelta(0),
        )
        with serving_api(settings) as api_url:
            emulator.send_webhooks_to(f"{api_url}/webhooks/github", SECRET)
            yield emulator, settings


async def github_life(client: Client, emulator: GitHubEmulator, task_queue: str, n: int) -> dict:
    repo = "acme/life"
    emulator.add_repo(repo)
    handle = await declare(client, task_queue, default_policy())
    await handle.execute_update(IncidentWorkflow.resolve, Transition())
    route = TeamRoute(team="payments", target=f"github:{repo}")
    specs = [item_spec("payments", f"Fix {number}") for number in range(1, n + 1)]
    await handle.execute_update(
        IncidentWorkflow.submit_review,
        SubmitReview(review=full_review(*specs), routes={"payments": route}),
    )
    key = (await handle.query(IncidentWorkflow.state)).key
    ids = [action_workflow_id(key, number) for number in range(1, n + 1)]
    await wait_for(
        lambda: item_states(client, ids),
        lambda states: all(s is ActionItemState.OPEN for s in states),
        what="tickets created",
    )
    for number in emulator.repo(repo).issues:
        emulator.close_as(repo, number, by="alice")
    await wait_for(
        lambda: item_states(client, ids),
        lambda states: all(s is ActionItemState.VERIFYING for s in states),
        what="webhooks routed",
    )
    for workflow_id in ids:
        await client.get_workflow_handle(workflow_id).execute_update(
            ActionItemWorkflow.verify, VerifyItem(evidence="error rate 0.01% for 7 days", by="bob")
        )
    await wait_for(
        lambda: item_states(client, ids),
        lambda states: all(s is ActionItemState.DONE for s in states),
        what="items done",
    )
    emulator.wait_for_webhooks()
    await handle.result()  # every item is done: the incident closes itself
    return calls_per_item(emulator.counts, n)


def calls_per_item(counts: Counter[str], n: int) -> dict[str, Any]:
    by_endpoint = {endpoint: round(count / n, 2) for endpoint, count in sorted(counts.items())}
    return {
        "items": n,
        "calls_per_item": round(sum(counts.values()) / n, 2),
        "calls_per_item_by_endpoint": by_endpoint,
    }


async def github_reconcile(
    client: Client, emulator: GitHubEmulator, settings: Settings, task_queue: str, n: int
) -> dict[str, Any]:
    repo = f"acme/open-{n}"
    target = f"github:{repo}"
    emulator.add_repo(repo)
    key = new_key()
    seeding_clock = datetime.now(UTC) - timedelta(hours=1)
    emulator.clock = lambda: seeding_clock
    seeder = GitHubTracker(
        SecretStr(TOKEN), emulator.base_url, writes=WriteBudget(per_minute=n + 1)
    )
    policy = default_policy().for_severity(Severity.SEV3).action_items
    starts = []
    for number in range(1, n + 1):
        start = StartActionItem(
            incident_key=key,
            incident_title="Checkout errors",
            number=number,
            severity=Severity.SEV3,
            spec=item_spec("payments", f"Fix {number}"),
            due_at=datetime.now(UTC) + timedelta(days=30),
            route=TeamRoute(team="payments", target=target),
            policy=policy,
        )
        starts.append(start)
    # The tickets exist before the items start: each item's look-up finds its own.
    for start in starts:
        draft = TicketDraft(
            idempotency_key=action_workflow_id(key, start.number),
            title=start.spec.title,
            body="seeded",
            labels=["afteraction"],
            due_at=start.due_at,
        )
        await asyncio.to_thread(seeder.ensure_ticket, target, draft)
    seeder.shutdown()
    emulator.clock = lambda: datetime.now(UTC)
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
    await wait_for(
        lambda: client.count_workflows(query),
        lambda found: found.count >= n,
        timeout=600,
        what=f"{n} open items in visibility",
    )

    async def reconcile(since: datetime) -> tuple[ReconcileResult, int]:
        emulator.reset_counts()
        result = await client.execute_workflow(
            TicketReconcilerWorkflow.run,
            ReconcileRequest(watermarks={target: since}),
            id=f"reconcile-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        return result, sum(emulator.counts.values())

    first, first_calls = await reconcile(seeding_clock - timedelta(minutes=1))
    emulator.drop_next_webhooks(CLOSED_BETWEEN_RUNS)  # only the reconciler can tell them
    for number in range(1, CLOSED_BETWEEN_RUNS + 1):
        emulator.close_as(repo, number, by="alice")
    steady, steady_calls = await reconcile(datetime.now(UTC) - timedelta(minutes=1))
    ids = [action_workflow_id(key, number) for number in range(1, n + 1)]
    for workflow_id in ids:
        await client.get_workflow_handle(workflow_id).terminate("benchmark done")
    [first_report] = [r for r in first.reports if r.target == target]
    [steady_report] = [r for r in steady.reports if r.target == target]
    return {
        "open_items": n,
        "first_run_calls": first_calls,
        "first_run_tickets_read": first_report.tickets_read,
        "steady_run_calls": steady_calls,
        "steady_run_tickets_read": steady_report.tickets_read,
        "steady_run_signalled": len(steady_report.drift),
    }


async def run(items: int, open_counts: list[int]) -> dict[str, Any]:
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        search_attributes=search_attributes.ALL,
        dev_server_startup_timeout=timedelta(seconds=60),
    )
    result: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="afteraction-bench-") as home:
            client = env.client
            task_queue = f"bench-{uuid.uuid4()}"
            with github_world(Path(home), client) as (emulator, settings):
                async with build_worker(client, settings, task_queue=task_queue):
                    life = await github_life(client, emulator, task_queue, items)
                    runs = []
                    for n in open_counts:
                        runs.append(
                            await github_reconcile(client, emulator, settings, task_queue, n)
                        )
                result["github"] = {
                    "life": life,
                    "reconcile": runs,
                    "contract_errors": len(emulator.contract_errors),
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
    args = parser.parse_args()
    try:
        open_counts = [int(n) for n in args.open.split(",") if n.strip()]
    except ValueError:
        parser.error("--open takes numbers separated by commas, e.g. 10,100,1000")
    if args.items < 1 or not open_counts or min(open_counts) < 1:
        parser.error("--items and every --open count must be at least 1")
    with stdout_to_stderr():
        configure_logging(log_format="json", level="warning")
        result = asyncio.run(run(args.items, open_counts))
    emit_and_exit(result)


if __name__ == "__main__":
    from bench.tracker_calls import main as main_of_module

    main_of_module()

"""afteraction with many open action items: what creating them, listing them, reconciling
their tickets and escalating them costs.

    .venv/bin/python -m bench.scale --items 10000     # 1,000 incidents x 10 items
    .venv/bin/python -m bench.scale --items 1000

A stack as a deployment runs it (bench/chaos_stack.py: a dev server on a database file, one
worker process, the API process), with a policy whose incident deadlines are a day away, so
nothing escalates but what is measured. Then:

1. **create**: `--items` open items, `--per-incident` to an incident (declare, resolve, submit a
   review), through the services the CLI uses, `--concurrency` incidents at a time; until
   visibility lists every item open with its ticket.
2. **rss**: the resident memory of the worker, the API and the dev server.
3. **lists**: p50/p95 of the common lists through the API (`GET /api/actions?overdue=true`,
   `?team=`, `GET /api/incidents?active=true`) and the CLI (`actions list --overdue`, `list`).
4. **reconcile**: one TicketReconciler run that knows no target (it lists every open item),
   one that knows them (the steady run of every 5 minutes), and a full sweep.
5. **escalation**: 50 more items due 20 s after their review; how late each one's first
   escalation came after its due date (p50/p95/p99/max).

Prints one JSON object on stdout (bench/README.md); the rest goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from app.services.actions import ActionItems
from app.services.commands import CommandPending
from app.services.incidents import Incidents
from bench.chaos_stack import AFTERACTION, TASK_QUEUE, ChaosStack
from bench.incident_throughput import summary
from bench.lifecycle import BENCH, TEAMS, review_with
from bench.output import emit_and_exit, stdout_to_stderr
from domain import search_attributes as sa
from domain.action_item import ActionItem
from domain.commands import NewIncident, Transition
from domain.policy import load_policy
from domain.reconcile import WORKFLOW_NAME, ReconcileRequest, ReconcileResult
from domain.severity import Severity
from telemetry.logs import configure_logging

POLICY = """\
# Incident deadlines a day away: nothing escalates during the run but the items measured.
[severities.SEV3]
acknowledge_within = "24h"
status_update_every = "24h"
resolve_within = "24h"
"""
ESCALATED_ITEMS = 50
ESCALATION_DUE_IN = timedelta(seconds=20)
API_CALLS = 30
CLI_CALLS = 10
PENDING_TRIES = 10


async def patiently(command: Callable[[], Awaitable[Any]]) -> None:
    """Send a command again under the same key while it is pending (a busy worker has not
    answered within the service's wait): the same key attaches to the first, never a second."""
    for _ in range(PENDING_TRIES):
        try:
            await command()
            return
        except CommandPending:
            continue
    raise RuntimeError(f"a command stayed pending through {PENDING_TRIES} waits")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Scale:
    def __init__(self, stack: ChaosStack, client: Client) -> None:
        self.stack = stack
        self.client = client
        self.policy = load_policy(stack.home / "policy.toml")
        self.incidents = Incidents(client, task_queue=TASK_QUEUE, policy=self.policy)
        self.items = ActionItems(client)

    async def incident(self, number: int, items: int, due_at: datetime | None = None) -> str:
        new = NewIncident(
            title=f"Scale incident {number}",
            severity=Severity.SEV3,
            services=[f"service-{number % 20}"],
            declared_by="bench",
        )
        key = (await self.incidents.declare(new)).key
        await patiently(
            lambda: self.incidents.command(key, "resolve", Transition(), request_key=key)
        )
        review = review_with(items, number)
        if due_at is not None:
            review.action_items = [
                spec.model_copy(update={"due_at": due_at}) for spec in review.action_items
            ]
        await patiently(
            lambda: self.incidents.submit_review(key, review, actor=BENCH, request_key=key)
        )
        return key

    async def create(self, items: int, per_incident: int, concurrency: int) -> dict[str, Any]:
        gate = asyncio.Semaphore(concurrency)
        started = time.perf_counter()

        async def one(number: int) -> None:
            async with gate:
                await self.incident(number, per_incident)

        await asyncio.gather(*(one(n) for n in range(items // per_incident)))
        submitted = time.perf_counter() - started
        ticketed = f"{sa.OPEN_ACTION_ITEMS} AND {sa.TICKET_KEY.name} IS NOT NULL"
        while (await self.client.count_workflows(ticketed)).count < items:
            await asyncio.sleep(1)
        seconds = time.perf_counter() - started
        return {
            "items": items,
            "incidents": items // per_incident,
            "submitted_seconds": round(submitted, 1),
            "all_ticketed_seconds": round(seconds, 1),
            "items_per_second": round(items / seconds, 1),
        }

    def rss(self) -> dict[str, float]:
        return {
            "worker": rss_mb(self.stack.workers[0].pid),
            "api": rss_mb(self.stack.api.pid),
            "dev_server": rss_mb(self.stack.server.pid),
        }

    async def lists(self) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.stack.admin_secret}"}
        api: dict[str, Any] = {}
        async with httpx.AsyncClient(
            base_url=self.stack.api_url, headers=headers, timeout=60
        ) as http:
            for name, path, params in (
                ("actions_overdue", "/api/actions", {"overdue": "true"}),
                ("actions_team", "/api/actions", {"team": TEAMS[0]}),
                ("incidents_active", "/api/incidents", {"active": "true"}),
                ("incidents", "/api/incidents", {}),
            ):
                seconds, total = [], None
                for _ in range(API_CALLS):
                    began = time.perf_counter()
                    answer = await http.get(path, params=params)
                    seconds.append(time.perf_counter() - began)
                    answer.raise_for_status()
                    total = answer.json()["total"]
                api[name] = {**summary(seconds), "total": total}
        cli: dict[str, Any] = {}
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AFTERACTION_")},
            "AFTERACTION_HOME": str(self.stack.home),
            "AFTERACTION_TEMPORAL_ADDRESS": self.stack.settings.effective_temporal_address,
            "AFTERACTION_TASK_QUEUE": TASK_QUEUE,
        }
        for name, args in (
            ("actions_overdue", ["actions", "list", "--overdue", "--json"]),
            ("incidents", ["list", "--json"]),
        ):
            seconds = []
            for _ in range(CLI_CALLS):
                began = time.perf_counter()
                subprocess.run([AFTERACTION, *args], env=env, capture_output=True, check=True)
                seconds.append(time.perf_counter() - began)
            cli[name] = summary(seconds)
        return {"api_ms": api, "cli_ms": cli}

    async def reconcile(self) -> dict[str, Any]:
        async def run(name: str, request: ReconcileRequest) -> tuple[float, ReconcileResult]:
            began = time.perf_counter()
            result: ReconcileResult = await self.client.execute_workflow(
                WORKFLOW_NAME,
                request,
                id=f"scale-reconcile-{name}-{time.time_ns()}",
                task_queue=TASK_QUEUE,
                result_type=ReconcileResult,
            )
            return time.perf_counter() - began, result

        first_seconds, first = await run("first", ReconcileRequest())
        steady_seconds, _ = await run("steady", ReconcileRequest(watermarks=first.watermarks))
        sweep_seconds, _ = await run("sweep", ReconcileRequest(full_sweep=True))
        return {
            "first_run_seconds": round(first_seconds, 2),
            "steady_run_seconds": round(steady_seconds, 2),
            "full_sweep_seconds": round(sweep_seconds, 2),
            "targets": len(first.reports),
        }

    async def escalation(self) -> dict[str, Any]:
        due_at = datetime.now(UTC) + ESCALATION_DUE_IN
        per_incident = 10
        keys = await asyncio.gather(
            *(
                self.incident(100_000 + n, per_incident, due_at=due_at)
                for n in range(ESCALATED_ITEMS // per_incident)
            )
        )
        ids = [f"{key}-{n}" for key in keys for n in range(1, per_incident + 1)]
        late: list[float] = []
        deadline = time.monotonic() + ESCALATION_DUE_IN.total_seconds() + 120
        pending = set(ids)
        while pending and time.monotonic() < deadline:
            await asyncio.sleep(max(0.0, (due_at - datetime.now(UTC)).total_seconds()) or 1)
            for item_id in sorted(pending):
                item: ActionItem = await self.items.get(item_id)
                if item.escalations:
                    late.append((item.escalations[0].at - item.due_at).total_seconds())
                    pending.discard(item_id)
        if pending:
            raise RuntimeError(f"{len(pending)} items never escalated: {sorted(pending)[:5]}")
        return {"items": len(ids), "lateness_ms": summary(late)}


async def run(items: int, per_incident: int, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="afteraction-scale-") as folder:
        home = Path(folder)
        policy = home / "policy.toml"
        policy.write_text(POLICY, encoding="utf-8")
        stack = ChaosStack(home, policy, workers=1)
        try:
            client = await stack.start()
            scale = Scale(stack, client)
            result: dict[str, Any] = {"cpus": os.cpu_count()}
            result["create"] = await scale.create(items, per_incident, concurrency)
            result["rss_mb"] = scale.rss()
            result["lists"] = await scale.lists()
            result["reconcile"] = await scale.reconcile()
            result["escalation"] = await scale.escalation()
            result["rss_mb_after"] = scale.rss()
            return result
        finally:
            stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--items", type=int, default=1_000)
    parser.add_argument("--per-incident", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=10)
    arguments = parser.parse_args()
    configure_logging()
    with stdout_to_stderr():
        result = asyncio.run(run(arguments.items, arguments.per_incident, arguments.concurrency))
    emit_and_exit(result)


if __name__ == "__main__":
    main()

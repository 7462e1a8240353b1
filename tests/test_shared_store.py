"""Several processes, one truth: two worker processes and two API processes on one dev server
and one PostgreSQL database. A hundred action items are created at once while one worker is
killed with SIGKILL right after committing a ticket; every item ends with exactly one ticket
of its own, and both APIs list the same tickets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from temporalio.testing import WorkflowEnvironment

from domain.action_item import ActionItem, ActionItemState, action_workflow_id
from integrations.local import LocalTracker
from store import open_store
from tests.auth import bearer, token_secret
from tests.helpers import eventually
from tests.postgres import PostgresServer
from tests.reviews import full_review, item_spec
from tests.stack import AFTERACTION, free_port, stop_processes
from tests.test_exactly_once_ticket import start_worker, worker_processes
from workflows.action_item import TRACKER_TIMEOUT

INCIDENTS = 10
ITEMS_PER_INCIDENT = 10


@contextlib.contextmanager
def api_processes(
    count: int, address: str, task_queue: str, database_url: str, root: Path
) -> Iterator[list[str]]:
    """`afteraction api` processes on free ports, sharing the database; yields their URLs."""
    processes: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for number in range(count):
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERACTION_")}
            env.update(
                AFTERACTION_TEMPORAL_ADDRESS=address,
                AFTERACTION_TASK_QUEUE=task_queue,
                AFTERACTION_DATABASE_URL=database_url,
                AFTERACTION_API_PORT=str(port),
                AFTERACTION_HOME=str(root / f"api-{number}"),
                AFTERACTION_LOG_FORMAT="json",
            )
            log = (root / f"api-{number}.log").open("wb")
            processes.append(
                subprocess.Popen([AFTERACTION, "api"], env=env, stdout=log, stderr=log)
            )
            urls.append(f"http://127.0.0.1:{port}")
        yield urls
    finally:
        stop_processes(processes)


async def healthy(http: httpx.AsyncClient, url: str) -> None:
    async def status() -> int:
        with contextlib.suppress(httpx.HTTPError):
            return (await http.get(f"{url}/healthz")).status_code
        return 0

    await eventually(status, lambda code: code == 200, timeout=30)


async def ok(http: httpx.AsyncClient, method: str, url: str, status: int = 200, **kw: Any) -> Any:
    response = await http.request(method, url, **kw)
    assert response.status_code == status, response.text
    return response.json()


async def reviewed_incident(http: httpx.AsyncClient, api: str, number: int) -> str:
    """An incident declared, resolved and reviewed through `api`, with ten action items."""
    created = await ok(
        http,
        "POST",
        f"{api}/api/incidents",
        201,
        json={"title": f"Checkout errors {number}", "severity": "SEV3", "services": ["checkout"]},
    )
    key = str(created["key"])
    await ok(http, "POST", f"{api}/api/incidents/{key}/resolve", json={})
    items = [item_spec("payments", f"Fix {n} of incident {number}") for n in range(10)]
    review = full_review(*items).model_dump(mode="json")
    submitted = await http.post(f"{api}/api/incidents/{key}/review", json=review)
    # A worker killed while it holds the incident's workflow task delays the update past the
    # API's wait (503, outcome unknown); the update is applied when another worker takes over.
    assert submitted.status_code in (200, 503), submitted.text

    async def state() -> str:
        # A query to an incident whose worker was just killed waits out its sticky queue
        # (10 s) before another worker answers it: the API says 503 meanwhile, and asking
        # again is what a client does.
        answer = await http.get(f"{api}/api/incidents/{key}")
        if answer.status_code == 503:
            return f"no answer yet: {answer.text}"
        assert answer.status_code == 200, answer.text
        return str(answer.json()["state"])

    await eventually(state, lambda found: found == "tracking", timeout=60, interval=0.5)
    return key


async def test_two_workers_and_two_apis_share_one_store_through_a_worker_kill(
    dev_env: WorkflowEnvironment, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    client = dev_env.client
    address = client.service_client.config.target_host
    task_queue = f"shared-{uuid.uuid4()}"
    database_url = postgres_server.create_database()
    settings = {"AFTERACTION_DATABASE_URL": database_url}
    marker = tmp_path / "killed"

    with (
        worker_processes() as workers,
        api_processes(2, address, task_queue, database_url, tmp_path) as apis,
    ):
        workers.append(
            start_worker(
                address,
                task_queue,
                tmp_path / "w0",
                tmp_path / "w0.log",
                die_marker=marker,
                settings=settings,
            )
        )
        workers.append(
            start_worker(
                address, task_queue, tmp_path / "w1", tmp_path / "w1.log", settings=settings
            )
        )
        headers = bearer(token_secret(database_url=database_url))
        async with httpx.AsyncClient(timeout=60, headers=headers) as http:
            await asyncio.gather(*(healthy(http, api) for api in apis))
            keys = await asyncio.gather(
                *(reviewed_incident(http, apis[n % 2], n) for n in range(INCIDENTS))
            )

            async def first_exit() -> int | None:
                return workers[0].poll()

            code = await eventually(first_exit, lambda code: code is not None, timeout=60)
            log = (tmp_path / "w0.log").read_text(errors="replace")
            assert code == -signal.SIGKILL, f"the worker was not killed (exit {code}):\n{log}"
            assert "killed after committing incident/" in log

            item_ids = [
                action_workflow_id(key, n) for key in keys for n in range(1, ITEMS_PER_INCIDENT + 1)
            ]

            async def states() -> list[ActionItem]:
                return list(
                    await asyncio.gather(
                        *(
                            client.get_workflow_handle(item_id).query(
                                "state", result_type=ActionItem
                            )
                            for item_id in item_ids
                        )
                    )
                )

            # The killed worker's activity reports only after its start-to-close timeout.
            items = await eventually(
                states,
                lambda found: all(item.state is ActionItemState.OPEN for item in found),
                timeout=TRACKER_TIMEOUT.total_seconds() + 60,
                interval=0.5,
            )

            tickets = LocalTracker(open_store(database_url)).tickets()
            assert len(tickets) == INCIDENTS * ITEMS_PER_INCIDENT
            by_item = {ticket.idempotency_key or "": ticket.ref.key for ticket in tickets}
            assert sorted(by_item) == sorted(item_ids), "one ticket per item, each its own"
            for item_id, item in zip(item_ids, items, strict=True):
                assert item.ticket is not None
                assert item.ticket.key == by_item[item_id]

            listed = [await ok(http, "GET", f"{api}/api/tickets") for api in apis]
            assert listed[0] == listed[1]
            assert sorted(row["ref"]["key"] for row in listed[0]) == sorted(by_item.values())

"""Lists say when they are cut: a page holds at most `limit` rows, says how many match in all,
and gives the cursor of the next page, through the API and the CLI alike; walking the cursors
shows every row once. The real API app and CLI, on the dev server's visibility."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from app.services.incident_filter import IncidentFilter
from app.services.incidents import Incidents
from domain.commands import AddTimelineEvent
from tests.cli import Cli
from tests.helpers import declare, eventually
from tests.policies import slow_policy
from tests.test_api_reviews import Api, running_api
from tests.test_cli_feedback import cli_for, run_json
from workflows.incident import IncidentWorkflow

INCIDENTS = 5


async def declared(api: Api, service: str) -> set[str]:
    keys = set()
    for number in range(INCIDENTS):
        body = {"title": f"Checkout errors {number}", "severity": "SEV3", "services": [service]}
        keys.add((await api.ok("POST", "/api/incidents", 201, json=body))["key"])
    # Visibility follows the starts a moment later: once all are counted, all are listed.
    await eventually(
        lambda: api.ok("GET", "/api/incidents", params={"service": service, "limit": 1}),
        lambda page: page["total"] == INCIDENTS,
    )
    return keys


async def walk(first: Any, following: Any) -> list[dict[str, Any]]:
    """Every page, from the first through each `next` cursor."""
    pages = [await first()]
    while pages[-1]["next"] is not None:
        pages.append(await following(pages[-1]["next"]))
    return pages


async def test_pages_through_the_api_and_the_cli_show_every_incident_once(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    service = f"svc-{uuid.uuid4().hex[:8]}"
    async with running_api(dev_env, tmp_path) as api:
        keys = await declared(api, service)

        def page(**params: Any) -> Any:
            return api.ok(
                "GET", "/api/incidents", params={"service": service, "limit": 2, **params}
            )

        pages = await walk(page, lambda cursor: page(cursor=cursor))
        assert [len(p["items"]) for p in pages] == [2, 2, 1]
        assert {p["total"] for p in pages} == {INCIDENTS}
        listed = [row["key"] for p in pages for row in p["items"]]
        assert sorted(listed) == sorted(keys)

        elsewhere = pages[0]["next"]  # a cursor of this list, given to a list of other filters
        for params, reason in (
            ({"service": service, "cursor": "not a cursor!"}, "is not a cursor this list gave"),
            ({"service": service, "cursor": base64.b64encode(b"junk").decode()}, "is not a"),
            ({"service": "other", "cursor": elsewhere}, "belongs to a list with other filters"),
        ):
            answer = await api.http.get("/api/incidents", params=params)
            assert answer.status_code == 422, answer.text
            assert reason in answer.json()["detail"]
            assert answer.json()["detail"].endswith("start again without a cursor")
        too_many = await api.http.get("/api/incidents", params={"limit": 1001})
        assert too_many.status_code == 422, too_many.text

        cli: Cli = cli_for(dev_env, tmp_path, api.settings.task_queue)
        first = await cli("list", "--service", service, "--limit", "2")
        assert first.returncode == 0, first.stderr
        assert f"showing 2 of {INCIDENTS}; the next page: `afteraction list … --cursor " in (
            " ".join(first.stdout.split())
        )

        def cli_page(*more: str) -> Any:
            return run_json(cli, "list", "--service", service, "--limit", "2", *more)

        cli_pages = await walk(cli_page, lambda cursor: cli_page("--cursor", cursor))
        assert [row["key"] for p in cli_pages for row in p["items"]] == listed
        refused = await cli.refused("list", "--service", service, "--cursor", "not a cursor!")
        assert refused.startswith("'not a cursor!' is not a cursor this list gave; pass the")


async def test_an_incident_that_continued_as_new_is_listed_once(
    client: Client, worker: Worker, task_queue: str
) -> None:
    service = f"svc-{uuid.uuid4().hex[:8]}"
    handle = await declare(client, task_queue, slow_policy(), services=[service], history_limit=20)
    first_run = (await handle.describe()).run_id
    for number in range(6):
        await handle.execute_update(
            IncidentWorkflow.add_timeline_event, AddTimelineEvent(text=f"note {number}")
        )
    assert (await handle.describe()).run_id != first_run
    incidents = Incidents(client, task_queue=task_queue, policy=slow_policy())
    everything = f"WorkflowId = '{handle.id}'"
    # Once visibility holds the runs: the first closed as continued, the latest running.
    await eventually(lambda: client.count_workflows(everything), lambda counted: counted.count >= 2)
    page = await incidents.list(IncidentFilter(service=service))
    assert ([row.key for row in page.items], page.total, page.next) == (
        [handle.id.removeprefix("incident/")],
        1,
        None,
    )

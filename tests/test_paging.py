"""Lists say when they are cut: a page holds at most `limit` rows, says how many match in all,
and gives the cursor of the next page, through the API and the CLI alike; walking the cursors
shows every row once. The real API app and CLI, on the dev server's visibility."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

from tests.cli import Cli
from tests.helpers import eventually
from tests.test_api_reviews import Api, running_api
from tests.test_cli_feedback import cli_for, run_json

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

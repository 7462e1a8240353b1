"""Commands are neither lost nor misreported (on the dev server, through the real API and CLI):
a command no worker has taken answers 202 with its id, and is applied once a worker starts;
a retry under the same Idempotency-Key is applied once; a command sent again once it holds
answers the state it reached instead of 409."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from app.http.api import create_app
from settings import Settings
from tests.auth import admin_headers
from tests.cli import Cli, cli_env
from tests.helpers import eventually
from tests.policies import slow_policy
from worker import build_worker


@pytest.fixture
def settings(dev_env: WorkflowEnvironment, tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path,
        temporal_address=dev_env.client.service_client.config.target_host,
        task_queue=f"tq-{uuid.uuid4()}",
        policy_file=None,
        routing_file=None,
    )


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API alone: each test starts and stops the worker itself."""
    app = create_app(settings, policy=slow_policy())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://afteraction",
        timeout=60,
        headers=admin_headers(settings),
    ) as client:
        yield client


async def ok(http: httpx.AsyncClient, method: str, url: str, status: int = 200, **kw: Any) -> Any:
    response = await http.request(method, url, **kw)
    assert response.status_code == status, response.text
    return response.json()


async def test_a_command_no_worker_took_answers_202_and_is_applied_when_one_starts(
    dev_env: WorkflowEnvironment, settings: Settings, http: httpx.AsyncClient
) -> None:
    async with build_worker(dev_env.client, settings):
        created = await ok(
            http, "POST", "/api/incidents", 201, json={"title": "t", "severity": "SEV2"}
        )
        key = created["key"]
        await ok(http, "POST", f"/api/incidents/{key}/acknowledge", json={"commander": "bob"})

    # The worker is gone: the command is sent, and said to be waiting, not refused nor lost.
    pending = await ok(http, "POST", f"/api/incidents/{key}/resolve", 202, json={})
    assert pending["command"] == "resolve"
    assert "no worker is polling task queue" in pending["detail"]
    assert pending["outcome"] == f"/api/incidents/{key}/commands/{pending['command_id']}"
    assert (await http.get(pending["outcome"])).status_code == 202

    # The CLI says the same, with exit 4 and how to ask.
    cli = Cli(
        home=settings.home,
        env={
            **cli_env(settings.home, settings.effective_temporal_address),
            "AFTERACTION_TASK_QUEUE": settings.task_queue,
        },
    )
    noted = await cli("note", key, "still investigating")
    assert noted.returncode == 4, noted.stderr
    assert f"afteraction outcome {key} add_timeline_event:" in noted.stderr
    note_id = noted.stderr.split(f"afteraction outcome {key} ")[1].split("`")[0]

    async with build_worker(dev_env.client, settings):
        applied = await eventually(
            lambda: http.get(pending["outcome"]), lambda answer: answer.status_code == 200
        )
        assert applied.json()["state"] == "resolved"
        asked = await cli("outcome", key, note_id)
        assert asked.returncode == 0, asked.stderr
        assert "is applied" in asked.stdout
        incident = await ok(http, "GET", f"/api/incidents/{key}")
        assert [e["text"] for e in incident["timeline"]].count("still investigating") == 1
        unknown = await http.get(f"/api/incidents/{key}/commands/resolve:never-sent")
        assert unknown.status_code == 404 and "send it again" in unknown.json()["detail"]


async def test_a_retry_under_the_same_key_is_applied_once_and_a_repeat_answers_its_state(
    dev_env: WorkflowEnvironment, settings: Settings, http: httpx.AsyncClient
) -> None:
    async with build_worker(dev_env.client, settings):
        created = await ok(
            http, "POST", "/api/incidents", 201, json={"title": "t", "severity": "SEV2"}
        )
        key = created["key"]
        note = {"text": "paged the database team"}
        retry = {"Idempotency-Key": str(uuid.uuid4())}
        for _ in range(2):
            await ok(http, "POST", f"/api/incidents/{key}/timeline", json=note, headers=retry)
        incident = await ok(http, "GET", f"/api/incidents/{key}")
        assert [e["text"] for e in incident["timeline"]].count(note["text"]) == 1
        # Without a key, each request is a command of its own: two equal notes may both be meant.
        await ok(http, "POST", f"/api/incidents/{key}/timeline", json=note)
        incident = await ok(http, "GET", f"/api/incidents/{key}")
        assert [e["text"] for e in incident["timeline"]].count(note["text"]) == 2

        # Acknowledged twice by the same commander (a retry after a timeout): the state, not 409.
        first = await ok(
            http, "POST", f"/api/incidents/{key}/acknowledge", json={"commander": "bob"}
        )
        again = await ok(
            http, "POST", f"/api/incidents/{key}/acknowledge", json={"commander": "bob"}
        )
        assert again == first
        other = await http.post(f"/api/incidents/{key}/acknowledge", json={"commander": "eve"})
        assert other.status_code == 409
        resolved = await ok(http, "POST", f"/api/incidents/{key}/resolve", json={})
        assert (await ok(http, "POST", f"/api/incidents/{key}/resolve", json={})) == resolved

        bad_key = await http.post(
            f"/api/incidents/{key}/timeline", json=note, headers={"Idempotency-Key": "a b"}
        )
        assert bad_key.status_code == 422 and "Idempotency-Key" in bad_key.json()["detail"]

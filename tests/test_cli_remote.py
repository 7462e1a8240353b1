"""The CLI through the API: with AFTERACTION_API_TOKEN set, a laptop with no way to reach
Temporal (nor the store) runs the whole flow, and every record names the token's owner."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import yaml
from temporalio.testing import WorkflowEnvironment

from app.formats.review_files import dump_yaml
from domain.identity import Role
from settings import Settings
from tests.api_server import serving_api
from tests.auth import token_secret
from tests.helpers import eventually
from tests.reviews import full_review, item_spec
from tests.stack import AFTERACTION, free_port
from worker import build_worker


def cli_env(api_url: str, token: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERACTION_")}
    env.update(
        AFTERACTION_API_URL=api_url,
        AFTERACTION_API_TOKEN=token,
        # Nothing listens here: every command must go through the API.
        AFTERACTION_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
        AFTERACTION_HOME=str(home),
        COLUMNS="200",
    )
    return env


async def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [AFTERACTION, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def run_json(env: dict[str, str], *args: str) -> Any:
    result = await run(env, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def test_the_cli_runs_the_flow_through_the_api_as_the_tokens_owner(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    settings = Settings(
        home=tmp_path / "server",
        temporal_address=dev_env.client.service_client.config.target_host,
        task_queue=f"tq-{uuid.uuid4()}",
    )
    async with build_worker(dev_env.client, settings):
        with serving_api(settings) as api_url:
            laptop = cli_env(
                api_url, token_secret(settings, role=Role.APPROVER, name="laptop"), tmp_path
            )
            viewer = cli_env(api_url, token_secret(settings, role=Role.VIEWER), tmp_path)

            declared = await run_json(
                laptop, "declare", "--title", "Checkout errors", "--severity", "SEV3",
                "--service", "checkout",
            )  # fmt: skip
            key = declared["key"]
            refused = await run(viewer, "resolve", key)
            assert refused.returncode == 2
            assert "may not do this" in refused.stderr
            await run_json(laptop, "ack", key, "--commander", "dana")
            await run_json(laptop, "note", key, "rolled back deploy 4182")
            assert (await run_json(laptop, "resolve", key))["state"] == "resolved"

            template = tmp_path / "review.yaml"
            written = await run(laptop, "review", "template", key, "--out", str(template))
            assert written.returncode == 0, written.stderr
            blank = yaml.safe_load(template.read_text())
            review = full_review(item_spec("payments", "Cap the pool size"))
            template.write_text(dump_yaml({**blank, **review.model_dump(mode="json")}))
            submitted = await run(laptop, "review", "submit", key, str(template), "--json")
            assert submitted.returncode == 0, submitted.stderr
            assert json.loads(submitted.stdout)["state"] == "tracking"
            assert "warning: the review names no contributing factor" in submitted.stderr
            shown = await run(laptop, "review", "show", key)
            assert shown.returncode == 0, shown.stderr
            assert "No failure mode of the library named." in shown.stdout
            other = str(tmp_path / "other.yaml")
            unknown = await run(
                laptop, "review", "template", key, "--failure-mode", "dns-outage", "--out", other
            )
            assert unknown.returncode == 2
            assert "failure_mode.0: 'dns-outage' is not a failure mode of the library" in (
                unknown.stderr
            )

            item_id = f"{key}-1"
            item = await eventually(
                lambda: run_json(laptop, "actions", "show", item_id),
                lambda found: found["state"] == "open",
                interval=0.5,
            )
            page = await run_json(laptop, "actions", "list", "--incident", key)
            assert ([row["id"] for row in page["items"]], page["total"]) == ([item_id], 1)
            tickets = await run_json(laptop, "tickets", "list")
            assert [t["ref"]["key"] for t in tickets] == [item["ticket"]["key"]]
            closed = await run_json(laptop, "tickets", "close", item["ticket"]["key"])
            assert closed["status"] == "closed"
            await eventually(
                lambda: run_json(laptop, "actions", "show", item_id),
                lambda found: found["state"] == "verifying",
                interval=0.5,
            )
            verified = await run_json(
                laptop, "actions", "verify", item_id, "--evidence", "https://grafana/d/pool"
            )
            assert verified["state"] == "done"

            incident = await run_json(laptop, "show", key)
            assert incident["declared_by"] == "token:laptop"
            assert {event["author"] for event in incident["timeline"]} >= {"token:laptop"}
            done = await run_json(laptop, "actions", "show", item_id)
            assert done["verification"]["by"] == "token:laptop"
            assert not (tmp_path / "afteraction.db").exists(), "the laptop never opened a store"

"""The digest through its doors: `afteraction digest preview` and `digest send --now` (the CLI
in a subprocess) and GET /api/digest with its role check, each against the seeded week."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
from temporalio.client import Client

from domain.digest_runs import MANUAL_PREFIX
from domain.digest_text import plain_text
from domain.identity import Role
from settings import Settings
from store import configured_store
from store.digest_facts import DigestReader
from tests.api_server import serving_api
from tests.auth import bearer, token_secret
from tests.cli import Cli, cli_env
from tests.digest_week import SLOT, WEEK, ZONE, digest_policy_file, seed, smtp_settings
from tests.smtp_server import smtp_server
from worker import build_worker, publish_deployment


async def test_preview_and_send_now_from_the_cli(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    with smtp_server(tmp_path) as smtp:
        settings = smtp_settings(home, smtp).model_copy(update={"task_queue": task_queue})
        store = configured_store(settings)
        seed(store)
        # The CLI reads the digest settings the deployment's worker published (Berlin time),
        # not its own (it names no policy file).
        publish_deployment(settings, store)
        env = cli_env(home, client.service_client.config.target_host)
        env["AFTERACTION_TASK_QUEUE"] = task_queue
        cli = Cli(home, env, prefix=("digest",))
        expected = DigestReader(store).digest(task_queue=task_queue, slot=SLOT, timezone=ZONE)

        shown = await cli("preview", "--week", WEEK)
        assert shown.returncode == 0, shown.stderr
        # The CLI's own (built-in) policy would say UTC; the published one is in force.
        assert "ignoring AFTERACTION_POLICY_FILE" in shown.stderr
        assert shown.stdout == plain_text(expected)
        as_json = await cli("preview", "--week", WEEK, "--json")
        assert json.loads(as_json.stdout) == expected.model_dump(mode="json")

        async with build_worker(client, settings, task_queue=task_queue):
            sent = await cli("send", "--now", "--week", WEEK, "--json")
        assert sent.returncode == 0, sent.stderr
        result = json.loads(sent.stdout)
        assert result["delivery"].startswith(MANUAL_PREFIX)
        [outcome] = result["outcomes"]
        [received] = smtp.handler.messages()
        assert (outcome["channel"], outcome["status"]) == ("email", "sent")
        assert received.message["Message-ID"] == outcome["message_id"]
        assert received.message["Subject"].endswith(
            "3 declared, 1 reviews overdue, 2 items overdue"
        )


async def test_get_api_digest_answers_readers_only_and_the_remote_cli(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        home=tmp_path / "home",
        task_queue=f"tq-{uuid.uuid4()}",
        policy_file=digest_policy_file(tmp_path),
    )
    store = configured_store(settings)
    seed(store)
    expected = DigestReader(store).digest(task_queue=settings.task_queue, slot=SLOT, timezone=ZONE)
    viewer = token_secret(settings, role=Role.VIEWER)
    with serving_api(settings) as api_url:
        answered = httpx.get(f"{api_url}/api/digest", params={"week": WEEK}, headers=bearer(viewer))
        assert answered.status_code == 200, answered.text
        assert answered.json() == expected.model_dump(mode="json")
        refused = httpx.get(
            f"{api_url}/api/digest", params={"week": "2026-13"}, headers=bearer(viewer)
        )
        assert refused.status_code == 422
        assert "not an ISO week" in refused.text
        assert httpx.get(f"{api_url}/api/digest", params={"week": WEEK}).status_code == 401
        wrong = bearer("aft_" + "x" * 40)
        assert httpx.get(f"{api_url}/api/digest", headers=wrong).status_code == 401
        # The CLI with a token asks the API (no store, no Temporal of its own).
        env = cli_env(tmp_path / "elsewhere", "127.0.0.1:1")
        env.update(AFTERACTION_API_URL=api_url, AFTERACTION_API_TOKEN=viewer)
        (tmp_path / "elsewhere").mkdir()
        cli = Cli(tmp_path / "elsewhere", env, prefix=("digest",))
        shown = await cli("preview", "--week", WEEK, "--json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout) == expected.model_dump(mode="json")

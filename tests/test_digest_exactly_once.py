"""Exactly one digest per slot when the send is interrupted: the worker SIGKILLed while the SMTP
server holds its transaction, and the dev server killed and restarted (on its database file)
while a send is under way. The SMTP server (aiosmtpd) holds the first transaction at RCPT on an
event the test sets only once the interruption has happened, so the kill lands mid-send."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ResetStickyTaskQueueRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from app.stack import dev_server_command
from bench.chaos_stack import Child, wait_for
from domain.digest_runs import DigestRequest, DigestRunResult, message_id
from integrations.temporal_client import connect
from settings import Settings
from store import configured_store
from store.digests import DeliveryStatus
from tests.digest_week import SENDER, WEEK, delivery_record, smtp_settings
from tests.smtp_server import PASSWORD, Gate, SmtpServer, smtp_server
from tests.stack import free_port
from tests.test_exactly_once_ticket import start_worker, worker_processes
from worker import build_worker
from workflows.digest import WeeklyDigestWorkflow

HELD = 30.0  # how long a test waits for the send to reach the SMTP server


def worker_environment(settings: Settings, server: SmtpServer) -> dict[str, str]:
    assert settings.policy_file is not None and settings.smtp_ca_file is not None
    return {
        "AFTERACTION_SMTP_URL": server.url,
        "AFTERACTION_SMTP_FROM": SENDER,
        "AFTERACTION_SMTP_CA_FILE": str(settings.smtp_ca_file),
        "AFTERACTION_POLICY_FILE": str(settings.policy_file),
    }


async def start_digest(
    client: Client, task_queue: str, delivery: str
) -> WorkflowHandle[WeeklyDigestWorkflow, DigestRunResult]:
    return await client.start_workflow(
        WeeklyDigestWorkflow.run,
        DigestRequest(delivery=delivery, week=WEEK),
        id=f"digest-test-{delivery}",
        task_queue=task_queue,
    )


async def send_attempts(handle: WorkflowHandle[WeeklyDigestWorkflow, DigestRunResult]) -> list[int]:
    """The attempt numbers of the activity tasks the history shows started (plan and sends)."""
    attempts = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attempts.append(event.activity_task_started_event_attributes.attempt)
    return attempts


async def test_a_worker_killed_mid_send_leaves_exactly_one_email(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    client = dev_env.client
    address = client.service_client.config.target_host
    task_queue = f"tq-{uuid.uuid4()}"
    delivery = f"manual-{uuid.uuid4().hex[:8]}"
    home = tmp_path / "home"
    gate = Gate()
    with smtp_server(tmp_path, gate=gate) as smtp, worker_processes() as workers:
        settings = smtp_settings(home, smtp)
        environment = worker_environment(settings, smtp)
        first = start_worker(
            address, task_queue, home, tmp_path / "first.log", settings=environment
        )
        workers.append(first)
        handle = await start_digest(client, task_queue, delivery)
        # The first worker is inside the SMTP transaction, held at RCPT.
        assert await asyncio.to_thread(gate.entered.wait, HELD), (tmp_path / "first.log").read_text(
            errors="replace"
        )
        os.kill(first.pid, signal.SIGKILL)
        assert await asyncio.to_thread(first.wait, HELD) == -signal.SIGKILL
        # What a worker that stops gracefully tells the server itself: the workflow is in no
        # worker's cache, so its next task goes to the task queue, not to the dead worker's
        # sticky queue (where it would wait out the sticky timeout, 10 s).
        await client.workflow_service.reset_sticky_task_queue(
            ResetStickyTaskQueueRequest(
                namespace=client.namespace, execution=WorkflowExecution(workflow_id=handle.id)
            )
        )
        # What the dead worker began can go on now: its connection is gone, so nothing does.
        gate.release.set()
        workers.append(
            start_worker(address, task_queue, home, tmp_path / "second.log", settings=environment)
        )
        result = await asyncio.wait_for(handle.result(), timeout=60)
        mid = message_id(task_queue, delivery, "digest.example.com")
        assert [(o.status, o.message_id) for o in result.outcomes] == [("sent", mid)]
        [received] = smtp.handler.messages()
        assert received.message["Message-ID"] == mid
        assert delivery_record(configured_store(settings), task_queue, delivery) == (
            DeliveryStatus.SENT,
            mid,
            2,
        )
        logs = (tmp_path / "first.log").read_text() + (tmp_path / "second.log").read_text()
        assert "digest.sending" in logs and PASSWORD not in logs
        # The plan, and the send's second attempt (the history keeps a retried activity's last
        # start): the killed one was noticed by its missing heartbeat.
        assert await send_attempts(handle) == [1, 2]


async def test_a_dev_server_restart_mid_send_leaves_exactly_one_email(tmp_path: Path) -> None:
    server_home = tmp_path / "temporal"
    server_home.mkdir()
    server_settings = Settings(
        _env_file=None,
        home=server_home,
        temporal_address=None,
        dev_server_port=free_port(),
        dev_server_ui_port=free_port(),
    )
    address = f"127.0.0.1:{server_settings.dev_server_port}"
    server = Child(
        "temporal",
        dev_server_command(server_settings),
        dict(os.environ),
        server_home / "temporal.log",
    )
    task_queue = f"tq-{uuid.uuid4()}"
    delivery = f"manual-{uuid.uuid4().hex[:8]}"
    gate = Gate()
    server.start()
    try:
        client = await _connected(address, server)
        with smtp_server(tmp_path, gate=gate) as smtp:
            settings = smtp_settings(tmp_path / "home", smtp)
            async with build_worker(client, settings, task_queue=task_queue):
                handle = await start_digest(client, task_queue, delivery)
                assert await asyncio.to_thread(gate.entered.wait, HELD)
                server.kill()
                server.start()
                await _healthy(client, server)
                gate.release.set()
                result = await asyncio.wait_for(handle.result(), timeout=60)
            mid = message_id(task_queue, delivery, "digest.example.com")
            # Either the send reported its success to the restarted server, or the server
            # timed it out and the retry found it recorded as sent: one email either way.
            [outcome] = result.outcomes
            assert (outcome.message_id, outcome.status in ("sent", "already_sent")) == (mid, True)
            [received] = smtp.handler.messages()
            assert received.message["Message-ID"] == mid
            assert delivery_record(configured_store(settings), task_queue, delivery)[0] == (
                DeliveryStatus.SENT
            )
    finally:
        server.stop()


async def _connected(address: str, server: Child) -> Client:
    settings = Settings(_env_file=None, temporal_address=address)
    clients: list[Client] = []

    async def connected() -> bool:
        assert not server.exited(), server.log_tail()
        try:
            clients.append(await connect(settings))
        except RuntimeError:
            return False
        return True

    await wait_for("the dev server did not accept a connection", connected, timeout=60)
    return clients[0]


async def _healthy(client: Client, server: Child) -> None:
    async def healthy() -> bool:
        assert not server.exited(), server.log_tail()
        try:
            return bool(await client.service_client.check_health())
        except Exception:  # RPCError while it starts
            return False

    await wait_for("the dev server did not come back", healthy, timeout=60)

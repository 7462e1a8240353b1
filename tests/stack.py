"""The local stack (`afteraction run`) in a subprocess, on free ports and a private state folder."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

AFTERACTION = str(Path(sys.executable).parent / "afteraction")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Stack:
    home: Path
    env: dict[str, str]
    process: subprocess.Popen[str] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.env['AFTERACTION_API_PORT']}"

    def admin_headers(self) -> dict[str, str]:
        """The admin token `afteraction run` keeps in its state folder, as a header."""
        secret = (self.home / "admin-token").read_text(encoding="utf-8").strip()
        return {"Authorization": f"Bearer {secret}"}

    def cli(self, *args: str, check_json: bool = False) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [AFTERACTION, *args], env=self.env, capture_output=True, text=True, timeout=60
        )
        if check_json:
            assert result.returncode == 0, result.stderr
        return result

    def cli_json(self, *args: str) -> Any:
        result = self.cli(*args, "--json", check_json=True)
        return json.loads(result.stdout)

    def start(self, timeout: float = 45.0) -> None:
        self.process = subprocess.Popen(
            [AFTERACTION, "run"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.process.stdout.read() if self.process.stdout else ""
                raise AssertionError(f"afteraction run exited early:\n{output}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.api_url}/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        self.stop()
        raise AssertionError("the stack did not become healthy in time")

    def stop(self) -> str:
        """Ctrl-C, as a person would; returns what the stack printed."""
        if self.process is None:
            return ""
        self.process.send_signal(signal.SIGINT)
        try:
            output, _ = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        self.process = None
        return output or ""


def stop_processes(processes: list[subprocess.Popen[bytes]]) -> None:
    """Terminate every process still running, then kill any that will not stop."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def stack_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERACTION_")}
    env.update(
        AFTERACTION_HOME=str(home),
        AFTERACTION_API_PORT=str(free_port()),
        AFTERACTION_DEV_SERVER_PORT=str(free_port()),
        AFTERACTION_DEV_SERVER_UI_PORT=str(free_port()),
        AFTERACTION_TASK_QUEUE="e2e",
        AFTERACTION_LOG_FORMAT="json",
        COLUMNS="200",
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def running_stack(home: Path, **extra: str) -> Iterator[Stack]:
    stack = Stack(home=home, env=stack_env(home, **extra))
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()

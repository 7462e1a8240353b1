"""The product's worker in a process of its own, for tests that need to kill it.

    python -m tests.worker_process --address HOST:PORT --task-queue QUEUE --home DIR

It runs `worker.build_worker` unchanged, logging JSON lines to stdout, until SIGTERM. With
DIE_AFTER_TICKET set to a file path, the first ticket the local or Jira tracker creates in
this process kills it with SIGKILL before the ensure_ticket activity can report the ticket:
the crash window that exactly-once creation must survive. The file is created just before the
kill, so a later process given the same path (or none) runs normally. The switch wraps
`LocalTracker.ensure` and `JiraTracker.ensure` in this process only; product code is not
touched. Tracker settings (e.g. AFTERACTION_JIRA_URL) come from the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

from app.logs import configure_logging
from app.temporal_client import connect
from integrations.jira import JiraTracker
from integrations.local import LocalTracker
from settings import Settings
from worker import build_worker

DIE_AFTER_TICKET = "DIE_AFTER_TICKET"
READY = "worker ready"


def install_kill_switch(marker: Path) -> None:
    for tracker in (LocalTracker, JiraTracker):
        tracker.ensure = _dies_after(tracker.ensure, marker)  # type: ignore[method-assign]


def _dies_after(real_ensure: Any, marker: Path) -> Any:
    def ensure_then_die(self: Any, target: str, draft: Any) -> Any:
        result = real_ensure(self, target, draft)  # committed: the tracker holds the ticket
        try:
            # O_EXCL: of two tickets committed at once, exactly one thread kills the process.
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return result
        print(f"killed after committing {draft.idempotency_key}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable: SIGKILL sent to self")

    return ensure_then_die


async def run(address: str, namespace: str, task_queue: str, home: Path) -> None:
    settings = Settings(temporal_address=address, namespace=namespace, home=home)
    client = await connect(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with build_worker(client, settings, task_queue=task_queue):
        print(READY, file=sys.stderr, flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the afteraction worker for a test.")
    parser.add_argument("--address", required=True, help="host:port of the Temporal frontend")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--home", type=Path, required=True, help="AFTERACTION_HOME to use")
    args = parser.parse_args(argv)
    marker = os.environ.get(DIE_AFTER_TICKET)
    if marker:
        install_kill_switch(Path(marker))
    configure_logging(log_format="json", level="info")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args.address, args.namespace, args.task_queue, args.home))


if __name__ == "__main__":
    main(sys.argv[1:])

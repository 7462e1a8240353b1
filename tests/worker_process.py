"""The product's worker in a process of its own, for tests that need to kill it.

    python -m tests.worker_process --address HOST:PORT --task-queue QUEUE --home DIR

It runs `worker.build_worker` unchanged, logging JSON lines to stdout, until SIGTERM. With
DIE_AFTER_TICKET set to a file path, the first ticket the local tracker commits in this
process kills it with SIGKILL before the ensure_ticket activity can report the ticket: the
crash window that exactly-once creation must survive. The file is created just before the
kill, so a later process given the same path (or none) runs normally. The switch wraps
`LocalTracker.ensure` in this process only; product code is not touched.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any, cast

from integrations.registry import TrackerRegistry
from integrations.temporal_client import connect
from integrations.tracker import Tracker
from settings import load_settings
from telemetry.logs import configure_logging
from worker import build_worker

DIE_AFTER_TICKET = "DIE_AFTER_TICKET"
# With it, only trackers of targets starting with this (e.g. "jira:") carry the kill switch.
DIE_ON_TARGET = "DIE_ON_TARGET"
READY = "worker ready"


class _DieAfterEnsure:
    """A tracker that kills the process right after its ensure_ticket committed a ticket."""

    def __init__(self, tracker: Tracker, marker: Path) -> None:
        self._tracker = tracker
        self._marker = marker

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tracker, name)

    def ensure(self, target: str, draft: Any, **options: Any) -> Any:
        real = getattr(self._tracker, "ensure", None)
        result = (
            real(target, draft, **options)
            if real
            else (self._tracker.ensure_ticket(target, draft, **options), True)
        )
        self._die(draft.idempotency_key)
        return result

    def ensure_ticket(self, target: str, draft: Any, **options: Any) -> Any:
        return self.ensure(target, draft, **options)[0]

    def _die(self, idempotency_key: str) -> None:
        try:
            # O_EXCL: of two tickets committed at once, exactly one thread kills the process.
            os.close(os.open(self._marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        print(f"killed after committing {idempotency_key}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable: SIGKILL sent to self")


def install_kill_switch(marker: Path, only: str = "") -> None:
    """Every tracker the registry hands out (local, GitHub, Jira; or only those of targets
    starting with `only`) dies after its first create."""
    real_for_target = TrackerRegistry.for_target

    def for_target(self: TrackerRegistry, target: str) -> Tracker:
        tracker = real_for_target(self, target)
        if not target.startswith(only):
            return tracker
        return cast(Tracker, _DieAfterEnsure(tracker, marker))

    TrackerRegistry.for_target = for_target  # type: ignore[method-assign]


async def run(address: str, namespace: str, task_queue: str, home: Path) -> None:
    # Tracker settings (AFTERACTION_GITHUB_TOKEN, ...) come from the environment.
    settings = load_settings(temporal_address=address, namespace=namespace, home=home)
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
        install_kill_switch(Path(marker), os.environ.get(DIE_ON_TARGET, ""))
    configure_logging(log_format="json", level="info")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args.address, args.namespace, args.task_queue, args.home))


if __name__ == "__main__":
    main(sys.argv[1:])

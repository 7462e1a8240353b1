"""Incident throughput: N incidents through declare -> acknowledge -> note -> mitigate ->
resolve -> state query, C at a time, on a dev server of our own with the product worker.

    .venv/bin/python -m bench.incident_throughput --incidents 200 --concurrency 10

Prints one JSON object on stdout (see bench/README.md); everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from app.services.incidents import Incidents
from bench.output import emit_and_exit, stdout_to_stderr
from domain import search_attributes
from domain.commands import Acknowledge, AddTimelineEvent, NewIncident, Transition
from domain.incident import IncidentState, workflow_id_for
from domain.policy import default_policy
from domain.severity import Severity
from settings import Settings
from telemetry.logs import configure_logging
from worker import build_worker

T = TypeVar("T")
Latencies = dict[str, list[float]]  # operation -> seconds, one entry per call


async def timed(latencies: Latencies, operation: str, call: Awaitable[T]) -> T:
    started = time.perf_counter()
    result = await call
    latencies[operation].append(time.perf_counter() - started)
    return result


async def lifecycle(incidents: Incidents, number: int, latencies: Latencies) -> str:
    """One incident from declaration to resolution; returns its key."""
    new = NewIncident(
        title=f"Bench incident {number}",
        severity=Severity.SEV2,
        services=["checkout"],
        declared_by="bench",
    )
    key = (await timed(latencies, "declare", incidents.declare(new))).key
    commands = [
        ("acknowledge", Acknowledge(commander="alice")),
        ("add_timeline_event", AddTimelineEvent(text="rolled back deploy 4182", by="alice")),
        ("mitigate", Transition(note="traffic drained", by="alice")),
        ("resolve", Transition(note="fixed", by="alice")),
    ]
    for name, payload in commands:
        await timed(latencies, name, incidents.command(key, name, payload))
    incident = await timed(latencies, "state_query", incidents.get(key))
    if incident.state is not IncidentState.RESOLVED:
        raise RuntimeError(f"{key} ended {incident.state}, expected resolved")
    return key


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    figures = {f"p{p}": percentile(ordered, p) for p in (50, 95, 99)}
    figures["max"] = ordered[-1]
    return {name: round(value * 1000, 1) for name, value in figures.items()}


async def run(count: int, concurrency: int) -> dict[str, Any]:
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        search_attributes=search_attributes.ALL,
        dev_server_startup_timeout=timedelta(seconds=60),
    )
    try:
        settings = Settings()
        incidents = Incidents(env.client, task_queue=settings.task_queue, policy=default_policy())
        async with build_worker(env.client, settings):
            # One unmeasured lifecycle: the worker's first polls and caches are not the figures.
            await lifecycle(incidents, 0, defaultdict(list))
            latencies: Latencies = defaultdict(list)
            gate = asyncio.Semaphore(concurrency)

            async def one(number: int) -> str:
                async with gate:
                    return await lifecycle(incidents, number, latencies)

            started = time.perf_counter()
            keys = await asyncio.gather(*(one(n) for n in range(1, count + 1)))
            wall = time.perf_counter() - started
            history = await env.client.get_workflow_handle(workflow_id_for(keys[0])).fetch_history()
    finally:
        await env.shutdown()
    return {
        "incidents": count,
        "concurrency": concurrency,
        "cpus": os.cpu_count(),
        "wall_seconds": round(wall, 2),
        "incidents_per_second": round(count / wall, 1),
        "latency_ms": {operation: summary(seconds) for operation, seconds in latencies.items()},
        "history_events": len(history.events),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Incident lifecycles per second; prints JSON.")
    parser.add_argument("--incidents", type=int, default=50, help="how many incidents (50)")
    parser.add_argument("--concurrency", type=int, default=10, help="how many at once (10)")
    args = parser.parse_args()
    if args.incidents < 1 or args.concurrency < 1:
        parser.error("--incidents and --concurrency must be at least 1")
    with stdout_to_stderr():
        configure_logging(log_format="json", level="warning")
        result = asyncio.run(run(args.incidents, args.concurrency))
    emit_and_exit(result)


if __name__ == "__main__":
    main()

"""Whole lifecycles with action items, against the Temporal floor for the same choreography.

    .venv/bin/python -m bench.lifecycle --incidents 20 --items 3 --concurrency 10

Full: N incidents, C at a time, each declared, resolved, reviewed with M action items routed
to the local tracker, its tickets created, closed (LocalTracker.close and the ticket_changed
signal, as `afteraction tickets close` does), its items verified, and the incident closed.
Floor: the same count of workflows, activities, Updates and signals done by trivial workflows
defined here, with the counts taken from the full run's histories. Both run in one process on
one dev server of our own. Prints one JSON object on stdout (see bench/README.md); everything
else goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from app.services.actions import ActionItems
from app.services.incidents import CommandRejected, Incidents
from app.services.read_model import ReadModel
from bench.incident_throughput import summary
from bench.output import emit_and_exit, stdout_to_stderr
from domain import search_attributes
from domain.action_item import (
    ActionItemSpec,
    ActionItemState,
    Priority,
    TicketChanged,
    VerifyItem,
    action_workflow_id,
)
from domain.commands import NewIncident, Transition
from domain.functions import ReviewFunction
from domain.identity import Actor, ActorKind
from domain.incident import Incident, IncidentState, workflow_id_for
from domain.policy import ActionKind, default_policy
from domain.review import (
    Answer,
    Decision,
    FocusedQuestions,
    Participant,
    Review,
    Rubric,
)
from domain.severity import Severity
from integrations.local import TARGET, LocalTracker
from settings import Settings
from store import configured_store
from telemetry.logs import configure_logging
from worker import build_worker

T = TypeVar("T")
# Who the benchmark's commands name, as a CLI on this machine would.
BENCH = Actor(kind=ActorKind.CLI, subject="bench@localhost", display_name="bench")


class Latencies(defaultdict[str, list[float]]):
    """Step -> seconds, one entry per call."""

    def __init__(self) -> None:
        super().__init__(list)


FULL_QUEUE = "bench-lifecycle"
FLOOR_QUEUE = "bench-lifecycle-floor"
POLL_EVERY = 0.05  # seconds between state queries while waiting for tickets
RETRY_EVERY = 0.02  # seconds before a verify refused because the close is not applied yet
TEAMS = ("payments", "platform", "checkout", "search", "identity")
TARGET_RATIO = 0.5


# ---- the floor: trivial workflows with the full run's counts ------------------------------


class FloorPlan(BaseModel):
    """How much Temporal work the floor does per incident: the full run's averages."""

    items: int
    incident_activities: int = 0
    activities_before_open: int = 1  # the full item creates its ticket before it is open
    activities_after_verify: int = 1  # ... and comments on it once verified
    reports_at_end: int = 1  # signals to the incident after verification, beyond the first


class FloorItemStart(BaseModel):
    number: int
    plan: FloorPlan


class FloorReport(BaseModel):
    number: int
    done: bool


@activity.defn(name="floor_noop")
async def floor_noop() -> None:
    """An empty activity."""


async def _noops(count: int) -> None:
    for _ in range(count):
        await workflow.execute_activity(floor_noop, start_to_close_timeout=timedelta(seconds=30))


@workflow.defn(name="FloorIncident")
class FloorIncident:
    """Resolve and submit Updates; submit starts the children; done when each reported done."""

    def __init__(self) -> None:
        self._started = False
        self._opened: set[int] = set()
        self._done: set[int] = set()

    @workflow.run
    async def run(self, plan: FloorPlan) -> int:
        await workflow.wait_condition(lambda: self._started and len(self._done) >= plan.items)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return len(self._done)

    @workflow.update
    def resolve(self) -> str:
        return "resolved"

    @workflow.update
    async def submit(self, plan: FloorPlan) -> list[str]:
        await _noops(plan.incident_activities)
        ids = []
        for number in range(1, plan.items + 1):
            child_id = f"{workflow.info().workflow_id}/item/{number}"
            await workflow.start_child_workflow(
                FloorItem.run,
                FloorItemStart(number=number, plan=plan),
                id=child_id,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            )
            ids.append(child_id)
        self._started = True
        return ids

    @workflow.query
    def opened(self) -> list[int]:
        return sorted(self._opened)

    @workflow.signal
    def item_changed(self, report: FloorReport) -> None:
        self._opened.add(report.number)
        if report.done:
            self._done.add(report.number)


@workflow.defn(name="FloorItem")
class FloorItem:
    """No-op activities, then open; a signal closes it, an Update verifies it; each step
    reports to the parent, like ActionItemWorkflow."""

    @workflow.init
    def __init__(self, start: FloorItemStart) -> None:
        self._number = start.number
        self._plan = start.plan
        self._open = False
        self._closed = False
        self._verified = False
        self._background: set[asyncio.Task[None]] = set()

    @workflow.run
    async def run(self, start: FloorItemStart) -> int:
        await _noops(self._plan.activities_before_open)
        self._open = True
        await self._report(done=False)
        await workflow.wait_condition(lambda: self._verified)
        await workflow.wait_condition(
            lambda: workflow.all_handlers_finished() and not self._background
        )
        for _ in range(self._plan.reports_at_end):
            await self._report(done=True)
        return self._number

    @workflow.query
    def is_open(self) -> bool:
        return self._open

    @workflow.signal
    def ticket_changed(self, closed: bool) -> None:
        self._closed = closed
        self._spawn(self._report(done=False))

    @workflow.update
    def verify(self, by: str) -> bool:
        self._verified = True
        self._spawn(_noops(self._plan.activities_after_verify))
        self._spawn(self._report(done=True))
        return True

    @verify.validator
    def _validate_verify(self, by: str) -> None:
        if not self._closed:
            raise ApplicationError("not closed yet", type="CommandRejected", non_retryable=True)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _report(self, *, done: bool) -> None:
        parent = workflow.info().parent
        if parent is None:
            return
        handle = workflow.get_external_workflow_handle(parent.workflow_id)
        with contextlib.suppress(Exception):  # the parent may have completed, as in the full run
            await handle.signal(
                FloorIncident.item_changed, FloorReport(number=self._number, done=done)
            )


# ---- driving lifecycles ------------------------------------------------------------------


async def timed(latencies: Latencies, step: str, call: Awaitable[T]) -> T:
    started = time.perf_counter()
    result = await call
    latencies[step].append(time.perf_counter() - started)
    return result


def review_with(items: int, number: int) -> Review:
    """A review that passes check_review under the default policy, with `items` items."""
    answer = Answer(answer="see the appendix", timebox_minutes=10)
    return Review(
        executive_summary="Checkout failed for 20 minutes after a bad deploy.",
        technical_appendix="The deploy raised the pool size past the database limit.",
        questions=FocusedQuestions(**{name: answer for name in FocusedQuestions.model_fields}),
        rubric=Rubric(severity=3, exposure=2, risk_migration=4),
        facilitator="fran",
        participants=[Participant(name=f"{f.value}-person", function=f) for f in ReviewFunction],
        decisions=[
            Decision(
                decision="freeze pool changes",
                rationale="until limits are checked",
                owner="bob",
                date=date(2026, 11, 27),
            )
        ],
        action_items=[
            ActionItemSpec(
                title=f"Bench {number} item {n}",
                owning_team=TEAMS[(n - 1) % len(TEAMS)],
                kind=ActionKind.SHORT_TERM,
                priority=Priority.P2,
                success_criteria="error rate < 0.1% for 7 days",
            )
            for n in range(1, items + 1)
        ],
    )


class Driver:
    """Drives lifecycles; counts what the driving itself costs (queries, refused verifies)."""

    def __init__(self) -> None:
        self.queries = 0
        self.verify_retries = 0

    async def lifecycle(self, number: int, items: int, latencies: Latencies) -> list[str]:
        """One incident from declaration to closed; returns its workflow ids, incident first."""
        raise NotImplementedError

    async def follow_items(
        self,
        probe: Callable[[], Awaitable[dict[int, str]]],
        work: Callable[[int, str], Coroutine[Any, Any, None]],
        items: int,
        latencies: Latencies,
    ) -> None:
        """Poll the incident with `probe` (item number -> ticket key of the items open) and run
        `work` on each item as soon as it is open, the items of an incident side by side."""
        reviewed = time.perf_counter()
        deadline = time.monotonic() + 120
        pending = set(range(1, items + 1))
        started: list[asyncio.Task[None]] = []
        while pending:
            self.queries += 1
            for number, ticket in (await probe()).items():
                if number in pending:
                    pending.discard(number)
                    latencies["ticket_open"].append(time.perf_counter() - reviewed)
                    started.append(asyncio.create_task(work(number, ticket)))
            if pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"items {sorted(pending)} never opened")
                await asyncio.sleep(POLL_EVERY)
        await asyncio.gather(*started)


class Full(Driver):
    """The product: Incidents and ActionItems (the CLI's services) and the local tracker."""

    def __init__(self, client: Client, home: Path) -> None:
        super().__init__()
        self.client = client
        self.incidents = Incidents(client, task_queue=FULL_QUEUE, policy=default_policy())
        self.items = ActionItems(client)
        self.tracker = LocalTracker.configured(Settings(home=home))

    async def lifecycle(self, number: int, items: int, latencies: Latencies) -> list[str]:
        new = NewIncident(
            title=f"Bench incident {number}",
            severity=Severity.SEV2,
            services=["checkout"],
            declared_by="bench",
        )
        key = (await timed(latencies, "declare", self.incidents.declare(new))).key
        await self.respond(key, latencies)
        review = review_with(items, number)
        status = await timed(
            latencies, "submit_review", self.incidents.submit_review(key, review, actor=BENCH)
        )
        if status.state is not IncidentState.TRACKING:
            raise RuntimeError(f"{key} is {status.state} after the review, expected tracking")
        return await self.close_items(key, items, latencies)

    async def respond(self, key: str, latencies: Latencies) -> None:
        """The steps between the declaration and the review: here, the resolution alone."""
        await timed(latencies, "resolve", self.incidents.command(key, "resolve", Transition()))

    async def close_items(self, key: str, items: int, latencies: Latencies) -> list[str]:
        """Close every item's ticket and verify it, then wait for the incident to close; the
        workflow ids of the incident and its items."""

        async def open_items() -> dict[int, str]:
            # What `afteraction show` reads: the items as their reports left them.
            incident = await self.incidents.get(key)
            return {
                item.number: item.ticket.key
                for item in incident.action_items
                if item.state is ActionItemState.OPEN and item.ticket is not None
            }

        async def work(number: int, ticket: str) -> None:
            await self.close_and_verify(key, number, ticket, latencies)

        await self.follow_items(open_items, work, items, latencies)
        handle = self.client.get_workflow_handle(workflow_id_for(key), result_type=Incident)
        incident: Incident = await timed(latencies, "incident_closed", handle.result())
        if incident.state is not IncidentState.CLOSED:
            raise RuntimeError(f"{key} ended {incident.state}, expected closed")
        return [workflow_id_for(key), *(action_workflow_id(key, n) for n in range(1, items + 1))]

    async def close_and_verify(
        self, key: str, number: int, ticket_key: str, latencies: Latencies
    ) -> None:
        # What `afteraction tickets close` does: close the ticket, then tell its workflow.
        ticket = await timed(
            latencies, "ticket_close", asyncio.to_thread(self.tracker.close, TARGET, ticket_key)
        )
        change = TicketChanged(
            ticket_key=ticket_key,
            event="closed",
            status=ticket.status,
            at=datetime.now(UTC),
            source=TARGET,
            delivery_id=str(uuid.uuid4()),
        )
        handle = self.client.get_workflow_handle(action_workflow_id(key, number))
        await timed(latencies, "ticket_signal", handle.signal("ticket_changed", change))
        await timed(latencies, "verify", self._verify(f"{key}-{number}"))

    async def _verify(self, item_id: str) -> None:
        command = VerifyItem(evidence="https://grafana/d/pool", by="carol")
        while True:
            try:
                await self.items.command(item_id, "verify", command)
                return
            except CommandRejected as error:
                if "close its ticket first" not in str(error):
                    raise
            # The signal is in the history but its workflow task has not run yet.
            self.verify_retries += 1
            await asyncio.sleep(RETRY_EVERY)


class Floor(Driver):
    """The same choreography on FloorIncident and FloorItem: the Temporal floor."""

    def __init__(self, client: Client, plan: FloorPlan) -> None:
        super().__init__()
        self.client = client
        self.plan = plan

    async def lifecycle(self, number: int, items: int, latencies: Latencies) -> list[str]:
        workflow_id = f"floor/{number}"
        handle = await timed(
            latencies,
            "declare",
            self.client.start_workflow(
                FloorIncident.run, self.plan, id=workflow_id, task_queue=FLOOR_QUEUE
            ),
        )
        await timed(latencies, "resolve", handle.execute_update(FloorIncident.resolve))
        children = await timed(
            latencies, "submit_review", handle.execute_update(FloorIncident.submit, self.plan)
        )

        async def open_items() -> dict[int, str]:
            return {n: "" for n in await handle.query(FloorIncident.opened)}

        async def work(number: int, _ticket: str) -> None:
            await self._close_and_verify(children[number - 1], latencies)

        await self.follow_items(open_items, work, items, latencies)
        await timed(latencies, "incident_closed", handle.result())
        return [workflow_id, *children]

    async def _close_and_verify(self, child_id: str, latencies: Latencies) -> None:
        child = self.client.get_workflow_handle(child_id)
        await timed(latencies, "ticket_signal", child.signal(FloorItem.ticket_changed, True))
        started = time.perf_counter()
        while True:
            try:
                await child.execute_update(FloorItem.verify, "carol")
                break
            except WorkflowUpdateFailedError:
                self.verify_retries += 1
                await asyncio.sleep(RETRY_EVERY)
        latencies["verify"].append(time.perf_counter() - started)


# ---- counting and measuring --------------------------------------------------------------


async def count_histories(client: Client, runs: list[list[str]]) -> dict[str, float]:
    """Average the events that matter over every incident (its workflow ids, incident first)."""
    gate = asyncio.Semaphore(20)
    totals: dict[str, float] = defaultdict(float)

    async def one(ids: list[str]) -> None:
        async with gate:
            for index, workflow_id in enumerate(ids):
                handle = client.get_workflow_handle(workflow_id)
                if index:  # an item: let it finish its last report first
                    await handle.result()
                events = [event.event_type for event in (await handle.fetch_history()).events]
                scheduled = events.count(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
                totals["item_activities" if index else "incident_activities"] += scheduled
                totals["updates"] += events.count(
                    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
                )
                if index:
                    totals["signals_to_items"] += events.count(
                        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
                    )
                    totals["signals_to_incident"] += events.count(
                        EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED
                    )
                totals["history_events"] += len(events)

    await asyncio.gather(*(one(ids) for ids in runs))
    items = sum(len(ids) - 1 for ids in runs)
    averages = {name: value / len(runs) for name, value in totals.items()}
    averages["item_activities_per_item"] = totals["item_activities"] / items
    return averages


def children_cpu_seconds() -> float:
    """CPU time used so far by this process's children (the dev server), from /proc; 0 where
    there is no /proc."""
    me, total = str(os.getpid()), 0
    with contextlib.suppress(OSError):
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                # After "pid (comm)": state, ppid, ... utime and stime are fields 14 and 15.
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me:
                total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class Phase(BaseModel):
    wall: float
    cpu_benchmark: float  # this process: the workers, the client, the local tracker
    cpu_dev_server: float
    runs: list[list[str]]  # per incident: its workflow id, then its items'


async def measure(
    name: str,
    driver: Driver,
    count: int,
    items: int,
    concurrency: int,
    latencies: Latencies,
) -> Phase:
    # One unmeasured lifecycle: the worker's first polls and caches are not the figures.
    await driver.lifecycle(0, items, Latencies())
    driver.queries = driver.verify_retries = 0
    gate = asyncio.Semaphore(concurrency)

    async def one(number: int) -> list[str]:
        async with gate:
            return await driver.lifecycle(number, items, latencies)

    print(f"{name}: {count} incidents x {items} items, {concurrency} at once", file=sys.stderr)
    cpu, server_cpu = time.process_time(), children_cpu_seconds()
    started = time.perf_counter()
    runs = await asyncio.gather(*(one(n) for n in range(1, count + 1)))
    phase = Phase(
        wall=time.perf_counter() - started,
        cpu_benchmark=time.process_time() - cpu,
        cpu_dev_server=children_cpu_seconds() - server_cpu,
        runs=runs,
    )
    print(f"{name}: {phase.wall:.2f}s", file=sys.stderr)
    return phase


def figures(
    phase: Phase,
    items: int,
    counts: dict[str, float],
    latencies: Latencies,
    driver: Driver,
) -> dict[str, Any]:
    signals = counts["signals_to_items"] + counts["signals_to_incident"]
    wall, count = phase.wall, len(phase.runs)
    return {
        "seconds": round(wall, 2),
        "incidents_per_second": round(count / wall, 2),
        "items_per_second": round(count * items / wall, 2),
        "activities_per_incident": round(
            counts["incident_activities"] + counts["item_activities"], 2
        ),
        "activities_per_workflow": {
            "incident": round(counts["incident_activities"], 2),
            "item": round(counts["item_activities_per_item"], 2),
        },
        "updates_and_signals_per_incident": round(counts["updates"] + signals, 2),
        "updates_and_signals": {
            "updates": round(counts["updates"], 2),
            "signals_to_items": round(counts["signals_to_items"], 2),
            "signals_to_incident": round(counts["signals_to_incident"], 2),
        },
        "history_events_per_incident": round(counts["history_events"], 1),
        "cpu_ms_per_incident": {
            "benchmark_process": round(phase.cpu_benchmark / count * 1000, 1),
            "dev_server": round(phase.cpu_dev_server / count * 1000, 1),
        },
        "queries_per_incident": round(driver.queries / count, 1),
        "verify_retries": driver.verify_retries,
        "steps_ms": {step: summary(seconds) for step, seconds in latencies.items()},
    }


def floor_worker(client: Client) -> Worker:
    """The floor's worker: the product's runner (the sandbox, default settings), but with this
    module passed through. The sandbox would otherwise compile and run all of it for each new
    workflow, a cost of this file's size that no floor has; the product's workflow modules do
    pay theirs (see bench/README.md)."""
    restrictions = SandboxRestrictions.default.with_passthrough_modules(__name__)
    return Worker(
        client,
        task_queue=FLOOR_QUEUE,
        workflows=[FloorIncident, FloorItem],
        activities=[floor_noop],
        workflow_runner=SandboxedWorkflowRunner(restrictions=restrictions),
    )


def floor_plan(items: int, counts: dict[str, float]) -> FloorPlan:
    """The floor's per-incident work, from the full run's averages."""
    item_activities = round(counts["item_activities_per_item"])
    reports = round(counts["signals_to_incident"] / items)
    return FloorPlan(
        items=items,
        incident_activities=round(counts["incident_activities"]),
        activities_before_open=min(1, item_activities),
        activities_after_verify=max(0, item_activities - 1),
        # open, ticket closed and verified each report once; the rest come at the end.
        reports_at_end=max(0, reports - 3),
    )


async def run(count: int, items: int, concurrency: int) -> dict[str, Any]:
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        search_attributes=search_attributes.ALL,
        dev_server_startup_timeout=timedelta(seconds=60),
    )
    try:
        with tempfile.TemporaryDirectory(prefix="afteraction-bench-") as home:
            client = env.client
            product = build_worker(client, Settings(home=Path(home)), task_queue=FULL_QUEUE)
            async with product, floor_worker(client):
                full, latencies = Full(client, Path(home)), Latencies()
                full_phase = await measure("full", full, count, items, concurrency, latencies)
                full_counts = await count_histories(client, full_phase.runs)
                full_figures = figures(full_phase, items, full_counts, latencies, full)
                # The read model the full run's workflows wrote, compared with them.
                store = configured_store(Settings(home=Path(home)))
                check = await ReadModel(client, store, task_queue=FULL_QUEUE).check()

                plan = floor_plan(items, full_counts)
                print(f"floor plan: {plan.model_dump()}", file=sys.stderr)
                floor, latencies = Floor(client, plan), Latencies()
                floor_phase = await measure("floor", floor, count, items, concurrency, latencies)
                floor_counts = await count_histories(client, floor_phase.runs)
                floor_figures = figures(floor_phase, items, floor_counts, latencies, floor)
    finally:
        await env.shutdown()
    ratio = floor_phase.wall / full_phase.wall  # the same count: throughput full / floor
    # The CPU both processes spend per incident, floor over full: the ratio the machine would
    # give if this benchmark alone saturated it; steadier than `ratio` on a busy machine.
    cpu = [sum(f["cpu_ms_per_incident"].values()) for f in (full_figures, floor_figures)]
    return {
        "incidents": count,
        "items_per_incident": items,
        "concurrency": concurrency,
        "cpus": os.cpu_count(),
        "full": full_figures,
        "floor": floor_figures,
        "read_model": {
            "workflows": check.workflows,
            "rows": check.rows,
            "differences": len(check.differences),
        },
        "ratio": round(ratio, 2),
        "cpu_ratio": round(cpu[1] / cpu[0], 2),
        "target": TARGET_RATIO,
        "meets_target": ratio >= TARGET_RATIO,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Whole incident lifecycles with action items per second, against the "
        "Temporal floor; prints JSON."
    )
    parser.add_argument("--incidents", type=int, default=20, help="how many incidents (20)")
    parser.add_argument("--items", type=int, default=3, help="action items per incident (3)")
    parser.add_argument("--concurrency", type=int, default=10, help="incidents at once (10)")
    args = parser.parse_args()
    if min(args.incidents, args.items, args.concurrency) < 1:
        parser.error("--incidents, --items and --concurrency must be at least 1")
    with stdout_to_stderr():
        configure_logging(log_format="json", level="warning")
        result = asyncio.run(run(args.incidents, args.items, args.concurrency))
    emit_and_exit(result)


if __name__ == "__main__":
    # Run as bench.lifecycle, not as __main__ (which the sandbox cannot pass through).
    from bench.lifecycle import main as main_of_module

    main_of_module()

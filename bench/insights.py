"""The insights read model at scale, and what writing its facts costs the workflows.

    .venv/bin/python -m bench.insights            # 10,000 incidents, 50,000 items, 30 lifecycles
    .venv/bin/python -m bench.insights --quick    # 1,000 / 5,000 and 6 lifecycles

1. **fill**: a fresh store (a SQLite file; and PostgreSQL when its server binaries are here)
   gets seeded, deterministic facts of N incidents and M action items, bulk-inserted.
2. **metrics**: `Insights(store).metrics(since=365d, by=team)`, what `afteraction metrics
   --since 365d --by team` shows, timed after warm-ups (target: p95 < 300 ms).
3. **facts_cost**: the same lifecycle (declare, acknowledge, mitigate, resolve, schedule and
   submit a review with items, close each ticket, verify each item) on a dev server of our own
   with the product's worker, once with the facts written and once with `record_facts=False`;
   the workflow-task time read from the histories, the tasks and events, and the wall time.

Prints one JSON object on stdout (see bench/README.md); everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowInput,
    WorkflowHandle,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from app.services.insights import Insights
from bench.incident_throughput import percentile
from bench.lifecycle import FULL_QUEUE, Full, Latencies
from bench.output import emit_and_exit, stdout_to_stderr
from domain import search_attributes
from domain.action_item import ActionItemState
from domain.commands import Acknowledge, DeclareIncident, Transition
from domain.facts import ActionItemFacts, IncidentFacts
from domain.incident import IncidentState
from domain.metrics import Grouping, compute
from domain.policy import ActionKind, Rung
from domain.review import ScheduleReview
from domain.severity import Severity
from settings import Settings
from store import Store, configured_store, open_store
from store.facts import FactsRepository, action_item_columns, incident_columns
from store.schema import ActionItemFactRow, IncidentFactRow
from telemetry.logs import configure_logging
from worker import build_worker

TARGET_P95_MS = 300.0
WINDOW = timedelta(days=365)
SPREAD = timedelta(days=400)  # incidents declared over this span: some fall outside the window
BATCH = 5_000  # rows per INSERT (executemany)

TEAMS = tuple(
    f"team-{name}"
    for name in (
        "payments",
        "checkout",
        "search",
        "identity",
        "platform",
        "data",
        "mobile",
        "web",
        "billing",
        "growth",
        "infra",
        "network",
        "storage",
        "security",
        "support",
        "ads",
        "messaging",
        "maps",
        "media",
        "sre",
    )
)
SERVICES = tuple(
    f"svc-{name}"
    for name in (
        "api",
        "gateway",
        "auth",
        "cart",
        "orders",
        "inventory",
        "pricing",
        "ledger",
        "invoices",
        "refunds",
        "search",
        "index",
        "feed",
        "profile",
        "notifications",
        "email",
        "sms",
        "push",
        "cdn",
        "dns",
        "queue",
        "cache",
        "db-primary",
        "db-replica",
        "storage",
        "uploads",
        "thumbnails",
        "maps",
        "routing",
        "reports",
    )
)
SEVERITIES = (Severity.SEV1, Severity.SEV2, Severity.SEV3, Severity.SEV4)
SEVERITY_WEIGHTS = (5, 20, 45, 30)
# Minutes to acknowledge, on average, by severity; and the resolve times' scale.
ACK_MEAN_MIN = {Severity.SEV1: 3, Severity.SEV2: 8, Severity.SEV3: 25, Severity.SEV4: 90}
RESOLVE_MEAN_MIN = {Severity.SEV1: 90, Severity.SEV2: 180, Severity.SEV3: 480, Severity.SEV4: 1440}
# An item's ladder after its due date: the days at which each rung fires; the top one repeats.
ITEM_LADDER = ((Rung.OWNER, 0), (Rung.TEAM_LEAD, 2), (Rung.MANAGER, 7), (Rung.LEADERSHIP, 14))
REPEAT_DAYS = 7


# ---- 1. the fill ------------------------------------------------------------------------------


def _minutes(rng: random.Random, mean: float) -> timedelta:
    return timedelta(minutes=rng.expovariate(1 / mean))


def _days(rng: random.Random, mean: float) -> timedelta:
    return timedelta(days=rng.expovariate(1 / mean))


def _ladder(overdue: timedelta) -> list[Rung]:
    """The rungs an item overdue by `overdue` has been escalated to, in order."""
    if overdue < timedelta(0):
        return []
    fired = [rung for rung, days in ITEM_LADDER if overdue >= timedelta(days=days)]
    top = ITEM_LADDER[-1][1]
    if overdue >= timedelta(days=top):
        fired += [Rung.LEADERSHIP] * int((overdue - timedelta(days=top)).days // REPEAT_DAYS)
    return fired


def _by_rung(rungs: list[Rung]) -> dict[Rung, int]:
    return {rung: rungs.count(rung) for rung in Rung if rung in rungs}


@dataclass
class Fill:
    incidents: list[IncidentFacts]
    items: list[ActionItemFacts]


def generate(incidents: int, items: int, *, now: datetime, seed: int) -> Fill:
    """Seeded facts: `incidents` incidents over the last SPREAD, and `items` items spread over
    the incidents whose review is submitted (about `items / incidents` per incident)."""
    rng = random.Random(seed)
    drafts: list[dict[str, Any]] = []
    for number in range(incidents):
        severity = rng.choices(SEVERITIES, SEVERITY_WEIGHTS)[0]
        declared = now - SPREAD * (rng.random() ** 1.1)  # a little busier recently
        started = detected = None
        if rng.random() < 0.7:
            started = declared - _minutes(rng, 40)
            if rng.random() < 0.6:
                detected = started + (declared - started) * rng.random()
        draft: dict[str, Any] = {
            "key": f"INC-B{number:06d}",
            "title": f"Bench incident {number}",
            "severity": severity,
            "services": sorted(rng.sample(SERVICES, rng.choice((1, 1, 1, 2, 2, 3)))),
            "teams": sorted(rng.sample(TEAMS, rng.choice((1, 1, 2)))),
            "started_at": started,
            "detected_at": detected,
            "declared_at": declared,
            "state": IncidentState.DECLARED,
        }
        rungs: list[Rung] = []
        drafts.append(draft)
        if rng.random() < 0.03:  # a false alarm
            draft["cancelled_at"] = declared + _minutes(rng, 20)
            draft["state"] = IncidentState.CANCELLED
            continue

        acknowledged = declared + _minutes(rng, ACK_MEAN_MIN[severity])
        if acknowledged - declared > timedelta(minutes=ACK_MEAN_MIN[severity] * 2):
            rungs.append(Rung.OWNER)  # missed the acknowledge deadline
            if rng.random() < 0.3:
                rungs.append(Rung.TEAM_LEAD)
        draft["escalations_by_rung"] = rungs
        resolved = acknowledged + _minutes(rng, RESOLVE_MEAN_MIN[severity])
        mitigated = None
        if rng.random() < 0.8:
            mitigated = acknowledged + (resolved - acknowledged) * rng.uniform(0.2, 0.9)
        submitted = resolved + _days(rng, 4) if rng.random() < 0.95 else None
        # The clock as far as it got by now: recent incidents are still open.
        for name, at, state in (
            ("acknowledged_at", acknowledged, IncidentState.MITIGATING),
            ("mitigated_at", mitigated, IncidentState.MITIGATED),
            ("resolved_at", resolved, IncidentState.RESOLVED),
            ("review_submitted_at", submitted, IncidentState.TRACKING),
        ):
            if at is None:
                continue
            if at > now:
                break
            draft[name], draft["state"] = at, state
        if draft.get("resolved_at") is not None:
            draft["review_due_at"] = resolved + timedelta(days=7)  # 5 business days, near enough
    reviewed = [d for d in drafts if d.get("review_submitted_at") is not None]
    counts = [1] * len(reviewed)
    for index in rng.choices(range(len(reviewed)), k=max(0, items - len(reviewed))):
        counts[index] += 1
    fill = Fill(incidents=[], items=[])
    for draft, count in zip(reviewed, counts, strict=True):
        draft["_items"] = count
    for draft in drafts:
        finished = _items_of(rng, draft, draft.pop("_items", 0), now, fill.items)
        rungs = draft.pop("escalations_by_rung", [])
        if draft["state"] is IncidentState.TRACKING and finished is not None:
            draft["state"], draft["closed_at"] = IncidentState.CLOSED, finished
        fill.incidents.append(
            IncidentFacts(
                revision=5,
                escalations=len(rungs),
                escalations_by_rung=_by_rung(rungs),
                **draft,
            )
        )
    return fill


def _items_of(
    rng: random.Random, incident: dict[str, Any], count: int, now: datetime, out: list[Any]
) -> datetime | None:
    """Append the incident's `count` items to `out`; when every item is finished, the time the
    last one finished (the incident closes then), else None."""
    if not count:
        return None
    created: datetime = incident["review_submitted_at"]
    last: datetime | None = created
    for number in range(1, count + 1):
        kind = ActionKind.SHORT_TERM if rng.random() < 0.6 else ActionKind.LONG_TERM
        first_due = created + timedelta(days=14 if kind is ActionKind.SHORT_TERM else 60)
        due, extensions = first_due, 0
        while extensions < 3 and rng.random() < 0.15:  # extended, sometimes more than once
            due, extensions = due + timedelta(days=14), extensions + 1
        # Most finish near their due date, some well after.
        finish = created + (first_due - created) * rng.uniform(0.2, 1.1) + _days(rng, 6)
        accepted = rng.random() < 0.06
        state, completed_at, accepted_at = ActionItemState.OPEN, None, None
        if finish <= now:
            if accepted:
                state, accepted_at = ActionItemState.ACCEPTED, finish
            else:
                state, completed_at = ActionItemState.DONE, finish
        elif rng.random() < 0.1:
            state = ActionItemState.VERIFYING
        ended = finish if finish <= now else now
        rungs = _ladder(ended - due)
        out.append(
            ActionItemFacts(
                id=f"{incident['key']}-{number}",
                incident_key=incident["key"],
                number=number,
                revision=4,
                title=f"Bench item {number} of {incident['key']}",
                owning_team=rng.choice(incident["teams"] if rng.random() < 0.7 else TEAMS),
                kind=kind,
                severity=incident["severity"],
                state=state,
                target="local",
                created_at=created,
                first_due_at=first_due,
                due_at=due,
                extensions=extensions,
                completed_at=completed_at,
                accepted_at=accepted_at,
                reopened=1 if rng.random() < 0.03 else 0,
                escalations=len(rungs),
                escalations_by_rung=_by_rung(rungs),
                rung=rungs[-1] if rungs else None,
            )
        )
        last = None if last is None or finish > now else max(last, finish)
    incident["action_items"] = count
    return last


def insert_fill(store: Store, fill: Fill, *, at: datetime) -> dict[str, float]:
    """Bulk INSERTs (executemany, BATCH rows each) of the rows the repository would write."""
    started = time.perf_counter()
    incident_rows = [
        {**incident_columns(f), "revision": f.revision, "recorded_at": at} for f in fill.incidents
    ]
    item_rows = [
        {**action_item_columns(f), "revision": f.revision, "recorded_at": at} for f in fill.items
    ]
    prepared = time.perf_counter() - started
    started = time.perf_counter()
    for table, rows in ((IncidentFactRow, incident_rows), (ActionItemFactRow, item_rows)):
        for offset in range(0, len(rows), BATCH):
            with store.writing() as session:
                session.execute(insert(table), rows[offset : offset + BATCH])
    inserted = time.perf_counter() - started
    return {"rows_prepared_s": round(prepared, 2), "insert_s": round(inserted, 2)}


def fill_shape(fill: Fill) -> dict[str, Any]:
    """What the generated facts hold, so a reader can judge how realistic they are."""

    def tally(values: Iterator[str]) -> dict[str, int]:
        counted: dict[str, int] = {}
        for value in values:
            counted[value] = counted.get(value, 0) + 1
        return dict(sorted(counted.items()))

    incidents, items = fill.incidents, fill.items
    return {
        "incidents": len(incidents),
        "items": len(items),
        "teams": len(TEAMS),
        "services": len(SERVICES),
        "incidents_by_severity": tally(i.severity.value for i in incidents),
        "incidents_by_state": tally(i.state.value for i in incidents),
        "incidents_without_reported_start": sum(i.started_at is None for i in incidents),
        "incidents_escalated": sum(i.escalations > 0 for i in incidents),
        "items_by_state": tally(i.state.value for i in items),
        "items_extended": sum(i.extensions > 0 for i in items),
        "items_done_late": sum(
            i.completed_at is not None and i.completed_at > i.due_at for i in items
        ),
        "items_escalations_by_latest_rung": tally(i.rung.value for i in items if i.rung),
    }


# ---- 2. the metrics ---------------------------------------------------------------------------


def ms(seconds: Sequence[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50": round(percentile(ordered, 50) * 1000, 1),
        "p95": round(percentile(ordered, 95) * 1000, 1),
        "max": round(ordered[-1] * 1000, 1),
    }


def time_metrics(store: Store, *, now: datetime, runs: int, warmups: int) -> dict[str, Any]:
    insights = Insights(store)

    def once() -> Any:
        return insights.metrics(since=WINDOW, by=Grouping.TEAM, now=now)

    for _ in range(warmups):
        report = once()
    seconds, cpu = [], []
    for _ in range(runs):
        started, cpu_started = time.perf_counter(), time.process_time()
        report = once()
        seconds.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    # Where the time goes: the two reads and the computation, timed apart.
    facts = FactsRepository(store)
    since_ms, until_ms = round((now - WINDOW).timestamp() * 1000), round(now.timestamp() * 1000)
    parts: dict[str, list[float]] = {"read_incidents": [], "tally_items": [], "compute": []}
    for _ in range(max(5, runs // 3)):
        started = time.perf_counter()
        incidents = facts.measured_incidents(since_ms, until_ms)
        parts["read_incidents"].append(time.perf_counter() - started)
        started = time.perf_counter()
        items = facts.item_tallies(since_ms, until_ms, Grouping.TEAM)
        parts["tally_items"].append(time.perf_counter() - started)
        started = time.perf_counter()
        compute(incidents, items, since=now - WINDOW, until=now, by=Grouping.TEAM)
        parts["compute"].append(time.perf_counter() - started)
    figures = ms(seconds)
    return {
        "runs": runs,
        "warmups": warmups,
        "ms": figures,
        # This process's CPU time per call: steadier than wall time when the machine is busy.
        "cpu_ms": ms(cpu),
        "parts_p50_ms": {name: ms(values)["p50"] for name, values in parts.items()},
        "rows_read": {"incidents": len(incidents), "item_tallies": len(items)},
        "report": {
            "groups": len(report.groups),
            "incidents": report.total.incidents,
            "cancelled": report.total.cancelled,
            "items_closed": report.total.action_items.closed,
            "items_open": report.total.action_items.open,
            "items_overdue": report.total.action_items.overdue,
        },
        "target_p95_ms": TARGET_P95_MS,
        "meets_target": figures["p95"] < TARGET_P95_MS,
    }


def time_cli(url: str) -> dict[str, Any]:
    """`afteraction metrics --since 365d --by team --json` once, end to end, if it exists."""
    cli = Path(sys.executable).parent / "afteraction"
    env = {**os.environ, "AFTERACTION_DATABASE_URL": url}
    probe = subprocess.run(
        [str(cli), "metrics", "--help"], capture_output=True, text=True, env=env, check=False
    )
    if probe.returncode != 0:
        return {"skipped": "this checkout has no `afteraction metrics` command"}
    started = time.perf_counter()
    result = subprocess.run(
        [str(cli), "metrics", "--since", "365d", "--by", "team", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    wall = time.perf_counter() - started
    figures: dict[str, Any] = {"wall_ms": round(wall * 1000, 1), "exit": result.returncode}
    if result.returncode != 0:
        figures["stderr"] = result.stderr[-500:]
    return figures


def bench_store(url: str, fill: Fill, *, now: datetime, runs: int, warmups: int) -> dict[str, Any]:
    store = open_store(url)
    try:
        loaded = insert_fill(store, fill, at=now)
        print(f"{store.dialect}: filled in {loaded}", file=sys.stderr)
        figures: dict[str, Any] = {"fill": loaded}
        figures["metrics"] = time_metrics(store, now=now, runs=runs, warmups=warmups)
        print(f"{store.dialect}: metrics {figures['metrics']['ms']}", file=sys.stderr)
        figures["cli"] = time_cli(url)
        return figures
    finally:
        store.dispose()


@contextlib.contextmanager
def postgres_url() -> Iterator[str | None]:
    """A fresh database on a PostgreSQL server started as the tests start theirs; None when the
    machine has no server binaries."""
    try:
        from tests.postgres import PostgresUnavailable, running_postgres
    except ImportError:
        yield None
        return
    try:
        with running_postgres() as server:
            yield server.create_database()
    except PostgresUnavailable as error:
        print(f"postgresql: skipped ({error})", file=sys.stderr)
        yield None


# ---- 3. what the facts cost the workflows -----------------------------------------------------


class WithoutFacts(Interceptor):
    """Declares every incident with record_facts=False (its items inherit it): the same
    lifecycle through the same services, minus the writes."""

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _WithoutFacts(next)


class _WithoutFacts(OutboundInterceptor):
    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        args = [
            arg.model_copy(update={"record_facts": False})
            if isinstance(arg, DeclareIncident)
            else arg
            for arg in input.args
        ]
        input.args = args
        return await super().start_workflow(input)


class Lifecycle(Full):
    """bench.lifecycle's full run, with acknowledge, mitigate and a scheduled review added."""

    async def lifecycle(self, number: int, items: int, latencies: Latencies) -> list[str]:
        started = time.perf_counter()
        workflow_ids = await super().lifecycle(number, items, latencies)
        latencies["lifecycle"].append(time.perf_counter() - started)
        return workflow_ids

    async def respond(self, key: str, latencies: Latencies) -> None:
        await self.incidents.command(key, "acknowledge", Acknowledge(commander="alice"))
        await self.incidents.command(key, "mitigate", Transition())
        await self.incidents.command(key, "resolve", Transition())
        when = ScheduleReview(at=datetime.now(UTC) + timedelta(days=1), facilitator="fran")
        await self.incidents.command(key, "schedule_review", when)


@dataclass
class Tasks:
    """Workflow tasks read from histories."""

    task_seconds: float = 0.0
    tasks: int = 0
    failed_tasks: int = 0
    events: int = 0
    markers: int = 0  # local activities: the facts writes

    def add(self, other: Tasks) -> None:
        for name in ("task_seconds", "tasks", "failed_tasks", "events", "markers"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def _seconds(event: Any) -> float:
    return float(event.event_time.seconds + event.event_time.nanos / 1e9)


async def read_tasks(client: Client, workflow_id: str) -> Tasks:
    handle = client.get_workflow_handle(workflow_id)
    await handle.result()  # an item ends with its last report; wait for it
    tasks, started = Tasks(), None
    async for event in handle.fetch_history_events():
        tasks.events += 1
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            started = _seconds(event)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and started is not None:
            tasks.task_seconds += _seconds(event) - started
            tasks.tasks += 1
            started = None
        elif kind in (
            EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
            EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
        ):
            tasks.failed_tasks += 1
            started = None
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            tasks.markers += 1
    return tasks


@dataclass
class Variant:
    name: str
    wall: float = 0.0
    runs: list[list[str]] | None = None
    latencies: Latencies | None = None


async def run_variant(
    driver: Lifecycle, variant: Variant, count: int, items: int, concurrency: int
) -> None:
    gate = asyncio.Semaphore(concurrency)
    assert variant.runs is not None and variant.latencies is not None
    latencies = variant.latencies

    async def one(number: int) -> list[str]:
        async with gate:
            return await driver.lifecycle(number, items, latencies)

    started = time.perf_counter()
    variant.runs += await asyncio.gather(*(one(n) for n in range(count)))
    variant.wall += time.perf_counter() - started


def variant_figures(variant: Variant, per: list[Tasks]) -> dict[str, Any]:
    total = Tasks()
    for tasks in per:
        total.add(tasks)
    count = len(per)
    assert variant.latencies is not None
    return {
        "incidents": count,
        "workflows": sum(len(ids) for ids in variant.runs or []),
        "workflow_task_ms": {
            "total": round(total.task_seconds * 1000, 1),
            "per_incident": round(total.task_seconds * 1000 / count, 1),
            "per_incident_p95": round(
                percentile(sorted(t.task_seconds for t in per), 95) * 1000, 1
            ),
        },
        "workflow_tasks": {"total": total.tasks, "per_incident": round(total.tasks / count, 2)},
        "failed_workflow_tasks": total.failed_tasks,
        "history_events": {"total": total.events, "per_incident": round(total.events / count, 2)},
        "markers_per_incident": round(total.markers / count, 2),
        "wall_seconds": round(variant.wall, 2),
        "lifecycle_ms": ms(variant.latencies["lifecycle"]),
    }


def difference(on: float, off: float, digits: int = 1) -> dict[str, float | None]:
    return {
        "absolute": round(on - off, digits),
        "percent": round((on - off) / off * 100, 1) if off else None,
    }


async def facts_cost(count: int, items: int, concurrency: int) -> dict[str, Any]:
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        search_attributes=search_attributes.ALL,
        dev_server_startup_timeout=timedelta(seconds=60),
    )
    home = Path(tempfile.mkdtemp(prefix="afteraction-bench-insights-"))
    try:
        settings = Settings(home=home)
        client = env.client
        config = client.config()
        config["interceptors"] = [WithoutFacts()]
        without = Client(**config)
        drivers = {"with_facts": Lifecycle(client, home), "without_facts": Lifecycle(without, home)}
        variants = {name: Variant(name, runs=[], latencies=Latencies()) for name in drivers}
        async with build_worker(client, settings, task_queue=FULL_QUEUE):
            for driver in drivers.values():  # unmeasured: first polls, caches, the store's file
                await driver.lifecycle(-1, items, Latencies())
            # ABBA, so that neither variant always runs on the warmer worker.
            halves = (count // 2, count - count // 2)
            order = ("with_facts", "without_facts", "without_facts", "with_facts")
            for index, name in enumerate(order):
                size = halves[index // 2]
                print(f"facts_cost: {name}, {size} incidents", file=sys.stderr)
                await run_variant(drivers[name], variants[name], size, items, concurrency)
            per: dict[str, list[Tasks]] = {}
            for name, variant in variants.items():
                per[name] = []
                for ids in variant.runs or []:
                    incident = Tasks()
                    for one in await asyncio.gather(*(read_tasks(client, i) for i in ids)):
                        incident.add(one)
                    per[name].append(incident)
            rows = facts_rows(settings, variants)
    finally:
        await env.shutdown()
        shutil.rmtree(home, ignore_errors=True)
    on = variant_figures(variants["with_facts"], per["with_facts"])
    off = variant_figures(variants["without_facts"], per["without_facts"])
    return {
        "incidents_per_variant": count,
        "items_per_incident": items,
        "concurrency": concurrency,
        "with_facts": {**on, "facts_rows": rows["with_facts"]},
        "without_facts": {**off, "facts_rows": rows["without_facts"]},
        "cost_of_facts": {
            "workflow_task_ms_per_incident": difference(
                on["workflow_task_ms"]["per_incident"], off["workflow_task_ms"]["per_incident"]
            ),
            "workflow_tasks_per_incident": difference(
                on["workflow_tasks"]["per_incident"], off["workflow_tasks"]["per_incident"], 2
            ),
            "history_events_per_incident": difference(
                on["history_events"]["per_incident"], off["history_events"]["per_incident"], 2
            ),
            "wall_seconds": difference(on["wall_seconds"], off["wall_seconds"], 2),
            "lifecycle_p50_ms": difference(on["lifecycle_ms"]["p50"], off["lifecycle_ms"]["p50"]),
        },
    }


def facts_rows(settings: Settings, variants: dict[str, Variant]) -> dict[str, dict[str, int]]:
    """The read model's rows of each variant's incidents and items: all of them with the facts,
    none without (a check that the switch did what it says)."""
    facts = FactsRepository(configured_store(settings))
    rows = {}
    for name, variant in variants.items():
        runs = variant.runs or []
        keys = [ids[0].removeprefix("incident/") for ids in runs]
        item_ids = [
            f"{key}-{n}" for key, ids in zip(keys, runs, strict=True) for n in range(1, len(ids))
        ]
        rows[name] = {
            "incidents": len(facts.incidents(keys)),
            "items": len(facts.action_items(item_ids)),
        }
    return rows


# ---- the run ----------------------------------------------------------------------------------


@dataclass
class Config:
    incidents: int
    items: int
    runs: int
    warmups: int
    lifecycles: int
    lifecycle_items: int
    concurrency: int
    seed: int
    postgres: bool


def run(config: Config) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    fill = generate(config.incidents, config.items, now=now, seed=config.seed)
    generated = time.perf_counter() - started
    # The 60,000 generated facts stay in memory for the fills; out of the collector's sight,
    # so the timed calls pay for a heap like the CLI's, not for scanning them.
    gc.collect()
    gc.freeze()
    print(f"generated {len(fill.incidents)} incidents, {len(fill.items)} items", file=sys.stderr)
    result: dict[str, Any] = {
        "config": {**config.__dict__, "cpus": os.cpu_count()},
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
        "fill": {**fill_shape(fill), "generate_s": round(generated, 2)},
    }
    stores: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="afteraction-bench-insights-") as folder:
        url = f"sqlite:///{Path(folder, 'insights.db').resolve()}"
        stores["sqlite"] = bench_store(url, fill, now=now, runs=config.runs, warmups=config.warmups)
    if config.postgres:
        with postgres_url() as pg:
            if pg is not None:
                stores["postgresql"] = bench_store(
                    pg, fill, now=now, runs=config.runs, warmups=config.warmups
                )
    result["stores"] = stores
    result["meets_target"] = all(s["metrics"]["meets_target"] for s in stores.values())
    result["load_average_after_metrics"] = [round(load, 2) for load in os.getloadavg()]
    if config.lifecycles:
        result["facts_cost"] = asyncio.run(
            facts_cost(config.lifecycles, config.lifecycle_items, config.concurrency)
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description="The insights metrics over a filled read model, and what writing the facts "
        "costs the workflows; prints JSON."
    )
    parser.add_argument("--incidents", type=int, help="incidents to fill (10000)")
    parser.add_argument("--items", type=int, help="action items to fill (50000)")
    parser.add_argument("--runs", type=int, default=30, help="timed metrics runs (30)")
    parser.add_argument("--warmups", type=int, default=3, help="untimed runs first (3)")
    parser.add_argument("--lifecycles", type=int, help="lifecycles per variant (30; 0: none)")
    parser.add_argument("--lifecycle-items", type=int, default=3, help="items each (3)")
    parser.add_argument("--concurrency", type=int, default=5, help="lifecycles at once (5)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument(
        "--quick", action="store_true", help="1,000 incidents, 5,000 items, 6 lifecycles"
    )
    args = parser.parse_args()
    quick = args.quick
    config = Config(
        incidents=args.incidents or (1_000 if quick else 10_000),
        items=args.items or (5_000 if quick else 50_000),
        runs=10 if quick and args.runs == 30 else args.runs,
        warmups=args.warmups,
        lifecycles=args.lifecycles if args.lifecycles is not None else (6 if quick else 30),
        lifecycle_items=args.lifecycle_items,
        concurrency=args.concurrency,
        seed=args.seed,
        postgres=not args.no_postgres,
    )
    if min(config.incidents, config.runs, config.lifecycle_items, config.concurrency) < 1:
        parser.error("--incidents, --runs, --lifecycle-items and --concurrency must be at least 1")
    with stdout_to_stderr():
        configure_logging(log_format="json", level="warning")
        result = run(config)
    emit_and_exit(result)


if __name__ == "__main__":
    main()

"""Record representative IncidentWorkflow histories for the replay test (tests/test_replay.py).

    .venv/bin/python -m tests.record_histories [--tag TAG] [--out DIR]

Starts a throwaway dev server (the venv's `temporal` binary) and the product's worker, runs
each scenario below with a seconds-scale policy, and writes one file per scenario:
tests/histories/incident-<scenario>-<tag>.json (tag: today's UTC date unless given). It never
overwrites a file: saved histories are the record of what released code did. See
tests/histories/README.md for when to run it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from domain import search_attributes
from domain.commands import (
    Acknowledge,
    AddTimelineEvent,
    AssignRole,
    Cancel,
    SetSeverity,
    Transition,
)
from domain.incident import Incident, Role
from domain.policy import Policy
from domain.severity import Severity
from settings import Settings
from tests.helpers import declare, eventually
from tests.policies import fast_policy, slow_policy
from tests.servers import dev_server_path
from worker import build_worker
from workflows.incident import IncidentWorkflow

HISTORIES = Path(__file__).parent / "histories"

Handle = WorkflowHandle[IncidentWorkflow, Incident]
Scenario = Callable[[Client, str], Awaitable[Handle]]


async def escalations(handle: Handle, count: int) -> Incident:
    return await eventually(
        lambda: handle.query(IncidentWorkflow.state),
        lambda incident: len(incident.escalations) >= count,
        timeout=30,
    )


async def notifications_settled(handle: Handle) -> None:
    """Wait until every notify_escalation activity scheduled so far has completed."""

    async def counts() -> tuple[int, int]:
        scheduled = completed = 0
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                scheduled += 1
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                completed += 1
        return scheduled, completed

    await eventually(counts, lambda pair: pair[0] == pair[1], timeout=30)


async def lifecycle_with_escalations(client: Client, task_queue: str) -> Handle:
    """Missed acknowledgement (owner, team lead), then every command, then a missed review."""
    handle = await declare(client, task_queue, fast_policy(), declared_by="alice")
    await escalations(handle, 2)
    await handle.execute_update(IncidentWorkflow.acknowledge, Acknowledge(commander="bob"))
    await handle.execute_update(
        IncidentWorkflow.assign_role, AssignRole(role=Role.SCRIBE, person="carol")
    )
    await handle.execute_update(
        IncidentWorkflow.assign_role, AssignRole(role=Role.SUBJECT_MATTER_EXPERT, person="dan")
    )
    await handle.execute_update(
        IncidentWorkflow.add_timeline_event,
        AddTimelineEvent(
            text="deploy 42 rolled out", at=datetime.now(UTC) - timedelta(minutes=10), by="bob"
        ),
    )
    await handle.execute_update(
        IncidentWorkflow.set_severity, SetSeverity(severity=Severity.SEV1, reason="all regions")
    )
    await handle.execute_update(IncidentWorkflow.mitigate, Transition(note="traffic drained"))
    # Rejected by its validator (already mitigated): it must leave no trace, replay included.
    with contextlib.suppress(WorkflowUpdateFailedError):
        await handle.execute_update(IncidentWorkflow.mitigate, Transition())
    await handle.execute_update(IncidentWorkflow.resolve, Transition(note="rolled back"))
    before_review = len((await handle.query(IncidentWorkflow.state)).escalations)
    await escalations(handle, before_review + 2)  # review: owner, then team lead
    await notifications_settled(handle)
    await handle.terminate("recorded")
    return handle


async def cancelled_after_an_escalation(client: Client, task_queue: str) -> Handle:
    """A false alarm: the acknowledge deadline is missed once, then it is cancelled."""
    handle = await declare(client, task_queue, fast_policy(), severity=Severity.SEV3)
    await escalations(handle, 1)
    await handle.execute_update(
        IncidentWorkflow.cancel, Cancel(reason="false alarm: synthetic check", by="alice")
    )
    await handle.result()
    return handle


def sev3_slow_policy() -> Policy:
    fast = fast_policy()
    slow = slow_policy().for_severity(Severity.SEV3)
    return fast.model_copy(update={"severities": {**fast.severities, Severity.SEV3: slow}})


async def severity_changes(client: Client, task_queue: str) -> Handle:
    """SEV3 raised to SEV1 (the acknowledge deadline moves in and fires), lowered back to SEV3
    (the ladder stops), then acknowledged, resolved and missing its review."""
    handle = await declare(client, task_queue, sev3_slow_policy(), severity=Severity.SEV3)
    await handle.execute_update(IncidentWorkflow.set_severity, SetSeverity(severity=Severity.SEV1))
    await escalations(handle, 1)
    await handle.execute_update(IncidentWorkflow.set_severity, SetSeverity(severity=Severity.SEV3))
    await asyncio.sleep(1.5)
    await handle.execute_update(IncidentWorkflow.acknowledge, Acknowledge(commander="erin"))
    await handle.execute_update(IncidentWorkflow.set_severity, SetSeverity(severity=Severity.SEV2))
    await handle.execute_update(IncidentWorkflow.resolve, Transition())
    before_review = len((await handle.query(IncidentWorkflow.state)).escalations)
    await escalations(handle, before_review + 1)
    await notifications_settled(handle)
    await handle.terminate("recorded")
    return handle


async def continued_as_new(client: Client, task_queue: str) -> Handle:
    """A run that hands its incident to a new run (a tiny history limit forces it early)."""
    policy = fast_policy(acknowledge_within="4s", status_update_every="1h", resolve_within="1h")
    handle = await declare(client, task_queue, policy, history_limit=20)
    for number in range(6):
        await handle.execute_update(
            IncidentWorkflow.add_timeline_event, AddTimelineEvent(text=f"note {number}")
        )
    latest: Handle = client.get_workflow_handle(handle.id, result_type=Incident)
    await escalations(latest, 1)
    await latest.execute_update(IncidentWorkflow.cancel, Cancel(reason="drill over"))
    await latest.result()
    return handle  # the first run, whose history ends in continue-as-new


SCENARIOS: dict[str, Scenario] = {
    "lifecycle-escalations": lifecycle_with_escalations,
    "cancelled": cancelled_after_an_escalation,
    "severity-change": severity_changes,
    "continued-as-new": continued_as_new,
}


async def record(out: Path, tag: str) -> list[Path]:
    targets = {name: out / f"incident-{name}-{tag}.json" for name in SCENARIOS}
    existing = [str(path) for path in targets.values() if path.exists()]
    if existing:
        raise SystemExit(
            "refusing to overwrite saved histories (they must never change): "
            + ", ".join(existing)
            + "; pass another --tag"
        )
    out.mkdir(parents=True, exist_ok=True)
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=dev_server_path(),
        search_attributes=search_attributes.ALL,
        dev_server_startup_timeout=timedelta(seconds=60),
    )
    try:
        task_queue = f"record-{uuid.uuid4()}"
        async with build_worker(env.client, Settings(), task_queue=task_queue):
            handles = await asyncio.gather(
                *(scenario(env.client, task_queue) for scenario in SCENARIOS.values())
            )
            for (name, path), handle in zip(targets.items(), handles, strict=True):
                history = await handle.fetch_history()
                path.write_text(history.to_json() + "\n", encoding="utf-8")
                print(f"{path}: {len(history.events)} events ({name})")
    finally:
        await env.shutdown()
    return list(targets.values())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Record IncidentWorkflow histories for replay.")
    parser.add_argument(
        "--tag",
        default=datetime.now(UTC).strftime("%Y%m%d"),
        help="suffix of the file names, e.g. the release (default: today's UTC date)",
    )
    parser.add_argument("--out", type=Path, default=HISTORIES, help="where to write")
    args = parser.parse_args(argv)
    asyncio.run(record(args.out, args.tag))


if __name__ == "__main__":
    main(sys.argv[1:])

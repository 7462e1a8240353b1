"""Chaos: whole incident lifecycles while workers die and the Temporal server restarts, with
tracker events replayed and reordered; then an audit of what must still hold (issue 16, item 8).

    .venv/bin/python -m bench.chaos --incidents 10 --items 3 --worker-kills 5 --server-restarts 2

It needs nothing running and uses loopback only. In a fresh state folder it starts a dev
server on a database file, two worker processes and the API (bench/chaos_stack.py), then:

1. declares N incidents through the API, before the first fault (a declaration carries no
   request id, so one whose answer is lost could not be told from one never made);
2. drives each one as people would, through the API: acknowledge, resolve, submit a review
   with M action items (every team on the local tracker), wait for the tickets, close each
   ticket (POST /api/tickets/{key}/close), verify each item, wait for the incident to close.
   A share of the incidents (SEV2 under the run's policy) is left unacknowledged until its
   acknowledge deadline has escalated, and their items stay open until their due date has;
3. meanwhile kills a random worker with SIGKILL K times (starting it again each time) and
   the dev server R times (twice by default; started again on the same file and port), each
   fault when the run reaches a point of its progress drawn from the seed;
4. replays and reorders a share of the tracker events, sent straight to the items as a
   replayed webhook arrives (same ticket, its old time, a fresh delivery id): after a close,
   the close again and then the ticket's earlier open state; or close, reopen, the first
   close again, close, the reopen again. The item must ignore every status older than the
   last it applied, and stay where the newest one put it;
5. audits: each item has exactly one ticket in the store, every incident is closed and every
   item done, every due escalation fired exactly once (its record, its notification, its
   ticket comment and label) and none fired that was not due, and no workflow task is left
   failing.

A command whose answer is an error is sent again after reading whether it took effect (the
outcome of a command is unknown while the server restarts). Every wait polls for the state
it needs, within a bound. stdout carries one JSON object; the exit status is 1 on any miss.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import random
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from bench.chaos_stack import ChaosStack, StackFailed
from bench.lifecycle import review_with
from bench.output import emit_and_exit, stdout_to_stderr
from domain.action_item import (
    ActionItem,
    ActionItemState,
    TicketChanged,
    TicketStatus,
    action_workflow_id,
)
from domain.escalation import DeadlineKind, EscalationRecord
from domain.incident import Incident, IncidentState, workflow_id_for
from domain.policy import Rung
from domain.severity import Severity
from domain.tickets import TicketComment
from integrations.local import TARGET, LocalTracker
from integrations.tracker import Ticket
from telemetry.logs import configure_logging
from workflows.action_item import ActionItemWorkflow

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
W = TypeVar("W", Incident, ActionItem)  # what a workflow's state query answers

LATE, PROMPT = Severity.SEV2, Severity.SEV3
# Each ladder's owner step at once, the next an hour later: a missed deadline escalates
# exactly once within the run.
LADDER = 'owner = "0s"\nteam_lead = "1h"\nmanager = "2h"\nleadership = "3h"\nrepeat_every = "1h"'


def policy_toml() -> str:
    """The run's policy. SEV2 is the late share: acknowledge within 2s, action items due 2s after
    the review, so a late incident and each of its items escalate once. SEV3 is the prompt
    share: nothing falls due within an hour."""
    sections = []
    for severity, within in ((LATE, "2s"), (PROMPT, "1h")):
        sections.append(
            f"""
[severities.{severity.value}]
acknowledge_within = "{within}"
status_update_every = "1h"
resolve_within = "1h"
review_within = "1h"

[severities.{severity.value}.escalation]
{LADDER}

[severities.{severity.value}.action_items]
remind_before = []
stall_after = "1h"
verification_required = true

[severities.{severity.value}.action_items.due_within]
short_term_mitigation = "{within}"
long_term_systemic = "{within}"

[severities.{severity.value}.action_items.escalation]
{LADDER}
"""
        )
    return "".join(sections)


WORKERS = 2
# Answers after which a command may have taken effect, or may yet: read, then send again.
UNCERTAIN = {409, 500, 502, 503, 504}
# Replays of tracker events, per item (see Driver.item): the close again and the ticket's open
# state from before it; or, around a reopen, each earlier status again after a newer one.
STALE_OPEN, REOPEN_CYCLE = "stale-open", "reopen-cycle"


class Stuck(Exception):
    """A lifecycle step did not happen within its bound; the message says which."""


# ---- the plan: everything the seed decides -----------------------------------------------


@dataclass(frozen=True)
class Fault:
    at: float  # the share of the run's progress after which it strikes
    kind: str  # "worker" or "server"
    worker: int = 0


@dataclass(frozen=True)
class Plan:
    incidents: int
    items: int
    late: frozenset[int]  # incident numbers left unacknowledged until they escalate
    replays: dict[tuple[int, int], str]  # (incident, item) -> STALE_OPEN or REOPEN_CYCLE
    faults: list[Fault]

    @property
    def steps(self) -> int:
        """Progress steps: acknowledge, resolve, review, each item open, closed and verified,
        and the incident closed."""
        return self.incidents * (4 + 3 * self.items)


def make_plan(args: argparse.Namespace) -> Plan:
    rng = random.Random(args.seed)
    numbers = range(1, args.incidents + 1)
    late = frozenset(rng.sample(numbers, round(args.incidents * args.late_share)))
    pairs = [(n, i) for n in numbers for i in range(1, args.items + 1)]
    chosen = rng.sample(pairs, round(len(pairs) * args.replay_share))
    replays = {pair: rng.choice((STALE_OPEN, REOPEN_CYCLE)) for pair in sorted(chosen)}
    kinds = ["worker"] * args.worker_kills + ["server"] * args.server_restarts
    rng.shuffle(kinds)
    # Spread over 5-85% of the run, one fault in each slice, at a random point of its slice.
    width = 0.8 / max(len(kinds), 1)
    faults = [
        Fault(at=0.05 + width * (n + rng.random()), kind=kind, worker=rng.randrange(WORKERS))
        for n, kind in enumerate(kinds)
    ]
    return Plan(args.incidents, args.items, late, replays, faults)


# ---- progress, which times the faults ------------------------------------------------------


class Progress:
    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self._over = False
        self._changed = asyncio.Condition()

    async def step(self, count: int = 1) -> None:
        async with self._changed:
            self.done += count
            self._changed.notify_all()

    async def end(self) -> None:
        """No more progress will come: every waiter is released."""
        async with self._changed:
            self._over = True
            self._changed.notify_all()

    async def reached(self, share: float) -> bool:
        """Wait until `share` of the steps are done: False when the run ended short of it."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._over or self.done >= share * self.total)
            return self.done >= share * self.total


# ---- talking to the API --------------------------------------------------------------------


@dataclass
class Tally:
    answers: Counter[str] = field(default_factory=Counter)  # HTTP status, or "no answer"
    # Commands answered with an error (or not at all) that had taken effect all the same, and
    # commands applied when sent again after an error answer (by command and answers).
    applied_despite_error: Counter[str] = field(default_factory=Counter)
    answered_after_error: Counter[str] = field(default_factory=Counter)
    replayed_items: Counter[str] = field(default_factory=Counter)
    replayed_signals: int = 0
    signal_retries: int = 0
    stale_applied: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    # The first error answer of each of those kinds.
    error_examples: dict[str, str] = field(default_factory=dict)


class Api:
    def __init__(self, url: str, secret: str, tally: Tally) -> None:
        self._http = httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {secret}"}, timeout=30
        )
        self._tally = tally

    async def close(self) -> None:
        await self._http.aclose()

    async def request(
        self, method: str, path: str, body: Any = None, *, key: str | None = None
    ) -> httpx.Response | None:
        """`key`: the command's Idempotency-Key, the same on every try of one command."""
        headers = {"Idempotency-Key": key} if key else None
        try:
            response = await self._http.request(method, path, json=body, headers=headers)
        except httpx.HTTPError:
            self._tally.answers["no answer"] += 1
            return None
        self._tally.answers[str(response.status_code)] += 1
        return response

    async def read(self, path: str, model: type[M]) -> M | None:
        """The resource as `model`, or None while it cannot be read (an outage, say)."""
        response = await self.request("GET", path)
        if response is None or response.status_code != 200:
            return None
        return model.model_validate(response.json())


class Driver:
    def __init__(
        self,
        plan: Plan,
        api: Api,
        client: Client,
        stack: ChaosStack,
        tally: Tally,
        *,
        step_timeout: float,
        deadline: float,
    ) -> None:
        self.plan = plan
        self.api = api
        self.client = client
        self.stack = stack
        self.tally = tally
        self.progress = Progress(plan.steps)
        self.step_timeout = step_timeout
        self.deadline = deadline
        self.faults_done: list[dict[str, Any]] = []

    # ---- waiting and commanding ----------------------------------------------------------

    async def poll(
        self, what: str, probe: Callable[[], Awaitable[T | None]], accept: Callable[[T], bool]
    ) -> T:
        give_up = min(time.monotonic() + self.step_timeout, self.deadline)
        interval = 0.1
        while True:
            value = await probe()
            if value is not None and accept(value):
                return value
            if time.monotonic() > give_up:
                raise Stuck(
                    f"{what}: not within {self.step_timeout:.0f}s; last seen {value!r:.300}"
                )
            await asyncio.sleep(interval)
            interval = min(interval * 1.5, 1.0)

    async def command(
        self, what: str, path: str, body: Any, applied: Callable[[], Awaitable[bool]]
    ) -> dict[str, Any] | None:
        """POST until the command took effect: its answer, or None when it took effect although
        its answer was an error, 202 (sent, not applied yet) or never came. Every try carries
        the same Idempotency-Key, so a try attaches to a command still pending instead of
        sending a second one. `what` is "<subject> <command>"."""
        give_up = min(time.monotonic() + self.step_timeout, self.deadline)
        key = uuid.uuid4().hex
        answers: list[str] = []
        first_error = ""
        interval = 0.2
        while True:
            if answers and await applied():
                command = what.rsplit(" ", 1)[-1]
                kind = f"{command}: {', '.join(answers)}"
                self.tally.applied_despite_error[kind] += 1
                self.tally.error_examples.setdefault(kind, first_error)
                return None
            response = await self.api.request("POST", path, body, key=key)
            if response is not None and response.is_success and response.status_code != 202:
                if answers:
                    kind = f"{what.rsplit(' ', 1)[-1]}: {', '.join(answers)}"
                    self.tally.answered_after_error[kind] += 1
                    self.tally.error_examples.setdefault(kind, first_error)
                answer: dict[str, Any] = response.json()
                return answer
            status = "no answer" if response is None else str(response.status_code)
            if response is not None and response.status_code not in UNCERTAIN | {202}:
                raise Stuck(f"{what}: {status} {response.text[:300]}")
            answers.append(status)
            if not first_error:
                first_error = f"{status} {response.text[:300] if response is not None else ''}"
            if time.monotonic() > give_up:
                detail = response.text[:300] if response is not None else ""
                raise Stuck(f"{what}: answered {', '.join(answers)} {detail}")
            await asyncio.sleep(interval)
            interval = min(interval * 1.5, 2.0)

    # ---- the faults ----------------------------------------------------------------------

    async def inject_faults(self) -> None:
        for fault in self.plan.faults:
            if not await self.progress.reached(fault.at):
                return
            done: dict[str, Any] = {
                "kind": fault.kind,
                "at_progress": round(self.progress.done / self.progress.total, 3),
            }
            if fault.kind == "worker":
                done["worker"] = fault.worker + 1
                done["polling_again_after_s"] = round(await self.stack.kill_worker(fault.worker), 2)
            else:
                done["answering_again_after_s"] = round(await self.stack.restart_server(), 2)
            print(f"fault: {done}", flush=True)
            self.faults_done.append(done)

    # ---- one incident --------------------------------------------------------------------

    async def declare(self, number: int) -> str:
        body = {
            "title": f"Chaos incident {number}",
            "severity": (LATE if number in self.plan.late else PROMPT).value,
            "services": ["checkout"],
            "teams": ["payments"],
        }
        response = await self.api.request("POST", "/api/incidents", body)
        if response is None or response.status_code != 201:
            detail = "no answer" if response is None else f"{response.status_code} {response.text}"
            raise StackFailed(f"declaring incident {number}: {detail}")
        key: str = response.json()["key"]
        return key

    async def incident(self, number: int, key: str) -> None:
        path = f"/api/incidents/{key}"

        async def read() -> Incident | None:
            return await self.api.read(path, Incident)

        def reached(accept: Callable[[Incident], bool]) -> Callable[[], Awaitable[bool]]:
            async def probe() -> bool:
                incident = await read()
                return incident is not None and accept(incident)

            return probe

        if number in self.plan.late:
            await self.poll(f"{key}: acknowledge escalated", read, lambda i: bool(i.escalations))
        review = review_with(self.plan.items, number).model_dump(mode="json")
        steps: list[tuple[str, Any, Callable[[Incident], bool]]] = [
            ("acknowledge", {"commander": "casey"}, lambda i: i.clock.acknowledged_at is not None),
            ("resolve", {"note": "rolled back"}, lambda i: i.clock.resolved_at is not None),
            ("review", review, lambda i: i.review is not None),
        ]
        for command, body, taken in steps:
            await self.command(f"{key} {command}", f"{path}/{command}", body, reached(taken))
            await self.progress.step()

        def all_open(incident: Incident) -> bool:
            items = incident.action_items
            return len(items) == self.plan.items and all(
                item.ticket is not None and item.state is not ActionItemState.CREATING
                for item in items
            )

        incident = await self.poll(f"{key}: every item has its ticket", read, all_open)
        await self.progress.step(self.plan.items)
        outcomes = await asyncio.gather(
            *(
                self.item(number, key, item.number, item.ticket.key)
                for item in incident.action_items
                if item.ticket is not None
            ),
            return_exceptions=True,
        )
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        for failure in failures:
            named = isinstance(failure, Stuck)
            self.tally.stuck.append(
                str(failure) if named else f"{type(failure).__name__}: {failure}"
            )
        if failures:
            return  # the incident cannot close
        await self.poll(f"{key}: closed", read, lambda i: i.state is IncidentState.CLOSED)
        await self.progress.step()

    # ---- one action item -----------------------------------------------------------------

    async def item(self, incident: int, key: str, number: int, ticket_key: str) -> None:
        item_id = f"{key}-{number}"
        path = f"/api/actions/{item_id}"

        async def read() -> ActionItem | None:
            return await self.api.read(path, ActionItem)

        if incident in self.plan.late:
            await self.poll(f"{item_id}: due date escalated", read, lambda i: bool(i.escalations))
        opened = await self.poll(
            f"{ticket_key}: readable",
            lambda: self.api.read(f"/api/tickets/{ticket_key}", Ticket),
            lambda ticket: ticket.status is TicketStatus.OPEN,
        )
        closed_at = await self.set_ticket(item_id, ticket_key, "close", ActionItemState.VERIFYING)
        await self.progress.step()
        scenario = self.plan.replays.get((incident, number))
        if scenario is not None:
            self.tally.replayed_items[scenario] += 1
            replay = functools.partial(
                self.replay, item_id, action_workflow_id(key, number), ticket_key, read
            )
            if scenario == STALE_OPEN:
                # The close once more, then the ticket's open state from before it.
                await replay(
                    [(TicketStatus.CLOSED, closed_at), (TicketStatus.OPEN, opened.updated_at)],
                    ActionItemState.VERIFYING,
                )
            else:
                reopened_at = await self.set_ticket(
                    item_id, ticket_key, "reopen", ActionItemState.OPEN
                )
                # The first close again after the reopen, and the reopen after the second close.
                await replay([(TicketStatus.CLOSED, closed_at)], ActionItemState.OPEN)
                await self.set_ticket(item_id, ticket_key, "close", ActionItemState.VERIFYING)
                await replay([(TicketStatus.OPEN, reopened_at)], ActionItemState.VERIFYING)
        await self.command(
            f"{item_id} verify",
            f"{path}/verify",
            {"evidence": "error rate below 0.1% on the dashboard"},
            self._item_in(read, ActionItemState.DONE),
        )
        await self.progress.step()

    @staticmethod
    def _item_in(
        read: Callable[[], Awaitable[ActionItem | None]], state: ActionItemState
    ) -> Callable[[], Awaitable[bool]]:
        async def probe() -> bool:
            item = await read()
            return item is not None and item.state is state

        return probe

    async def set_ticket(
        self, item_id: str, ticket_key: str, action: str, heard: ActionItemState
    ) -> datetime:
        """Close or reopen the ticket as its team would; once the item has followed, the
        ticket's time of the change (the time its webhook would carry)."""
        path = f"/api/actions/{item_id}"

        async def read() -> ActionItem | None:
            return await self.api.read(path, ActionItem)

        answer = await self.command(
            f"{ticket_key} {action}",
            f"/api/tickets/{ticket_key}/{action}",
            {},
            self._item_in(read, heard),
        )
        await self.poll(
            f"{item_id}: {heard.value} after {action}", read, lambda i: i.state is heard
        )
        if answer is not None:
            return Ticket.model_validate(answer["ticket"]).updated_at
        ticket = await self.poll(
            f"{ticket_key}: readable",
            lambda: self.api.read(f"/api/tickets/{ticket_key}", Ticket),
            lambda _: True,
        )
        return ticket.updated_at

    async def replay(
        self,
        item_id: str,
        workflow_id: str,
        ticket_key: str,
        read: Callable[[], Awaitable[ActionItem | None]],
        events: list[tuple[TicketStatus, datetime]],
        stays: ActionItemState,
    ) -> None:
        """Send earlier statuses again under fresh delivery ids, in order, as a tracker
        re-sending captured webhooks would; once the item has taken them in, it must still be
        in the state `stays` (the last status applied is newer than all of them)."""
        handle = self.client.get_workflow_handle(workflow_id)
        sent: list[str] = []
        for status, at in events:
            change = TicketChanged(
                ticket_key=ticket_key,
                event="closed" if status is TicketStatus.CLOSED else "reopened",
                status=status,
                at=at,
                source=TARGET,
                delivery_id=str(uuid.uuid4()),
            )

            async def send(change: TicketChanged = change) -> bool:
                try:
                    await handle.signal(ActionItemWorkflow.ticket_changed, change)
                except RPCError:
                    self.tally.signal_retries += 1
                    return False
                return True

            await self.poll(f"{item_id}: replay sent", send, lambda accepted: accepted)
            assert change.delivery_id is not None
            sent.append(change.delivery_id)
            self.tally.replayed_signals += 1
        item = await self.poll(
            f"{item_id}: replays received",
            read,
            lambda i: set(sent) <= set(i.seen_deliveries),
        )
        if item.state is not stays:
            self.tally.stale_applied.append(item_id)
            raise Stuck(
                f"{item_id} applied a replayed older status: it is {item.state.value}, "
                f"not {stays.value}"
            )


# ---- the audit -----------------------------------------------------------------------------


async def final_state(client: Client, workflow_id: str, model: type[W]) -> W | None:
    """What the workflow's `state` query answers (None when it cannot answer: a workflow task
    failing, say); once that is final, the workflow's result, after it has finished what it
    does last (an item its last comment, an incident its last update)."""
    handle = client.get_workflow_handle(workflow_id, result_type=model)
    try:
        state = await handle.query("state", result_type=model, rpc_timeout=timedelta(seconds=10))
    except (RPCError, WorkflowQueryFailedError):
        return None
    if not state.state.is_final:
        return state
    try:
        result: W = await asyncio.wait_for(handle.result(), timeout=30)
    except TimeoutError:
        return state
    return result


@dataclass
class Histories:
    """What the histories say: workflow-task failures, and escalation notifications scheduled."""

    workflows: int = 0
    failed_events: Counter[str] = field(default_factory=Counter)  # by cause
    left_failing: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    notifications: Counter[str] = field(default_factory=Counter)  # by workflow id

    async def read(self, client: Client, workflow_id: str) -> None:
        """A workflow task is left failing when the last one in the history failed, or when
        a running workflow's pending one is a retry."""
        handle = client.get_workflow_handle(workflow_id)
        try:
            description = await handle.describe()
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
            self.missing.append(workflow_id)
            return
        self.workflows += 1
        failing = False
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                attributes = event.workflow_task_failed_event_attributes
                cause = WorkflowTaskFailedCause.Name(attributes.cause)
                self.failed_events[cause.removeprefix("WORKFLOW_TASK_FAILED_CAUSE_")] += 1
                failing = True
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                failing = False
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                scheduled = event.activity_task_scheduled_event_attributes.activity_type.name
                if scheduled == "notify_escalation":
                    self.notifications[workflow_id] += 1
        pending = description.raw_description.pending_workflow_task
        if description.status is WorkflowExecutionStatus.RUNNING and pending.attempt > 1:
            failing = True
        if failing:
            self.left_failing.append(workflow_id)


@dataclass
class EscalationCheck:
    """Each workflow's escalations against the plan: exactly the expected owner step, each with
    one notification scheduled and, on an item's ticket, one comment and the rung's label."""

    expected: int = 0
    recorded: int = 0
    notifications_scheduled: int = 0
    ticket_comments: int = 0
    wrong: list[str] = field(default_factory=list)
    max_late_seconds: float = 0.0

    def check(
        self,
        workflow_id: str,
        records: list[EscalationRecord],
        histories: Histories,
        *,
        expected: int,
        kind: DeadlineKind,
    ) -> None:
        self.expected += expected
        self.recorded += len(records)
        if [(record.deadline, record.rung) for record in records] != [
            (kind, Rung.OWNER)
        ] * expected:
            steps = [f"{record.deadline.value}/{record.rung.value}" for record in records]
            self.wrong.append(
                f"{workflow_id}: escalations {steps}, expected {expected} {kind.value}/owner"
            )
        notified = histories.notifications[workflow_id]
        self.notifications_scheduled += notified
        if notified != len(records):
            self.wrong.append(
                f"{workflow_id}: {notified} notifications for {len(records)} escalations"
            )
        for record in records:
            late = (record.at - record.due_at).total_seconds()
            if late < 0:
                self.wrong.append(f"{workflow_id}: escalated {-late:.3f}s before its due time")
            self.max_late_seconds = max(self.max_late_seconds, late)

    def on_ticket(self, ticket: Ticket, comments: list[TicketComment], escalated: int) -> None:
        written = sum(1 for comment in comments if "/escalation/" in comment.idempotency_key)
        self.ticket_comments += written
        labelled = f"escalated:{Rung.OWNER.value}" in ticket.labels
        if written != escalated or labelled != bool(escalated):
            self.wrong.append(
                f"{ticket.ref.key}: {written} escalation comments, label "
                f"{'present' if labelled else 'absent'}, for {escalated} escalations"
            )

    def summary(self) -> dict[str, Any]:
        return {
            "expected": self.expected,
            "recorded": self.recorded,
            "notifications_scheduled": self.notifications_scheduled,
            "ticket_comments": self.ticket_comments,
            "max_seconds_after_due": round(self.max_late_seconds, 3),
            "wrong": self.wrong,
        }


async def audit(client: Client, stack: ChaosStack, plan: Plan, keys: list[str]) -> dict[str, Any]:
    """Read every incident and item (their final state and history) and the store's tickets."""
    histories = Histories()
    incidents: dict[str, Incident | None] = {}
    items: dict[str, ActionItem | None] = {}
    late: set[str] = set()  # the workflows that must have escalated once
    for number, key in enumerate(keys, start=1):
        workflow_id = workflow_id_for(key)
        incidents[workflow_id] = await final_state(client, workflow_id, Incident)
        await histories.read(client, workflow_id)
        for n in range(1, plan.items + 1):
            item_workflow = action_workflow_id(key, n)
            items[item_workflow] = await final_state(client, item_workflow, ActionItem)
            await histories.read(client, item_workflow)
            if number in plan.late:
                late.add(item_workflow)
        if number in plan.late:
            late.add(workflow_id)

    tracker = LocalTracker.configured(stack.settings)
    tickets = await asyncio.to_thread(tracker.tickets)
    by_key: dict[str | None, list[Ticket]] = {}
    for ticket in tickets:
        by_key.setdefault(ticket.idempotency_key, []).append(ticket)
    one_ticket = {wid: by_key[wid][0] for wid in items if len(by_key.get(wid, [])) == 1}

    def not_the_items(wid: str, ticket: Ticket) -> bool:
        item = items[wid]
        return item is None or item.ticket is None or item.ticket.key != ticket.ref.key

    escalations = EscalationCheck()
    deadlines: list[tuple[str, Incident | ActionItem | None, DeadlineKind]] = [
        *((wid, incident, DeadlineKind.ACKNOWLEDGE) for wid, incident in incidents.items()),
        *((wid, item, DeadlineKind.ACTION_DUE) for wid, item in items.items()),
    ]
    for wid, state, kind in deadlines:
        if state is not None:
            expected = int(wid in late)
            escalations.check(wid, state.escalations, histories, expected=expected, kind=kind)
    for wid, ticket in one_ticket.items():
        item = items[wid]
        if item is not None:
            comments = await asyncio.to_thread(tracker.comments, ticket.ref.key)
            escalations.on_ticket(ticket, comments, len(item.escalations))

    def by_state(found: dict[str, Any]) -> dict[str, int]:
        return dict(
            Counter(value.state.value if value else "unreadable" for value in found.values())
        )

    listed = {
        execution.id
        async for execution in client.list_workflows(f"TaskQueue = '{stack.settings.task_queue}'")
    }
    return {
        "tickets": {
            "items": len(items),
            "items_with_one_ticket": len(one_ticket),
            "items_without_ticket": sum(1 for wid in items if wid not in by_key),
            "items_with_duplicates": sum(1 for wid in items if len(by_key.get(wid, [])) > 1),
            "stray_tickets": [t.ref.key for t in tickets if t.idempotency_key not in items],
            "not_the_items_ticket": [wid for wid, t in one_ticket.items() if not_the_items(wid, t)],
            "not_closed": [
                wid for wid, t in one_ticket.items() if t.status is not TicketStatus.CLOSED
            ],
        },
        "incidents": {
            "expected": {IncidentState.CLOSED.value: len(incidents)},
            "by_state": by_state(incidents),
        },
        "items": {
            "expected": {ActionItemState.DONE.value: len(items)},
            "by_state": by_state(items),
        },
        "unexpected_workflows": sorted(listed - set(incidents) - set(items)),
        "escalations": escalations.summary(),
        "workflow_tasks": {
            "workflows": histories.workflows,
            "missing": histories.missing,
            "failed_events_by_cause": dict(histories.failed_events),
            "left_failing": histories.left_failing,
        },
    }


def misses_of(result: dict[str, Any], plan: Plan) -> list[str]:
    misses: list[str] = []
    checks = result["checks"]
    tickets = checks["tickets"]
    items = plan.incidents * plan.items
    if tickets["items_with_one_ticket"] != items:
        misses.append(
            f"{tickets['items_with_one_ticket']} of {items} items have exactly one ticket "
            f"({tickets['items_without_ticket']} none, {tickets['items_with_duplicates']} several)"
        )
    for name in ("stray_tickets", "not_the_items_ticket", "not_closed"):
        if tickets[name]:
            misses.append(f"tickets {name}: {tickets[name]}")
    for what in ("incidents", "items"):
        found, expected = checks[what]["by_state"], checks[what]["expected"]
        if found != expected:
            misses.append(f"{what} by state {found}, expected {expected}")
    if checks["unexpected_workflows"]:
        misses.append(f"unexpected workflows: {checks['unexpected_workflows']}")
    escalations = checks["escalations"]
    if escalations["recorded"] != escalations["expected"] or escalations["wrong"]:
        misses.append(
            f"escalations: {escalations['recorded']} recorded, {escalations['expected']} "
            f"expected; {escalations['wrong']}"
        )
    for name in ("missing", "left_failing"):
        if checks["workflow_tasks"][name]:
            misses.append(f"workflows {name}: {checks['workflow_tasks'][name]}")
    chaos = result["chaos"]
    if chaos["faults_done"] != chaos["faults_planned"]:
        misses.append(f"{chaos['faults_done']} of {chaos['faults_planned']} faults injected")
    # Each stale status applied stopped its item's lifecycle, with a message in `stuck`.
    misses.extend(f"stuck: {message}" for message in result["stuck"])
    return misses


# ---- the run -------------------------------------------------------------------------------


async def drive(
    args: argparse.Namespace, plan: Plan, stack: ChaosStack, tally: Tally
) -> dict[str, Any]:
    """Start the stack, run every lifecycle beside the faults, audit: the result's sections."""
    begun = time.monotonic()
    client = await stack.start()
    started = time.monotonic()
    api = Api(stack.api_url, stack.admin_secret, tally)
    driver = Driver(
        plan,
        api,
        client,
        stack,
        tally,
        step_timeout=args.step_timeout,
        deadline=started + args.timeout,
    )
    keys = [await driver.declare(number) for number in range(1, plan.incidents + 1)]
    faults = asyncio.create_task(driver.inject_faults())
    gate = asyncio.Semaphore(args.concurrency)

    async def lifecycle(number: int, key: str) -> None:
        async with gate:
            try:
                await driver.incident(number, key)
            except Stuck as stuck:
                tally.stuck.append(str(stuck))
            except Exception as error:  # reported as a miss, with the others
                tally.stuck.append(f"{key}: {type(error).__name__}: {error}")

    await asyncio.gather(*(lifecycle(n, key) for n, key in enumerate(keys, start=1)))
    driven = time.monotonic()
    await driver.progress.end()
    await faults
    checks = await audit(client, stack, plan, keys)
    await api.close()
    done = driver.faults_done
    return {
        "wall_seconds": {
            "start": round(started - begun, 1),
            "lifecycles": round(driven - started, 1),
            "audit": round(time.monotonic() - driven, 1),
        },
        "chaos": {
            "faults_planned": len(plan.faults),
            "faults_done": len(done),
            "worker_kills": sum(1 for fault in done if fault["kind"] == "worker"),
            "server_restarts": sum(1 for fault in done if fault["kind"] == "server"),
            "faults": done,
        },
        "tracker_events": {
            "items_replayed": dict(tally.replayed_items),
            "signals_replayed": tally.replayed_signals,
            "signal_retries": tally.signal_retries,
            "stale_applied": tally.stale_applied,
        },
        "api": {
            "answers": dict(sorted(tally.answers.items())),
            "applied_despite_error": dict(tally.applied_despite_error),
            "applied_when_sent_again": dict(tally.answered_after_error),
            "first_error_answers": tally.error_examples,
        },
        "stuck": tally.stuck,
        "checks": checks,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    plan = make_plan(args)
    home = Path(tempfile.mkdtemp(prefix="afteraction-chaos-"))
    policy_file = home / "policy.toml"
    policy_file.write_text(policy_toml(), encoding="utf-8")
    stack = ChaosStack(home, policy_file, workers=WORKERS)
    tally = Tally()
    result: dict[str, Any] = {
        "config": {
            "incidents": plan.incidents,
            "items_per_incident": plan.items,
            "worker_kills": args.worker_kills,
            "server_restarts": args.server_restarts,
            "workers": WORKERS,
            "late_incidents": len(plan.late),
            "replayed_items": len(plan.replays),
            "concurrency": args.concurrency,
            "seed": args.seed,
        },
        "wall_seconds": {},
    }
    begun = time.monotonic()
    try:
        result.update(await drive(args, plan, stack, tally))
        result["misses"] = misses_of(result, plan)
    except StackFailed as failure:
        result["misses"] = [f"the stack failed: {failure}", *tally.stuck]
    finally:
        stack.stop()
    result["wall_seconds"]["total"] = round(time.monotonic() - begun, 1)
    result["ok"] = not result["misses"]
    if result["ok"] and not args.keep:
        shutil.rmtree(home, ignore_errors=True)
    else:
        result["state_folder"] = str(home)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=10, help="N incidents (default 10)")
    parser.add_argument("--items", type=int, default=3, help="M action items each (default 3)")
    parser.add_argument("--worker-kills", type=int, default=5, help="K kill -9 of a worker")
    parser.add_argument("--server-restarts", type=int, default=2, help="dev server kill -9s")
    parser.add_argument(
        "--late-share", type=float, default=0.3, help="share of incidents left to escalate"
    )
    parser.add_argument(
        "--replay-share", type=float, default=0.5, help="share of items whose events replay"
    )
    parser.add_argument("--concurrency", type=int, default=10, help="incidents in flight")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds for every lifecycle to finish"
    )
    parser.add_argument(
        "--step-timeout", type=float, default=120, help="seconds any one step may take"
    )
    parser.add_argument("--keep", action="store_true", help="keep the state folder")
    args = parser.parse_args()
    # The run configures every process itself: settings of the shell it was started from (a
    # developer's database, say) must not reach it.
    for name in [name for name in os.environ if name.startswith("AFTERACTION_")]:
        del os.environ[name]
    configure_logging(log_format="console", level="warning")
    with stdout_to_stderr():
        result = asyncio.run(run(args))
    emit_and_exit(result, status=0 if result["ok"] else 1)


if __name__ == "__main__":
    main()

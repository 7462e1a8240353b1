"""The ticket reconciler's activities: which targets have open items, and what drifted in one.

Calls follow the changes, not the open items: per target one tracker query for the tickets
updated since the watermark (paged by the tracker, 100 a page on GitHub), then one visibility
query per 100 of those tickets for their items (a ticket's idempotency key is its item's
workflow id); a target with no changed ticket costs no visibility call. Nothing is fetched per
item.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from temporalio import activity
from temporalio.client import Client, WorkflowExecution

from activities.tickets import classified
from domain import search_attributes as sa
from domain.action_item import ActionItemState, TicketStatus
from domain.reconcile import (
    OVERLAP,
    Drift,
    DuplicateClosed,
    OpenItem,
    ReconcileTarget,
    TargetReport,
    TargetsRequest,
    TargetWindow,
    drift_of,
)
from domain.tickets import Ticket
from integrations.registry import TrackerRegistry
from telemetry.logs import get_logger
from telemetry.metrics import (
    RECONCILER_LAST_RUN,
    RECONCILER_RUNS,
    reconciler_found_change,
    tracker_call,
    tracker_of,
)

log = get_logger("afteraction.reconciler")
# Workflow ids in one visibility query's IN list: a query stays well under the server's size
# limit, and a burst of changes costs a few queries, not one per item.
IDS_A_QUERY = 100


def open_items_query() -> str:
    """This deployment's open action items: those on the task queue the reconciler runs on
    (another deployment on the same namespace has its own trackers and credentials)."""
    return f"{sa.OPEN_ACTION_ITEMS} AND TaskQueue = {sa.quoted(activity.info().task_queue)}"


def _on_target(target: str) -> str:
    return f"{open_items_query()} AND {sa.TRACKER.name} = {sa.quoted(target)}"


@runtime_checkable
class _ClosesDuplicates(Protocol):
    """A tracker whose look-up before create can miss a fresh ticket (Jira's search index)."""

    def close_duplicate(self, target: str, duplicate_key: str, original_key: str) -> None: ...


def _open_item(execution: WorkflowExecution) -> OpenItem | None:
    attributes = execution.typed_search_attributes
    state = attributes.get(sa.STATE)
    if state is None:
        return None
    return OpenItem(
        workflow_id=execution.id,
        state=ActionItemState(state),
        ticket_key=attributes.get(sa.TICKET_KEY),
    )


class TicketReconciler:
    def __init__(self, client: Client, registry: TrackerRegistry) -> None:
        self._client = client
        self._registry = registry

    @activity.defn(name="list_reconcile_targets")
    async def list_targets(self) -> list[TargetWindow]:
        """Every target with an open action item, with when its oldest open item started
        (runs recorded before `find_reconcile_targets` call this)."""
        RECONCILER_LAST_RUN.set(time.time())
        return await self._oldest_open(open_items_query())

    @activity.defn(name="find_reconcile_targets")
    async def find_targets(self, request: TargetsRequest) -> list[TargetWindow]:
        """The targets with open items. A known target is counted (no item is listed), and
        keeps its watermark as where its unread history starts; only the open items on targets
        the run does not know are listed, which is none at all on most runs. A full sweep, or
        a run that knows no target yet, lists every open item."""
        RECONCILER_LAST_RUN.set(time.time())
        if request.full_sweep or not request.known:
            return await self._oldest_open(open_items_query())
        known = sorted(request.known)
        counts = await asyncio.gather(
            *(self._client.count_workflows(_on_target(target)) for target in known)
        )
        windows = [
            TargetWindow(target=target, oldest_open_at=request.known[target])
            for target, counted in zip(known, counts, strict=True)
            if counted.count
        ]
        others = ", ".join(sa.quoted(target) for target in known)
        windows += await self._oldest_open(
            f"{open_items_query()} AND {sa.TRACKER.name} NOT IN ({others})"
        )
        return sorted(windows, key=lambda window: window.target)

    async def _oldest_open(self, query: str) -> list[TargetWindow]:
        oldest: dict[str, datetime] = {}
        async for execution in self._client.list_workflows(query):
            target = execution.typed_search_attributes.get(sa.TRACKER)
            if target is None:
                continue
            started = execution.start_time
            if target not in oldest or started < oldest[target]:
                oldest[target] = started
        return [TargetWindow(target=t, oldest_open_at=at) for t, at in sorted(oldest.items())]

    @activity.defn(name="reconcile_target")
    async def reconcile_target(self, request: ReconcileTarget) -> TargetReport:
        try:
            report = await self._reconcile(request)
        except BaseException:
            RECONCILER_RUNS.labels(tracker_of(request.target), "error").inc()
            raise
        RECONCILER_RUNS.labels(tracker_of(request.target), "ok").inc()
        return report

    async def _reconcile(self, request: ReconcileTarget) -> TargetReport:
        started = datetime.now(UTC)
        with classified():
            tracker = self._registry.for_target(request.target)
            with tracker_call(request.target, "changed_since"):
                tickets = await asyncio.to_thread(
                    tracker.changed_since, request.target, request.since
                )
        # A ticket's idempotency key is its item's workflow id: only the items of the tickets
        # that changed are looked up, so a quiet target costs no visibility call at all.
        keys = sorted({t.idempotency_key for t in tickets if t.idempotency_key})
        items = await self._open_items(request.target, keys)
        report = TargetReport(
            target=request.target,
            since=request.since,
            watermark=max(request.since, started - OVERLAP),
            tickets_read=len(tickets),
        )
        for ticket in tickets:
            item = items.get(ticket.idempotency_key or "")
            if item is None or item.ticket_key is None:
                continue  # not an open item's, or still being created (ensure_ticket finds it)
            if ticket.ref.key != item.ticket_key:
                if ticket.status is TicketStatus.OPEN:  # a closed one is dealt with already
                    closed = await self._close_duplicate(tracker, request.target, ticket, item)
                    if closed is not None:
                        report.duplicates_closed.append(closed)
                continue
            change = drift_of(item, ticket.ref.key, ticket.status, ticket.updated_at)
            if change is not None:
                report.drift.append(Drift(workflow_id=item.workflow_id, change=change))
                reconciler_found_change(request.target, ticket.updated_at, started)
        log.info(
            "reconcile.target",
            target=request.target,
            since=request.since.isoformat(),
            items_looked_up=len(items),
            tickets_read=len(tickets),
            drift=len(report.drift),
            duplicates_closed=len(report.duplicates_closed),
        )
        return report

    async def _open_items(self, target: str, workflow_ids: list[str]) -> dict[str, OpenItem]:
        """The open items of `target` among `workflow_ids`, a batch of ids a query."""
        on_target = _on_target(target)
        items: dict[str, OpenItem] = {}
        for start in range(0, len(workflow_ids), IDS_A_QUERY):
            batch = ", ".join(sa.quoted(id_) for id_ in workflow_ids[start : start + IDS_A_QUERY])
            async for execution in self._client.list_workflows(
                f"{on_target} AND WorkflowId IN ({batch})"
            ):
                item = _open_item(execution)
                if item is not None:
                    items[item.workflow_id] = item
        return items

    async def _close_duplicate(
        self, tracker: object, target: str, ticket: Ticket, item: OpenItem
    ) -> DuplicateClosed | None:
        assert item.ticket_key is not None
        if not isinstance(tracker, _ClosesDuplicates):
            log.warning(
                "reconcile.duplicate_left_open",
                target=target,
                duplicate=ticket.ref.key,
                original=item.ticket_key,
                reason="the tracker cannot close duplicates",
            )
            return None
        with classified(), tracker_call(target, "close_duplicate"):
            await asyncio.to_thread(
                tracker.close_duplicate, target, ticket.ref.key, item.ticket_key
            )
        log.warning(
            "reconcile.duplicate_closed",
            target=target,
            duplicate=ticket.ref.key,
            original=item.ticket_key,
        )
        return DuplicateClosed(
            duplicate=ticket.ref.key, original=item.ticket_key, workflow_id=item.workflow_id
        )

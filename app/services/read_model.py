"""The insights read model against Temporal: `rebuild` derives every fact row again from the
workflows, `check` lists every way the rows differ from them.

A workflow's facts are derived from its state: the final state of a completed run (its result,
read from the close event, with no replay), the queried state of any other. Rows whose
workflows Temporal no longer has (retention removed the history) are kept and counted: the
incidents stay measurable.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus
from temporalio.service import RPCError

from app.services.incidents import WORKER_TIMEOUT, TemporalUnavailable
from domain import search_attributes as sa
from domain.action_item import ActionItem, action_workflow_id, parse_action_item_id
from domain.facts import ActionItemFacts, IncidentFacts, action_item_facts, incident_facts
from domain.incident import Incident, workflow_id_for
from store import Store
from store.facts import FactsRepository, action_item_columns, incident_columns

LISTING = (
    "WorkflowType IN ('IncidentWorkflow', 'ActionItemWorkflow') "
    "AND ExecutionStatus != 'ContinuedAsNew' AND TaskQueue = {task_queue}"
)
# Workflows read at once: each is a query or a close event, a small request to the server.
READ_CONCURRENCY = 32
# A row written while `check` read the workflows (a transition in flight) is read again.
SETTLE_TRIES = 10
SETTLE_INTERVAL = 0.5


class Difference(BaseModel):
    subject: str = Field(description="the incident key or action item id")
    kind: str = Field(description="missing, different, or unreadable")
    fields: dict[str, tuple[Any, Any]] = Field(
        default_factory=dict, description="each differing fact: (the workflow's, the row's)"
    )
    detail: str | None = None


class CheckReport(BaseModel):
    workflows: int = 0
    rows: int = 0
    retained_only: int = Field(
        default=0, description="rows whose workflow Temporal no longer has (kept for metrics)"
    )
    differences: list[Difference] = Field(default_factory=list)


class RebuildReport(BaseModel):
    workflows: int = 0
    written: int = 0
    unchanged: int = Field(default=0, description="rows already at a newer revision")
    unreadable: list[Difference] = Field(default_factory=list)


class _Derived(BaseModel):
    """A workflow's facts as its state gives them, and the row that stores them."""

    facts: IncidentFacts | ActionItemFacts
    settled: bool = Field(
        description="the workflow has completed: it waited for its last write, none is in flight"
    )

    @property
    def is_incident(self) -> bool:
        return isinstance(self.facts, IncidentFacts)

    @property
    def subject(self) -> str:
        return self.facts.key if isinstance(self.facts, IncidentFacts) else self.facts.id

    @property
    def revision(self) -> int:
        return self.facts.revision

    @property
    def columns(self) -> dict[str, Any]:
        if isinstance(self.facts, IncidentFacts):
            return incident_columns(self.facts)
        return action_item_columns(self.facts)


class ReadModel:
    def __init__(self, client: Client, store: Store, *, task_queue: str) -> None:
        """`task_queue`: the deployment's (its workers run its incidents, and their facts go to
        its store); other task queues on the same server are other deployments."""
        self._client = client
        self._facts = FactsRepository(store)
        self._listing = LISTING.format(task_queue=sa.quoted(task_queue))

    async def rebuild(self) -> RebuildReport:
        report = RebuildReport()
        derived, unreadable = await self._derive_all()
        report.workflows = len(derived) + len(unreadable)
        report.unreadable = unreadable
        for facts in derived:
            written = await asyncio.to_thread(self._write, facts)
            report.written += written
            report.unchanged += not written
        return report

    async def check(self) -> CheckReport:
        derived, unreadable = await self._derive_all()
        incidents, items = await asyncio.to_thread(self._stored)
        report = CheckReport(
            workflows=len(derived) + len(unreadable),
            rows=len(incidents) + len(items),
            differences=list(unreadable),
        )
        unsettled = []
        seen: set[str] = set()
        for facts in derived:
            seen.add(facts.subject)
            stored = (incidents if facts.is_incident else items).get(facts.subject)
            if _difference(facts, stored) is not None:
                unsettled.append(facts)
        report.retained_only = len((set(incidents) | set(items)) - seen)
        report.differences += await self._settle(unsettled)
        return report

    async def _settle(self, unsettled: list[_Derived]) -> list[Difference]:
        """The differences that remain once writes in flight have landed: a row behind the
        workflow's write count is read again (with the workflow) a few times."""
        for _ in range(SETTLE_TRIES):
            if not any(self._in_flight(facts) for facts in unsettled):
                break
            await asyncio.sleep(SETTLE_INTERVAL)
            again = await asyncio.gather(
                *(self._derive_one(f.subject, f.is_incident) for f in unsettled)
            )
            unsettled = [
                facts
                for facts in again
                if isinstance(facts, _Derived) and _difference(facts, self._row(facts)) is not None
            ]
        return [
            difference
            for facts in unsettled
            if (difference := _difference(facts, self._row(facts))) is not None
        ]

    def _in_flight(self, facts: _Derived) -> bool:
        if facts.settled:
            return False
        stored = self._row(facts)
        return stored is None or stored["revision"] < facts.revision

    def _row(self, facts: _Derived) -> dict[str, Any] | None:
        if facts.is_incident:
            return self._facts.incidents([facts.subject]).get(facts.subject)
        return self._facts.action_items([facts.subject]).get(facts.subject)

    def _stored(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        return self._facts.incidents(), self._facts.action_items()

    def _write(self, derived: _Derived) -> bool:
        now = datetime.now(UTC)
        if isinstance(derived.facts, IncidentFacts):
            return self._facts.record_incident(derived.facts, at=now)
        return self._facts.record_action_item(derived.facts, at=now)

    async def _derive_all(self) -> tuple[list[_Derived], list[Difference]]:
        executions: list[WorkflowExecution] = []
        try:
            async for execution in self._client.list_workflows(self._listing):
                executions.append(execution)
        except RPCError as error:
            raise TemporalUnavailable(f"cannot list the workflows: {error.message}") from None
        limit = asyncio.Semaphore(READ_CONCURRENCY)

        async def derive(execution: WorkflowExecution) -> _Derived | Difference:
            async with limit:
                return await self._derive_execution(execution)

        results = await asyncio.gather(*(derive(execution) for execution in executions))
        derived = [result for result in results if isinstance(result, _Derived)]
        unreadable = [result for result in results if isinstance(result, Difference)]
        return derived, unreadable

    async def _derive_execution(self, execution: WorkflowExecution) -> _Derived | Difference:
        is_incident = execution.workflow_type == "IncidentWorkflow"
        model: type[Incident] | type[ActionItem] = Incident if is_incident else ActionItem
        handle = self._client.get_workflow_handle(execution.id, result_type=model)
        try:
            if execution.status is WorkflowExecutionStatus.COMPLETED:
                state = await handle.result()
            else:
                state = await handle.query("state", result_type=model, rpc_timeout=WORKER_TIMEOUT)
        except Exception as error:  # a failed query, a workflow that failed: named, not raised
            return Difference(subject=execution.id, kind="unreadable", detail=str(error))
        return _derived(state, settled=execution.status is WorkflowExecutionStatus.COMPLETED)

    async def _derive_one(self, workflow_id: str, is_incident: bool) -> _Derived | Difference:
        handle = self._client.get_workflow_handle(_workflow_id_of(workflow_id, is_incident))
        try:
            description = await handle.describe()
        except RPCError as error:
            return Difference(subject=workflow_id, kind="unreadable", detail=error.message)
        return await self._derive_execution(description)


def _derived(state: Incident | ActionItem, *, settled: bool) -> _Derived:
    if isinstance(state, Incident):
        return _Derived(facts=incident_facts(state, revision=state.facts_written), settled=settled)
    return _Derived(facts=action_item_facts(state, revision=state.facts_written), settled=settled)


def _workflow_id_of(subject: str, is_incident: bool) -> str:
    if is_incident:
        return workflow_id_for(subject)
    key, number = parse_action_item_id(subject)
    return action_workflow_id(key, number)


def _difference(facts: _Derived, stored: dict[str, Any] | None) -> Difference | None:
    if stored is None:
        return Difference(subject=facts.subject, kind="missing", detail="no row in the read model")
    fields = {
        name: (value, stored.get(name))
        for name, value in facts.columns.items()
        if stored.get(name) != value
    }
    if not fields:
        return None
    return Difference(subject=facts.subject, kind="different", fields=fields)

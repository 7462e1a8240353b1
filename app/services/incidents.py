"""Incidents as the CLI and the API see them: declare, list, read and command.

A thin client of IncidentWorkflow. It turns Temporal's failures into three errors a
person can act on: IncidentNotFound, CommandRejected (the validator said no, and why; or
CommandTooLarge, refused before it is sent), and TemporalUnavailable (the server or the
worker is not there, and how to start it).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from pydantic import BaseModel
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from app.services.commands import UnknownCommand, command_id, outcome, send
from app.services.incident_filter import IncidentFilter
from app.services.listing import visibility_page
from app.services.workers import (
    START_HINT,
    NoWorker,
    absence,
    last_poll,
    no_worker,
    unless_absent,
)
from domain import search_attributes as sa
from domain.action_item import ActionItemSpec, ActionItemSummary
from domain.commands import (
    Acknowledge,
    AddTimelineEvent,
    AssignRole,
    Cancel,
    DeclareIncident,
    NewIncident,
    SetSeverity,
    Transition,
)
from domain.identity import Actor
from domain.incident import (
    Incident,
    IncidentState,
    IncidentStatus,
    IncidentSummary,
    key_from_workflow_id,
    workflow_id_for,
)
from domain.keys import KEY_EXAMPLE, is_incident_key, normal_key
from domain.limits import COMMAND_BYTES, kib
from domain.paging import DEFAULT_PAGE, Page
from domain.policy import Policy
from domain.repeats import incident_repeat
from domain.review import AddActionItem, Review, ScheduleReview, SubmitReview
from domain.routing import Routing, RoutingError
from domain.severity import Severity
from workflows.incident import IncidentWorkflow

# A command waits this long for a worker to run its validator before we call the worker missing.
WORKER_TIMEOUT = timedelta(seconds=10)
_KEY_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O or 1/I to misread on a call
T = TypeVar("T")


class IncidentNotFound(Exception):
    pass


class CommandRejected(Exception):
    pass


class UnknownTeam(CommandRejected):
    """The routing file names no route for an action item's team (the message says which)."""


class CommandTooLarge(CommandRejected):
    """A command larger than Temporal may safely keep in a workflow; nothing was sent."""


class TemporalUnavailable(Exception):
    pass


# Each command: the IncidentWorkflow update of that name, and the model of its input.
COMMANDS: dict[str, type[BaseModel]] = {
    "acknowledge": Acknowledge,
    "assign_role": AssignRole,
    "set_severity": SetSeverity,
    "add_timeline_event": AddTimelineEvent,
    "mitigate": Transition,
    "resolve": Transition,
    "cancel": Cancel,
    "schedule_review": ScheduleReview,
    "submit_review": SubmitReview,
    "add_action_item": AddActionItem,
}
# What each command answers, when it is not the incident's status.
RESULTS: dict[str, type[BaseModel]] = {"add_action_item": ActionItemSummary}
# Commands that, sent again once they hold, answer the state instead of a refusal (those that
# add something are caught by their command id instead).
REPEATABLE = frozenset(COMMANDS) - {"add_timeline_event", "add_action_item"}


def check_size(client: Client, what: str, payload: BaseModel) -> None:
    """CommandTooLarge unless `payload`, encoded as the client sends it, fits COMMAND_BYTES.

    Temporal refuses a payload over 2 MB by failing the workflow task that would record it,
    on every retry, so the incident would stop answering and stop escalating: an oversized
    command is refused here, before it is sent.
    """
    [encoded] = client.data_converter.payload_converter.to_payloads([payload])
    size = encoded.ByteSize()
    if size > COMMAND_BYTES:
        raise CommandTooLarge(
            f"{what} is {kib(size)} once encoded, over the {kib(COMMAND_BYTES)} one command "
            "may carry; shorten its longest texts and link to documents for the rest"
        )


def rejection_message(error: WorkflowUpdateFailedError) -> str:
    """The validator's reason for refusing an update."""
    cause = error.cause
    return cause.message if isinstance(cause, ApplicationError) else str(cause)


async def worker_absence(client: Client, workflow_id: str) -> str | None:
    """Why no worker serves the task queue of a running workflow, or None: one may (perhaps
    busy), or the workflow is not running (the call's own error says so). Raises RPCError."""
    description = await client.get_workflow_handle(workflow_id).describe()
    if description.status != WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING:
        return None
    return await _absence(client, description)


async def _absence(client: Client, description: WorkflowExecutionDescription) -> str | None:
    raw = description.raw_description
    pending = raw.pending_workflow_task if raw.HasField("pending_workflow_task") else None
    latest = await last_poll(client, description.task_queue)
    return absence(description.task_queue, latest, now=datetime.now(UTC), pending=pending)


async def answered(client: Client, workflow_id: str, call: Awaitable[T]) -> T:
    """The answer of a query or an update of `workflow_id`; TemporalUnavailable within about a
    second when no worker serves its task queue, instead of waiting out WORKER_TIMEOUT."""
    try:
        return await unless_absent(call, lambda: worker_absence(client, workflow_id))
    except NoWorker as error:
        raise TemporalUnavailable(str(error)) from None


# What a query or an update fails with when no worker answers it in time (the server's "no
# poller seen" is FAILED_PRECONDITION; the client's own deadline CANCELLED or DEADLINE_EXCEEDED).
_NO_ANSWER = (
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.CANCELLED,
    RPCStatusCode.FAILED_PRECONDITION,
    RPCStatusCode.NOT_FOUND,
)


async def explain_failure(
    client: Client, workflow_id: str, *, what: str, listing: str, error: Exception
) -> Exception:
    """Why a call to `what` (e.g. 'incident INC-1') failed, as an error a person can act on.

    The workflow's description decides: missing, closed (a command raced its completion),
    or running with no worker to answer (its task queue named).
    """
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as describe_error:
        if describe_error.status is RPCStatusCode.NOT_FOUND:
            return IncidentNotFound(f"no {what}; {listing}")
        return TemporalUnavailable(
            unavailable_message(client.service_client.config.target_host, describe_error.message)
        )
    if description.status != WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING:
        return CommandRejected(f"{what} is closed; nothing about it can change now")
    if isinstance(error, RPCError) and error.status not in _NO_ANSWER:
        return TemporalUnavailable(
            unavailable_message(client.service_client.config.target_host, error.message)
        )
    try:
        absent = await _absence(client, description)
    except RPCError:
        absent = None
    if absent is not None:
        return TemporalUnavailable(no_worker(absent))
    return TemporalUnavailable(
        f"no worker answered within {WORKER_TIMEOUT.seconds}s on task queue "
        f"{description.task_queue!r}, though one polled it lately: if it runs, it is overloaded "
        f"or stuck (see its log); if not, {START_HINT}"
    )


def new_incident_key(now: datetime | None = None) -> str:
    """INC-YYMMDD-XXXX: sortable by day, short enough to say on a bridge call."""
    day = (now or datetime.now(UTC)).strftime("%y%m%d")
    suffix = "".join(secrets.choice(_KEY_ALPHABET) for _ in range(4))
    return f"INC-{day}-{suffix}"


def unavailable_message(address: str, detail: str = "") -> str:
    hint = f"cannot reach Temporal at {address}"
    if detail:
        hint += f" ({detail})"
    return hint + "; start the local stack with `make run`, or set AFTERACTION_TEMPORAL_ADDRESS"


# How far ahead of this clock a reported time may be (the reporter's clock drifts); the same
# allowance the incident's workflow gives the times of later commands.
CLOCK_SKEW = timedelta(minutes=1)


def _refuse_future_times(request: NewIncident) -> None:
    now = datetime.now(UTC)
    for name in ("started_at", "detected_at"):
        moment: datetime | None = getattr(request, name)
        if moment is not None and moment > now + CLOCK_SKEW:
            raise CommandRejected(
                f"{name} {moment.isoformat(timespec='seconds')} is in the future (now "
                f"{now.isoformat(timespec='seconds')}); give when it happened, or leave it out"
            )


class Incidents:
    def __init__(
        self,
        client: Client,
        *,
        task_queue: str,
        policy: Policy,
        routing: Routing | None = None,
    ) -> None:
        self._client = client
        self._task_queue = task_queue
        self._policy = policy
        self._routing = routing or Routing()

    async def declare(self, request: NewIncident, *, key: str | None = None) -> IncidentStatus:
        """Start the incident's workflow; a key collision draws a new key, never a second run."""
        _refuse_future_times(request)
        for _ in range(5):
            declaration = DeclareIncident(
                **request.model_dump(), key=key or new_incident_key(), policy=self._policy
            )
            check_size(self._client, "the declaration", declaration)
            try:
                await self._client.start_workflow(
                    IncidentWorkflow.run,
                    declaration,
                    id=workflow_id_for(declaration.key),
                    task_queue=self._task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                )
            except WorkflowAlreadyStartedError:
                if key is not None:
                    raise CommandRejected(f"incident {key} already exists") from None
                continue
            except RPCError as error:
                raise self._unavailable(error) from None
            return self._declared_status(declaration)
        raise CommandRejected("could not draw an unused incident key; try again")

    async def list(
        self,
        filters: IncidentFilter | None = None,
        *,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> Page[IncidentSummary]:
        """One page of the incidents the filters match, open ones first, then the latest
        declared (BadCursor: a cursor this list did not give)."""
        query = (filters or IncidentFilter()).query()
        try:
            page = await visibility_page(self._client, query, limit=limit, cursor=cursor)
        except RPCError as error:
            raise self._unavailable(error) from None
        summaries = [s for s in map(_summary_of, page.executions) if s is not None]
        epoch = datetime.min.replace(tzinfo=UTC)
        summaries.sort(key=lambda s: (not s.state.is_final, s.declared_at or epoch), reverse=True)
        return Page(items=summaries, total=page.total, next=page.next)

    async def get(self, key: str) -> Incident:
        key = normal_key(key)
        handle = self._handle(key)
        try:
            return await answered(
                self._client,
                handle.id,
                handle.query(IncidentWorkflow.state, rpc_timeout=WORKER_TIMEOUT),
            )
        except WorkflowQueryFailedError as error:
            raise CommandRejected(str(error)) from None
        except RPCError as error:
            raise await self._explain(workflow_id_for(key), f"incident {key}", error) from None

    async def command(
        self, key: str, name: str, payload: BaseModel, *, request_key: str | None = None
    ) -> IncidentStatus:
        """Send command `name` (its Update), under the id `request_key` gives it: the same key
        again attaches to the first. A refused command that already holds (sent twice)
        answers the state it reached. CommandPending when its outcome is not known yet."""
        key = normal_key(key)
        model = COMMANDS[name]
        if not isinstance(payload, model):
            raise TypeError(f"{name} takes {model.__name__}, not {type(payload).__name__}")
        handle = self._handle(key)
        check_size(self._client, f"the {name} command", payload)
        try:
            update_id = command_id(name, request_key)
        except ValueError as error:
            raise CommandRejected(str(error)) from None
        try:
            result: IncidentStatus = await send(
                self._client,
                handle.id,
                name,
                payload,
                result_type=RESULTS.get(name, IncidentStatus),
                update_id=update_id,
                subject=key,
                absent=lambda: worker_absence(self._client, handle.id),
            )
            return result
        except WorkflowUpdateFailedError as error:
            refusal = CommandRejected(rejection_message(error))
            reached = await self._reached(key, name, payload)
            if reached is None:
                raise refusal from None
            return reached
        except RPCError as error:
            raise await self._explain(workflow_id_for(key), f"incident {key}", error) from None

    async def outcome(self, key: str, update_id: str) -> BaseModel:
        """What became of a command sent earlier (its id from CommandPending): its answer once
        applied; CommandPending while it waits; CommandRejected, UnknownCommand."""
        key = normal_key(key)
        name = update_id.split(":", 1)[0]
        if name not in COMMANDS:
            raise UnknownCommand(f"{update_id!r} names no command of an incident")
        handle = self._handle(key)
        try:
            answer: BaseModel = await outcome(
                self._client,
                handle.id,
                update_id,
                result_type=RESULTS.get(name, IncidentStatus),
                subject=key,
            )
            return answer
        except WorkflowUpdateFailedError as error:
            raise CommandRejected(rejection_message(error)) from None

    async def _reached(self, key: str, name: str, payload: BaseModel) -> IncidentStatus | None:
        """The incident's status when a refused command already holds on it (a repeat)."""
        if name not in REPEATABLE:
            return None
        try:
            incident = await self.get(key)
        except (CommandRejected, IncidentNotFound, TemporalUnavailable):
            return None
        return IncidentStatus.of(incident) if incident_repeat(name, payload, incident) else None

    async def submit_review(
        self, key: str, review: Review, *, actor: Actor, request_key: str | None = None
    ) -> IncidentStatus:
        """Route every item's team first, so an unknown team is refused before anything starts."""
        try:
            routes = {
                item.owning_team: self._routing.route(item.owning_team, self._policy)
                for item in review.action_items
            }
        except RoutingError as error:
            raise UnknownTeam(str(error)) from None
        return await self.command(
            key,
            "submit_review",
            SubmitReview(review=review, routes=routes, by=actor.label, actor=actor),
            request_key=request_key,
        )

    async def add_action_item(
        self, key: str, spec: ActionItemSpec, *, actor: Actor, request_key: str | None = None
    ) -> ActionItemSummary:
        try:
            route = self._routing.route(spec.owning_team, self._policy)
        except RoutingError as error:
            raise UnknownTeam(str(error)) from None
        result = await self.command(
            key,
            "add_action_item",
            AddActionItem(spec=spec, route=route, by=actor.label, actor=actor),
            request_key=request_key,
        )
        return result  # type: ignore[return-value]

    async def missing_worker(self) -> str | None:
        """Why no worker serves this deployment's task queue, or None: one polled it lately (or
        Temporal could not say). A declared incident waits for one: no deadline, no command."""
        try:
            latest = await last_poll(self._client, self._task_queue)
        except RPCError:
            return None
        return absence(self._task_queue, latest, now=datetime.now(UTC))

    def _handle(self, key: str) -> WorkflowHandle[IncidentWorkflow, Incident]:
        if not is_incident_key(key):
            # Not sent: Temporal would refuse a long one as an invalid id, which reads as an outage.
            raise IncidentNotFound(
                f"no incident {key[:60]!r}: keys look like {KEY_EXAMPLE}; "
                "`afteraction list` shows the incidents"
            )
        return self._client.get_workflow_handle_for(IncidentWorkflow.run, workflow_id_for(key))

    async def _explain(self, workflow_id: str, what: str, error: Exception) -> Exception:
        return await explain_failure(
            self._client,
            workflow_id,
            what=what,
            listing="`afteraction list` shows the incidents",
            error=error,
        )

    def _unavailable(self, error: RPCError) -> TemporalUnavailable:
        return TemporalUnavailable(
            unavailable_message(self._client.service_client.config.target_host, error.message)
        )

    @staticmethod
    def _declared_status(declaration: DeclareIncident) -> IncidentStatus:
        # The workflow stamps the authoritative declared_at; this answer is for the caller.
        now = datetime.now(UTC)
        detected = declaration.detected_at or now
        return IncidentStatus.model_validate(
            {
                "key": declaration.key,
                "title": declaration.title,
                "severity": declaration.severity,
                "state": IncidentState.DECLARED,
                "clock": {
                    "started_at": declaration.started_at or detected,
                    "detected_at": detected,
                    "declared_at": now,
                },
                "roles": {},
                "escalation_count": 0,
            }
        )


def _summary_of(execution: WorkflowExecution) -> IncidentSummary | None:
    attributes = execution.typed_search_attributes
    severity = attributes.get(sa.SEVERITY)
    state = attributes.get(sa.STATE)
    if severity is None or state is None:
        return None  # started, but its first workflow task has not run yet
    return IncidentSummary(
        key=key_from_workflow_id(execution.id),
        title=attributes.get(sa.TITLE) or "",
        severity=Severity(severity),
        state=IncidentState(state),
        services=list(attributes.get(sa.SERVICES) or []),
        teams=list(attributes.get(sa.TEAMS) or []),
        declared_at=attributes.get(sa.DECLARED_AT),
        due_at=attributes.get(sa.DUE_AT),
        resolved_at=attributes.get(sa.RESOLVED_AT),
        escalation_count=attributes.get(sa.ESCALATION_COUNT) or 0,
    )

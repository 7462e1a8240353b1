"""Action items as the CLI and the API see them: list, read, extend, verify, accept."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError

from app.services.commands import UnknownCommand, command_id, outcome, send
from app.services.incidents import (
    WORKER_TIMEOUT,
    CommandRejected,
    IncidentNotFound,
    TemporalUnavailable,
    answered,
    check_size,
    explain_failure,
    rejection_message,
    worker_absence,
)
from app.services.listing import visibility_page
from domain import search_attributes as sa
from domain.action_item import (
    AcceptRisk,
    ActionItem,
    ActionItemRow,
    ActionItemState,
    ActionItemSummary,
    ExtendDeadline,
    TicketAttempts,
    VerifyItem,
    action_workflow_id,
    parse_action_item_id,
)
from domain.keys import normal_key
from domain.paging import DEFAULT_PAGE, Page
from domain.repeats import item_repeat
from domain.severity import Severity

COMMANDS: dict[str, type[BaseModel]] = {
    "extend_deadline": ExtendDeadline,
    "verify": VerifyItem,
    "accept_risk": AcceptRisk,
}


class ActionItems:
    def __init__(self, client: Client) -> None:
        self._client = client

    async def list(
        self,
        *,
        incident: str | None = None,
        team: str | None = None,
        overdue: bool = False,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> Page[ActionItemRow]:
        """One page of the items, soonest due first within it (BadCursor: a cursor this list
        did not give)."""
        now = datetime.now(UTC)
        # A run that continued as new keeps its search attributes: only the latest run counts.
        clauses = ["WorkflowType = 'ActionItemWorkflow'", "ExecutionStatus != 'ContinuedAsNew'"]
        if incident:
            clauses.append(f"{sa.INCIDENT_KEY.name} = {sa.quoted(normal_key(incident))}")
        if team:
            clauses.append(f"{sa.TEAMS.name} = {sa.quoted(team)}")
        if overdue:
            clauses.append(f"{sa.STATE.name} = '{ActionItemState.OPEN.value}'")
            clauses.append(f"{sa.DUE_AT.name} < '{now.isoformat().replace('+00:00', 'Z')}'")
        query = " AND ".join(clauses)
        try:
            page = await visibility_page(self._client, query, limit=limit, cursor=cursor)
        except RPCError as error:
            raise TemporalUnavailable(f"cannot list action items: {error.message}") from None
        rows = [row for row in (_row_of(e, now) for e in page.executions) if row is not None]
        rows.sort(key=lambda row: (row.due_at, row.id))
        return Page(items=rows, total=page.total, next=page.next)

    async def get(self, item_id: str) -> ActionItem:
        item_id = normal_key(item_id)
        workflow_id = self._workflow_id(item_id)
        try:
            handle = self._client.get_workflow_handle(workflow_id)
            query = handle.query("state", result_type=ActionItem, rpc_timeout=WORKER_TIMEOUT)
            item: ActionItem = await answered(self._client, workflow_id, query)
            if item.ticket is None and item.state is ActionItemState.CREATING:
                item.ticket_attempts = await _ticket_attempts(handle)
            return item
        except WorkflowQueryFailedError as error:
            raise CommandRejected(str(error)) from None
        except RPCError as error:
            raise await self._explain(item_id, error) from None

    async def command(
        self, item_id: str, name: str, payload: BaseModel, *, request_key: str | None = None
    ) -> ActionItemSummary:
        """Send command `name` to the item, as Incidents.command does to an incident."""
        item_id = normal_key(item_id)
        model = COMMANDS[name]
        if not isinstance(payload, model):
            raise TypeError(f"{name} takes {model.__name__}, not {type(payload).__name__}")
        workflow_id = self._workflow_id(item_id)
        check_size(self._client, f"the {name} command", payload)
        try:
            update_id = command_id(name, request_key)
        except ValueError as error:
            raise CommandRejected(str(error)) from None
        try:
            result: ActionItemSummary = await send(
                self._client,
                workflow_id,
                name,
                payload,
                result_type=ActionItemSummary,
                update_id=update_id,
                subject=item_id,
                absent=lambda: worker_absence(self._client, workflow_id),
            )
            return result
        except WorkflowUpdateFailedError as error:
            refusal = CommandRejected(rejection_message(error))
            reached = await self._reached(item_id, name, payload)
            if reached is None:
                raise refusal from None
            return reached
        except RPCError as error:
            raise await self._explain(item_id, error) from None

    async def outcome(self, item_id: str, update_id: str) -> ActionItemSummary:
        """What became of a command sent to the item earlier (see Incidents.outcome)."""
        item_id = normal_key(item_id)
        if update_id.split(":", 1)[0] not in COMMANDS:
            raise UnknownCommand(f"{update_id!r} names no command of an action item")
        try:
            answer: ActionItemSummary = await outcome(
                self._client,
                self._workflow_id(item_id),
                update_id,
                result_type=ActionItemSummary,
                subject=item_id,
            )
            return answer
        except WorkflowUpdateFailedError as error:
            raise CommandRejected(rejection_message(error)) from None

    async def _reached(
        self, item_id: str, name: str, payload: BaseModel
    ) -> ActionItemSummary | None:
        """The item's summary when a refused command already holds on it (a repeat)."""
        try:
            item = await self.get(item_id)
        except (CommandRejected, IncidentNotFound, TemporalUnavailable):
            return None
        return ActionItemSummary.of(item) if item_repeat(name, payload, item) else None

    async def retry_ticket(self, item_id: str) -> RetryOutcome:
        """Ask an item whose ticket creation was refused to try again now; an item with its
        ticket, one still making its first try, or one closed without a ticket, is not asked."""
        item_id = normal_key(item_id)
        item = await self.get(item_id)
        nothing = _nothing_to_retry(item)
        if nothing is not None:
            return RetryOutcome(id=item.id, requested=False, detail=f"nothing to retry: {nothing}")
        handle = self._client.get_workflow_handle(self._workflow_id(item_id))
        try:
            await handle.signal("retry_ticket")
        except RPCError as error:
            raise await self._explain(item_id, error) from None
        return RetryOutcome(
            id=item.id,
            requested=True,
            detail=f"asked {item.id} to create its ticket again (the last try said: "
            f"{item.ticket_error}); `afteraction actions show {item.id}` tells how it went",
        )

    @staticmethod
    def _workflow_id(item_id: str) -> str:
        try:
            key, number = parse_action_item_id(item_id)
        except ValueError as error:
            raise CommandRejected(str(error)) from None
        return action_workflow_id(key, number)

    async def _explain(self, item_id: str, error: Exception) -> Exception:
        return await explain_failure(
            self._client,
            self._workflow_id(item_id),
            what=f"action item {item_id}",
            listing="`afteraction actions list` shows them",
            error=error,
        )


class RetryOutcome(BaseModel):
    """What `retry_ticket` did."""

    id: str
    requested: bool = Field(
        description="true when the item was asked to create its ticket again; false when there "
        "was nothing to retry (detail says why)"
    )
    detail: str


def _nothing_to_retry(item: ActionItem) -> str | None:
    """Why an item's ticket needs no retry, or None when its creation was refused."""
    if item.ticket is not None:
        return f"{item.id} has its ticket, {item.ticket.key} in {item.ticket.target}"
    if item.state.is_final:
        return f"{item.id} is {item.state.value}, and needs no ticket now"
    if item.ticket_error is None:
        tries = item.ticket_attempts
        said = f" (try {tries.attempts}: {tries.last_error})" if tries and tries.last_error else ""
        return (
            f"{item.id} is creating its ticket now{said}, and tries again on its own until a "
            f"tracker refuses it; `afteraction actions show {item.id}` shows how it goes"
        )
    return None


async def _ticket_attempts(handle: WorkflowHandle[Any, Any]) -> TicketAttempts | None:
    """The ticket create that keeps failing, as Temporal tracks it (the workflow itself only
    learns of a refusal, not of the retries before one)."""
    description = await handle.describe()
    for pending in description.raw_description.pending_activities:
        if pending.activity_type.name != "ensure_ticket":
            continue
        failure = pending.last_failure if pending.HasField("last_failure") else None
        next_at = (
            pending.next_attempt_schedule_time.ToDatetime(tzinfo=UTC)
            if pending.HasField("next_attempt_schedule_time")
            else None
        )
        return TicketAttempts(
            attempts=pending.attempt,
            last_error=failure.message if failure is not None and failure.message else None,
            next_attempt_at=next_at,
        )
    return None


def _row_of(execution: WorkflowExecution, now: datetime) -> ActionItemRow | None:
    attributes = execution.typed_search_attributes
    state = attributes.get(sa.STATE)
    due_at = attributes.get(sa.DUE_AT)
    key = attributes.get(sa.INCIDENT_KEY)
    severity = attributes.get(sa.SEVERITY)
    if state is None or due_at is None or key is None or severity is None:
        return None
    number = execution.id.rsplit("/", 1)[-1]
    item_state = ActionItemState(state)
    teams = attributes.get(sa.TEAMS) or [""]
    return ActionItemRow(
        id=f"{key}-{number}",
        incident_key=key,
        title=attributes.get(sa.TITLE) or "",
        owning_team=teams[0],
        severity=Severity(severity),
        state=item_state,
        due_at=due_at,
        overdue=item_state is ActionItemState.OPEN and due_at < now,
        escalation_count=attributes.get(sa.ESCALATION_COUNT) or 0,
    )

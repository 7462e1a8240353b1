"""Action items as the CLI and the API see them: list, read, extend, verify, accept."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError

from app.services.incidents import (
    WORKER_TIMEOUT,
    CommandRejected,
    TemporalUnavailable,
    check_size,
    explain_failure,
    rejection_message,
)
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
        limit: int = 500,
    ) -> list[ActionItemRow]:
        now = datetime.now(UTC)
        clauses = ["WorkflowType = 'ActionItemWorkflow'"]
        if incident:
            clauses.append(f"{sa.INCIDENT_KEY.name} = {sa.quoted(incident)}")
        if team:
            clauses.append(f"{sa.TEAMS.name} = {sa.quoted(team)}")
        if overdue:
            clauses.append(f"{sa.STATE.name} = '{ActionItemState.OPEN.value}'")
            clauses.append(f"{sa.DUE_AT.name} < '{now.isoformat().replace('+00:00', 'Z')}'")
        rows: list[ActionItemRow] = []
        try:
            async for execution in self._client.list_workflows(" AND ".join(clauses), limit=limit):
                row = _row_of(execution, now)
                if row is not None:
                    rows.append(row)
        except RPCError as error:
            raise TemporalUnavailable(f"cannot list action items: {error.message}") from None
        return sorted(rows, key=lambda row: (row.due_at, row.id))

    async def get(self, item_id: str) -> ActionItem:
        workflow_id = self._workflow_id(item_id)
        try:
            handle = self._client.get_workflow_handle(workflow_id)
            item: ActionItem = await handle.query(
                "state", result_type=ActionItem, rpc_timeout=WORKER_TIMEOUT
            )
            if item.ticket is None and item.state is ActionItemState.CREATING:
                item.ticket_attempts = await _ticket_attempts(handle)
            return item
        except WorkflowQueryFailedError as error:
            raise CommandRejected(str(error)) from None
        except RPCError as error:
            raise await self._explain(item_id, error) from None

    async def command(self, item_id: str, name: str, payload: BaseModel) -> ActionItemSummary:
        model = COMMANDS[name]
        if not isinstance(payload, model):
            raise TypeError(f"{name} takes {model.__name__}, not {type(payload).__name__}")
        handle = self._client.get_workflow_handle(self._workflow_id(item_id))
        check_size(self._client, f"the {name} command", payload)
        try:
            result: ActionItemSummary = await handle.execute_update(
                name, payload, result_type=ActionItemSummary, rpc_timeout=WORKER_TIMEOUT
            )
            return result
        except WorkflowUpdateFailedError as error:
            raise CommandRejected(rejection_message(error)) from None
        except (WorkflowUpdateRPCTimeoutOrCancelledError, RPCError) as error:
            raise await self._explain(item_id, error) from None

    async def retry_ticket(self, item_id: str) -> None:
        """Ask an item whose ticket creation was refused to try again now."""
        handle = self._client.get_workflow_handle(self._workflow_id(item_id))
        try:
            await handle.signal("retry_ticket")
        except RPCError as error:
            raise await self._explain(item_id, error) from None

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
            no_worker=f"no worker answered within {WORKER_TIMEOUT.seconds}s; "
            "start one with `make run`",
            error=error,
        )


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

"""`afteraction tickets`: the local tracker from a terminal, acting as the owning team would.

`close` and `reopen` change the ticket, then send its action item the same `ticket_changed`
signal a tracker webhook sends, so the local tracker exercises the real path end to end.
Part of the `afteraction` app (app.cli registers it), so it shares its exit codes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, TypeVar

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from app.cli_common import JsonOption, _emit, _run_client, _settings, err, fail
from app.incidents import TemporalUnavailable, unavailable_message
from domain.action_item import TicketChanged, TicketStatus
from integrations.local import TARGET, LocalTracker, TicketDetail
from integrations.tracker import Ticket, TrackerError
from settings import Settings

tickets: typer.Typer = typer.Typer(
    name="tickets",
    help="Tickets in the local tracker: list, show, close and reopen them.",
    no_args_is_help=True,
)
T = TypeVar("T")
SIGNAL = "ticket_changed"


def _tracker(settings: Settings) -> LocalTracker:
    return LocalTracker.in_home(settings.home)


def _call(action: Callable[[], T]) -> T:
    try:
        return action()
    except TrackerError as error:
        fail(str(error), 1 if error.retryable else 2)


def _when(moment: datetime | None, form: str = "%Y-%m-%d %H:%M UTC") -> str:
    return moment.strftime(form) if moment else "—"


def _status(status: TicketStatus) -> str:
    return f"[green]{status.value}[/]" if status is TicketStatus.OPEN else f"[dim]{status.value}[/]"


def _ticket_table(rows: list[Ticket]) -> RenderableType:
    table = Table(title="Local tickets")
    for column in ("Key", "Status", "Title", "Assignee", "Due", "Labels", "Updated (UTC)"):
        table.add_column(column, no_wrap=column not in ("Title", "Labels"), min_width=5)
    for row in rows:
        table.add_row(
            row.ref.key,
            _status(row.status),
            row.title,
            row.assignee or "—",
            _when(row.due_at, "%Y-%m-%d"),
            ", ".join(row.labels),
            _when(row.updated_at, "%m-%d %H:%M"),
        )
    return table


def _ticket_detail(detail: TicketDetail) -> RenderableType:
    lines: list[RenderableType] = [
        f"[bold]{detail.ref.key}[/] {_status(detail.status)}: {detail.title}",
        f"assignee: {detail.assignee or '—'}",
        f"due: {_when(detail.due_at)}",
        f"labels: {', '.join(detail.labels) or '—'}",
        f"updated: {_when(detail.updated_at)}",
        f"action item: {detail.idempotency_key or '— (opened by hand)'}",
    ]
    if detail.body:
        lines += ["", detail.body]
    lines += ["", f"[bold]Comments[/] ({len(detail.comments)})"]
    lines += [f"[dim]{_when(comment.at)}[/] {comment.text}" for comment in detail.comments]
    return Group(*lines)


@tickets.command("list")
def list_tickets(
    status: Annotated[
        TicketStatus | None, typer.Option("--status", help="Only open or only closed tickets.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List the local tracker's tickets, oldest first."""
    tracker = _tracker(_settings())
    rows = _call(lambda: tracker.tickets(status=status))
    _emit(rows, as_json, _ticket_table(rows))


@tickets.command()
def show(key: str, as_json: JsonOption = False) -> None:
    """Show a ticket with its body and comments."""
    tracker = _tracker(_settings())
    detail = _call(lambda: tracker.detail(key))
    _emit(detail, as_json, _ticket_detail(detail))


@tickets.command()
def close(key: str, as_json: JsonOption = False) -> None:
    """Close a ticket, as its team would; its action item hears of it."""
    _change_status(key, TicketStatus.CLOSED, "closed", as_json)


@tickets.command()
def reopen(key: str, as_json: JsonOption = False) -> None:
    """Reopen a ticket; its action item reopens too."""
    _change_status(key, TicketStatus.OPEN, "reopened", as_json)


def _change_status(key: str, status: TicketStatus, event: str, as_json: bool) -> None:
    tracker = _tracker(_settings())
    set_status = tracker.close if status is TicketStatus.CLOSED else tracker.reopen

    def change() -> Ticket:
        return _call(lambda: set_status(TARGET, key))

    # The idempotency key of a ticket afteraction created is its ActionItemWorkflow's id.
    workflow_id = _call(lambda: tracker.get(TARGET, key)).idempotency_key
    if workflow_id is None:
        ticket, told = change(), False
    else:
        # Temporal is reached before the ticket changes: when it is away, nothing changes and
        # the command can simply be run again.
        ticket, told = _run_client(
            lambda client, settings: _change_and_tell(client, settings, workflow_id, change, event)
        )
        if not told:
            err.print(
                f"[yellow]warning:[/] no action item follows {ticket.ref.key}: its workflow "
                f"{workflow_id} is not running; the ticket is {status.value} all the same",
                highlight=False,
                soft_wrap=True,
            )
    human = f"{event} {ticket.ref.key}: {ticket.title}"
    if told:
        human += f" (told {workflow_id})"
    _emit(ticket, as_json, human)


async def _change_and_tell(
    client: Client,
    settings: Settings,
    workflow_id: str,
    change: Callable[[], Ticket],
    event: str,
) -> tuple[Ticket, bool]:
    """Change the ticket, then signal its workflow: (the ticket, whether the workflow heard)."""
    ticket = change()
    signal = TicketChanged(
        ticket_key=ticket.ref.key,
        event=event,
        status=ticket.status,
        at=datetime.now(UTC),
        source=TARGET,
        delivery_id=str(uuid.uuid4()),
    )
    try:
        await client.get_workflow_handle(workflow_id).signal(SIGNAL, signal)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return ticket, False
        unavailable = unavailable_message(settings.effective_temporal_address, error.message)
        raise TemporalUnavailable(
            f"{ticket.ref.key} is {ticket.status.value}, but its action item {workflow_id} was "
            f"not told: {unavailable}; then run the command again"
        ) from None
    return ticket, True

"""`afteraction tickets`: the local tracker from a terminal, acting as the owning team would.

`close` and `reopen` change the ticket, then send its action item the same `ticket_changed`
signal a tracker webhook sends, so the local tracker exercises the real path end to end (the
shared part, which the HTTP API uses too, is app.services.tickets).
Part of the `afteraction` app (app.cli.main registers it), so it shares its exit codes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, TypeVar

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from temporalio.client import Client

from app.cli.common import (
    JsonOption,
    _emit,
    _settings,
    fail,
    nothing_matches,
    remote_api,
    run_remote,
    warn,
)
from app.cli.remote import RemoteTickets
from app.services.incidents import TemporalUnavailable, unavailable_message
from app.services.tickets import StatusChange, set_status
from domain.action_item import TicketStatus
from domain.tickets import TicketDetail
from integrations.local import LocalTracker
from integrations.temporal_client import connect
from integrations.tracker import Ticket, TrackerError
from settings import Settings
from store import StoreError, configured_store

tickets: typer.Typer = typer.Typer(
    name="tickets",
    help="Tickets in the local tracker: list, show, close and reopen them.",
    no_args_is_help=True,
)
T = TypeVar("T")


def _tracker(settings: Settings) -> LocalTracker:
    try:
        return LocalTracker(configured_store(settings))
    except StoreError as error:
        fail(str(error), 1 if error.retryable else 2)


def _call(action: Callable[[], T]) -> T:
    try:
        return action()
    except TrackerError as error:
        fail(str(error), 1 if error.retryable else 2)


def _when(moment: datetime | None, form: str = "%Y-%m-%d %H:%M UTC") -> str:
    return moment.strftime(form) if moment else "—"


def _status(status: TicketStatus, resolution: str | None = None) -> str:
    if status is TicketStatus.OPEN:
        return f"[green]{status.value}[/]"
    why = f" ({resolution.replace('_', ' ')})" if resolution else ""
    return f"[dim]{status.value}{why}[/]"


def _ticket_table(rows: list[Ticket]) -> RenderableType:
    table = Table(title="Local tickets")
    for column in ("Key", "Status", "Title", "Assignee", "Due", "Labels", "Updated (UTC)"):
        table.add_column(column, no_wrap=column not in ("Title", "Labels"), min_width=5)
    for row in rows:
        table.add_row(
            row.ref.key,
            _status(row.status, row.resolution),
            row.title,
            row.assignee or "—",
            _when(row.due_at, "%Y-%m-%d"),
            ", ".join(row.labels),
            _when(row.updated_at, "%m-%d %H:%M"),
        )
    return table


def _ticket_detail(detail: TicketDetail) -> RenderableType:
    lines: list[RenderableType] = [
        f"[bold]{detail.ref.key}[/] {_status(detail.status, detail.resolution)}: {detail.title}",
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
    settings = _settings()
    api = remote_api(settings)
    if api is not None:
        wanted = status.value if status else None
        rows = run_remote(api, lambda: RemoteTickets(api).list(status=wanted))
    else:
        tracker = _tracker(settings)
        rows = _call(lambda: tracker.tickets(status=status))
    nothing = nothing_matches(
        "ticket",
        {"status": status and status.value},
        hint="action items open their tickets here once a review names them",
    )
    _emit(rows, as_json, _ticket_table(rows) if rows else nothing)


@tickets.command()
def show(key: str, as_json: JsonOption = False) -> None:
    """Show a ticket with its body and comments."""
    settings = _settings()
    api = remote_api(settings)
    if api is not None:
        detail = run_remote(api, lambda: RemoteTickets(api).detail(key))
    else:
        tracker = _tracker(settings)
        detail = _call(lambda: tracker.detail(key))
    _emit(detail, as_json, _ticket_detail(detail))


@tickets.command()
def close(key: str, as_json: JsonOption = False) -> None:
    """Close a ticket, as its team would; its action item hears of it."""
    _change_status(key, TicketStatus.CLOSED, as_json)


@tickets.command()
def reopen(key: str, as_json: JsonOption = False) -> None:
    """Reopen a ticket; its action item reopens too."""
    _change_status(key, TicketStatus.OPEN, as_json)


def _change_status(key: str, status: TicketStatus, as_json: bool) -> None:
    settings = _settings()
    api = remote_api(settings)
    if api is not None:
        action = "close" if status is TicketStatus.CLOSED else "reopen"
        answer = run_remote(api, lambda: RemoteTickets(api).change(key, action))
        _report(StatusChange.model_validate(answer), as_json)
        return
    tracker = _tracker(settings)

    async def client() -> Client:
        try:
            return await connect(settings)
        except RuntimeError as error:
            reason = str(error).split("\n", 1)[0]
            raise TemporalUnavailable(
                unavailable_message(settings.effective_temporal_address, reason)
            ) from None

    try:
        change = asyncio.run(
            set_status(
                tracker,
                key,
                status,
                client=client,
                temporal_address=settings.effective_temporal_address,
            )
        )
    except TrackerError as error:
        fail(str(error), 1 if error.retryable else 2)
    except TemporalUnavailable as error:
        fail(str(error), 1)
    _report(change, as_json)


def _report(change: StatusChange, as_json: bool) -> None:
    if change.warning:
        warn(change.warning)
    ticket = change.ticket
    human = f"{change.event} {ticket.ref.key}: {ticket.title}"
    if change.told:
        human += f" (told {change.workflow_id})"
    _emit(ticket, as_json, human)

"""`afteraction actions`: list action items, add one, extend, verify or accept one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, Protocol, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Group, RenderableType
from rich.table import Table
from temporalio.client import Client

from app.cli import render
from app.cli.common import (
    CursorOption,
    JsonOption,
    LimitOption,
    _emit,
    _model,
    _run,
    _run_client,
    _settings,
    acting,
    cli_actor,
    emit_page,
    fail,
    nothing_matches,
    parse_due,
    remote_api,
    run_remote,
)
from app.cli.remote import RemoteActionItems
from app.services.actions import ActionItems, RetryOutcome
from domain.action_item import (
    AcceptRisk,
    ActionItem,
    ActionItemRow,
    ActionItemSpec,
    ActionItemState,
    ActionItemSummary,
    ExtendDeadline,
    Priority,
    VerifyItem,
)
from domain.limits import searchable
from domain.moments import later_by
from domain.paging import DEFAULT_PAGE, Page
from domain.policy import ActionKind
from settings import Settings

T = TypeVar("T")

actions = typer.Typer(
    name="actions",
    help="Action items: list, add, extend, verify, accept.",
    no_args_is_help=True,
)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "—"


def _rows(rows: list[ActionItemRow]) -> RenderableType:
    table = Table(title="Action items")
    for column in ("Id", "State", "Team", "Due (UTC)", "Esc", "Title"):
        table.add_column(column, no_wrap=column != "Title")
    for row in rows:
        due = f"[red]{_when(row.due_at)} overdue[/]" if row.overdue else _when(row.due_at)
        table.add_row(
            row.id, row.state.value, row.owning_team, due, str(row.escalation_count), row.title
        )
    return table


def _evidence(item: ActionItem) -> str:
    if item.verification is not None:
        check = item.verification
        return f"{check.evidence} (verified by {check.by}, {_when(check.at)})"
    if item.state is ActionItemState.VERIFYING:
        return f"— (its ticket is closed: `afteraction actions verify {item.id} --evidence ...`)"
    return "—"


def _extensions(item: ActionItem) -> RenderableType:
    if not item.extensions:
        return "Extensions: none"
    return render.records(
        "Extensions",
        ("When", "From", "To", "By", "Why"),
        (
            (
                _when(extension.at),
                _when(extension.previous_due_at),
                _when(extension.due_at),
                extension.by or "—",
                extension.reason,
            )
            for extension in item.extensions
        ),
        earlier=item.earlier_extensions,
    )


def _item(item: ActionItem) -> RenderableType:
    facts = Table.grid(padding=(0, 2))
    facts.add_row("Id", item.id)
    facts.add_row("Title", item.spec.title)
    facts.add_row("State", item.state.value)
    facts.add_row("Team", item.spec.owning_team)
    facts.add_row("Assignee", item.spec.assignee or item.route.assignee or "—")
    facts.add_row("Kind", item.spec.kind.value)
    facts.add_row("Priority", item.spec.priority.value)
    facts.add_row("Due (UTC)", _when(item.due_at))
    facts.add_row("Ticket", f"{item.route.target} {item.ticket.key}" if item.ticket else "—")
    facts.add_row("Success criteria", item.spec.success_criteria)
    facts.add_row("SLO", item.spec.slo_link or "—")
    facts.add_row("Evidence", _evidence(item))
    if item.acceptance is not None:
        accepted = item.acceptance
        facts.add_row(
            "Risk accepted",
            f"{accepted.rationale} (by {accepted.approver}, {_when(accepted.at)})",
        )
    if item.ticket_error:
        facts.add_row("Ticket error", f"[red]{item.ticket_error}[/]")
    tries = item.ticket_attempts
    if tries is not None:
        next_try = f"; next try {_when(tries.next_attempt_at)} UTC" if tries.next_attempt_at else ""
        facts.add_row(
            "Ticket status",
            f"[yellow]not created yet after {tries.attempts} tries{next_try}[/]: "
            f"{tries.last_error or 'no error recorded yet'}",
        )
    escalations: RenderableType = "Escalations: none"
    if item.escalations:
        escalations = render.escalations(item.escalations, earlier=item.earlier_escalations)
    return Group(facts, _extensions(item), escalations)


def _summary(result: ActionItemSummary) -> str:
    return f"[bold]{result.id}[/] {result.state.value}, due {_when(result.due_at)}: {result.title}"


class ItemService(Protocol):
    """What the CLI asks of action items: app.services.actions.ActionItems on Temporal, or
    app.cli.remote.RemoteActionItems through the API."""

    async def list(
        self,
        *,
        incident: str | None = None,
        team: str | None = None,
        overdue: bool = False,
        limit: int,
        cursor: str | None,
    ) -> Page[ActionItemRow]: ...

    async def get(self, item_id: str) -> ActionItem: ...

    async def command(self, item_id: str, name: str, payload: BaseModel) -> ActionItemSummary: ...

    async def retry_ticket(self, item_id: str) -> RetryOutcome: ...

    async def outcome(self, item_id: str, update_id: str) -> ActionItemSummary: ...


def with_items(work: Callable[[ItemService], Awaitable[T]]) -> T:
    api = remote_api(_settings())
    if api is not None:
        return run_remote(api, lambda: work(RemoteActionItems(api)))

    async def go(client: Client, _settings: Settings) -> T:
        return await work(ActionItems(client))

    return _run_client(go)


@actions.command("list")
def list_items(
    incident: Annotated[str | None, typer.Option("--incident", help="Only this incident.")] = None,
    team: Annotated[str | None, typer.Option("--team", help="Only this owning team.")] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only open items past due.")] = False,
    limit: LimitOption = DEFAULT_PAGE,
    cursor: CursorOption = None,
    as_json: JsonOption = False,
) -> None:
    """List action items, a page at a time, soonest due first within it."""
    if team is not None:
        try:
            searchable(team)
        except ValueError as error:
            fail(f"--team {team!r}: {error}", 2)
    page: Page[ActionItemRow] = with_items(
        lambda items: items.list(
            incident=incident, team=team, overdue=overdue, limit=limit, cursor=cursor
        )
    )
    rows = page.items
    options = {"incident": incident, "team": team, "overdue": overdue}
    hint = "they come from a submitted review (`afteraction review submit`)"
    human = _rows(rows) if rows else nothing_matches("action item", options, hint=hint)
    emit_page(page, as_json, human, command="actions list")


@actions.command()
def show(
    item_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonOption = False
) -> None:
    """Show an action item: ticket, due date, escalations."""
    item: ActionItem = with_items(lambda items: items.get(item_id))
    _emit(item, as_json, _item(item))


@actions.command()
def add(
    key: str,
    title: Annotated[str, typer.Option("--title")],
    team: Annotated[str, typer.Option("--team", help="The owning team.")],
    kind: Annotated[ActionKind, typer.Option("--kind")],
    priority: Annotated[Priority, typer.Option("--priority")],
    criteria: Annotated[str, typer.Option("--criteria", help="Measurable success criteria.")],
    due: Annotated[str | None, typer.Option("--due", help="ISO time or from now (14d).")] = None,
    assignee: Annotated[str | None, typer.Option("--assignee")] = None,
    slo: Annotated[str | None, typer.Option("--slo", help="Link to the SLO it protects.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Add an action item to a reviewed incident."""
    spec = _model(
        ActionItemSpec,
        title=title,
        owning_team=team,
        assignee=assignee,
        kind=kind,
        priority=priority,
        due_at=parse_due(due, "--due") if due else None,
        success_criteria=criteria,
        slo_link=slo,
    )
    result = _run(
        lambda incidents: incidents.add_action_item(key, spec, actor=cli_actor()), uses_policy=True
    )
    _emit(result, as_json, _summary(result))


def _update(item_id: str, name: str, payload: BaseModel, as_json: bool) -> None:
    result: ActionItemSummary = with_items(lambda items: items.command(item_id, name, payload))
    _emit(result, as_json, _summary(result))


@actions.command()
def extend(
    item_id: Annotated[str, typer.Argument(metavar="ID")],
    due: Annotated[
        str,
        typer.Option(
            "--due",
            help="The new due time: +14d is 14 days after the current due date; a bare 14d is "
            "14 days from now (it must still be later than the current one); or an ISO time.",
        ),
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why it needs longer.")],
    as_json: JsonOption = False,
) -> None:
    """Move the due date later, with a reason (kept in the history); prints the new one."""
    later = _later_by(due)
    if later is None:
        parse_due(due, "--due")  # a time that cannot be is refused before Temporal is asked
    before: ActionItem = with_items(lambda items: items.get(item_id))
    if later is not None:
        due = (before.due_at + later).isoformat()
    payload = _model(ExtendDeadline, due_at=parse_due(due, "--due"), reason=reason, **acting())
    result: ActionItemSummary = with_items(
        lambda items: items.command(item_id, "extend_deadline", payload)
    )
    _emit(
        result,
        as_json,
        f"[bold]{result.id}[/] {result.state.value}, now due {_when(result.due_at)} UTC "
        f"(was {_when(before.due_at)} UTC): {result.title}",
    )


def _later_by(text: str) -> timedelta | None:
    try:
        return later_by(text)
    except ValueError as error:
        fail(f"--due: {error}", 2)


@actions.command()
def verify(
    item_id: Annotated[str, typer.Argument(metavar="ID")],
    evidence: Annotated[str, typer.Option("--evidence", help="A link or a sentence.")],
    as_json: JsonOption = False,
) -> None:
    """Confirm the success criteria of an item whose ticket is closed."""
    _update(item_id, "verify", _model(VerifyItem, evidence=evidence, **acting()), as_json)


@actions.command()
def accept(
    item_id: Annotated[str, typer.Argument(metavar="ID")],
    rationale: Annotated[str, typer.Option("--rationale", help="Why it will not be done.")],
    as_json: JsonOption = False,
) -> None:
    """Close an item as won't-do, accepting the risk."""
    # The approver is whoever runs this: the CLI reaches Temporal directly, and whoever can do
    # that may do anything, so its record names the operating-system user on this host.
    payload = _model(AcceptRisk, rationale=rationale, **acting("approver"))
    _update(item_id, "accept_risk", payload, as_json)


@actions.command("retry-ticket")
def retry_ticket(
    item_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonOption = False
) -> None:
    """Try creating an item's ticket again now (after fixing the tracker's settings); an item
    that has its ticket is left alone."""
    outcome: RetryOutcome = with_items(lambda items: items.retry_ticket(item_id))
    _emit(outcome, as_json, outcome.detail)

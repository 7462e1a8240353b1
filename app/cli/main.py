"""The `afteraction` command: incidents from a terminal, and the processes of the local stack.

Exit codes: 0 done; 2 invalid input or a command the incident rejected (with the reason);
1 Temporal (or its worker) unreachable, with how to start it.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from pydantic import BaseModel

from app.cli import render
from app.cli.actions import actions, with_items
from app.cli.audit import audit
from app.cli.common import (
    AtOption,
    CursorOption,
    IncidentService,
    JsonOption,
    LimitOption,
    NoteOption,
    _emit,
    _model,
    _parse_time,
    _run,
    _settings,
    acting,
    emit_page,
    fail,
    nothing_matches,
    remote_api,
    warn,
)
from app.cli.config import config
from app.cli.db import db
from app.cli.digest import digest
from app.cli.insights import insights
from app.cli.library import MODE_OPTION, library, using_library
from app.cli.metrics import metrics
from app.cli.review import review
from app.cli.tickets import tickets
from app.cli.tokens import tokens
from app.services.incident_filter import IncidentFilter
from app.services.workers import START_HINT
from domain.action_item import ActionItemSummary, parse_action_item_id
from domain.commands import (
    Acknowledge,
    AddTimelineEvent,
    AssignRole,
    Cancel,
    NewIncident,
    SetSeverity,
    Transition,
)
from domain.incident import IncidentState, IncidentStatus, Role
from domain.keys import normal_key
from domain.paging import DEFAULT_PAGE
from domain.severity import Severity

app = typer.Typer(
    name="afteraction",
    help="Incidents as durable workflows: declare, respond, resolve, review.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(tickets, name="tickets")
app.add_typer(review, name="review")
app.add_typer(actions, name="actions")
app.add_typer(db, name="db")
app.add_typer(tokens, name="tokens")
app.add_typer(metrics, name="metrics")
app.add_typer(insights, name="insights")
app.add_typer(config, name="config")
app.add_typer(library, name="library")
app.add_typer(digest, name="digest")
app.add_typer(audit, name="audit")


def _command(key: str, name: str, payload: BaseModel, as_json: bool) -> None:
    result = _run(lambda incidents: incidents.command(key, name, payload))
    _emit(result, as_json, render.status(result))


@app.command()
def declare(
    title: Annotated[str, typer.Option("--title", "-t", help="What is broken, in a line.")],
    severity: Annotated[str, typer.Option("--severity", "-s", help="SEV1 (worst) to SEV4.")],
    service: Annotated[
        list[str] | None, typer.Option("--service", help="Affected service (repeatable).")
    ] = None,
    team: Annotated[
        list[str] | None, typer.Option("--team", help="Owning team (repeatable).")
    ] = None,
    summary: Annotated[str | None, typer.Option("--summary", help="What is known so far.")] = None,
    started: Annotated[
        str | None, typer.Option("--started", help="When impact began (ISO, or 45m ago).")
    ] = None,
    detected: Annotated[
        str | None, typer.Option("--detected", help="When impact was noticed (ISO, or 10m ago).")
    ] = None,
    failure_mode: Annotated[
        list[str] | None,
        typer.Option(
            MODE_OPTION,
            help="A failure mode of the library it is known to be, by slug (repeatable; "
            "`afteraction library list` shows them).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Declare an incident and print its key."""
    try:
        level = Severity.parse(severity)
    except ValueError as error:
        fail(str(error), 2)
    request = _model(
        NewIncident,
        title=title,
        severity=level,
        services=service or [],
        teams=team or [],
        summary=summary,
        **acting("declared_by"),
        started_at=_parse_time(started, "--started"),
        detected_at=_parse_time(detected, "--detected"),
        failure_modes=failure_mode or [],
    )
    if request.failure_modes and remote_api(_settings()) is None:
        # Through the API, the API checks them against the deployment's library.
        using_library(lambda library: library.require(MODE_OPTION, request.failure_modes))

    async def declared(incidents: IncidentService) -> tuple[IncidentStatus, str | None]:
        return await incidents.declare(request), await incidents.missing_worker()

    result, absent = _run(declared, uses_policy=True)
    _emit(result, as_json, f"declared {render.status(result)}")
    if absent is not None:
        warn(
            f"{result.key} is declared, but {absent}: it waits for a worker, and until one "
            f"runs no deadline fires and no command is answered; {START_HINT}"
        )


@app.command("list")
def list_incidents(
    state: Annotated[IncidentState | None, typer.Option("--state", help="Only this state.")] = None,
    active: Annotated[
        bool,
        typer.Option(
            "--active", help="Only incidents not yet resolved: declared, mitigating, mitigated."
        ),
    ] = False,
    severity: Annotated[str | None, typer.Option("--severity", help="Only this severity.")] = None,
    service: Annotated[
        str | None, typer.Option("--service", help="Only incidents naming this service.")
    ] = None,
    team: Annotated[
        str | None, typer.Option("--team", help="Only incidents naming this team.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only those declared since: ISO time, or how long ago (7d)."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Only those declared before: ISO time, or how long ago."),
    ] = None,
    limit: LimitOption = DEFAULT_PAGE,
    cursor: CursorOption = None,
    as_json: JsonOption = False,
) -> None:
    """List incidents, open ones first, then the latest declared; a page at a time."""
    level = None
    if severity is not None:
        try:
            level = Severity.parse(severity)
        except ValueError as error:
            fail(str(error), 2)
    filters = _model(
        IncidentFilter,
        state=state,
        active=active,
        severity=level,
        service=service,
        team=team,
        since=_parse_time(since, "--since"),
        until=_parse_time(until, "--until"),
    )
    page = _run(lambda incidents: incidents.list(filters, limit=limit, cursor=cursor))
    rows = page.items
    options = {
        "state": state and state.value,
        "active": active,
        "severity": severity,
        "service": service,
        "team": team,
        "since": since,
        "until": until,
    }
    hint = "declare one with `afteraction declare`"
    emit_page(
        page,
        as_json,
        render.incident_list(rows) if rows else nothing_matches("incident", options, hint=hint),
        command="list",
    )


@app.command()
def show(key: str, as_json: JsonOption = False) -> None:
    """Show an incident: state, clock, roles, timeline, escalations."""
    detail = _run(lambda incidents: incidents.get(key))
    _emit(detail, as_json, render.incident(detail))


@app.command()
def outcome(
    subject: Annotated[str, typer.Argument(help="The incident's key or the action item's id.")],
    command_id: Annotated[str, typer.Argument(help="The command id a pending command named.")],
    as_json: JsonOption = False,
) -> None:
    """Say what became of a command that was sent but not applied yet (exit 4 while it waits)."""
    if _is_item_id(subject):
        answer: BaseModel = with_items(lambda items: items.outcome(subject, command_id))
    else:
        answer = _run(lambda incidents: incidents.outcome(subject, command_id))
    _emit(answer, as_json, f"{command_id} is applied: " + _outcome_words(answer))


def _is_item_id(subject: str) -> bool:
    try:
        parse_action_item_id(normal_key(subject))
    except ValueError:
        return False
    return True


def _outcome_words(answer: BaseModel) -> str:
    if isinstance(answer, IncidentStatus):
        return f"{answer.key} is {answer.state.value}"
    if isinstance(answer, ActionItemSummary):
        return f"{answer.id} is {answer.state.value}"
    return answer.model_dump_json()


@app.command()
def ack(
    key: str,
    commander: Annotated[str, typer.Option("--commander", "-c", help="Who commands the response.")],
    as_json: JsonOption = False,
) -> None:
    """Acknowledge the incident and name its commander."""
    _command(key, "acknowledge", _model(Acknowledge, commander=commander, **acting()), as_json)


@app.command()
def role(
    key: str,
    role: Annotated[Role, typer.Argument(help="The role to fill.")],
    person: str,
    as_json: JsonOption = False,
) -> None:
    """Assign a role (commander, scribe, communications_lead, subject_matter_expert)."""
    _command(
        key,
        "assign_role",
        _model(AssignRole, role=role, person=person, **acting()),
        as_json,
    )


@app.command()
def note(key: str, text: str, at: AtOption = None, as_json: JsonOption = False) -> None:
    """Add a timeline event (also counts as a status update)."""
    payload = _model(AddTimelineEvent, text=text, at=_parse_time(at, "--at"), **acting())
    _command(key, "add_timeline_event", payload, as_json)


@app.command()
def severity(
    key: str,
    level: Annotated[str, typer.Argument(metavar="SEV", help="SEV1 to SEV4.")],
    reason: Annotated[str | None, typer.Option("--reason")] = None,
    as_json: JsonOption = False,
) -> None:
    """Change the severity; the deadlines re-arm under the new policy."""
    try:
        new_level = Severity.parse(level)
    except ValueError as error:
        fail(str(error), 2)
    payload = _model(SetSeverity, severity=new_level, reason=reason, **acting())
    _command(key, "set_severity", payload, as_json)


def _register_transition(name: str, doc: str) -> None:
    """mitigate and resolve take the same options: a note, an earlier time, who."""

    def transition(
        key: str,
        note: NoteOption = None,
        at: AtOption = None,
        as_json: JsonOption = False,
    ) -> None:
        payload = _model(Transition, note=note, at=_parse_time(at, "--at"), **acting())
        _command(key, name, payload, as_json)

    transition.__doc__ = doc
    app.command(name)(transition)


_register_transition("mitigate", "Mark the impact mitigated.")
_register_transition("resolve", "Mark the incident resolved; the review deadline starts.")


@app.command()
def cancel(
    key: str,
    reason: Annotated[str, typer.Option("--reason", help="Why (e.g. false alarm).")],
    as_json: JsonOption = False,
) -> None:
    """Cancel an incident that was not one, with the reason."""
    _command(key, "cancel", _model(Cancel, reason=reason, **acting()), as_json)


@app.command()
def run() -> None:
    """Start the local stack: the embedded Temporal dev server, the worker and the API."""
    from app.stack import run_stack

    raise typer.Exit(run_stack(_settings()))


@app.command()
def api() -> None:
    """Serve the HTTP API (what `run` starts; use it alone beside a cluster)."""
    from app.http.api import serve

    serve(_settings())


@app.command()
def worker() -> None:
    """Run the Temporal worker (what `run` starts)."""
    import worker as worker_module

    worker_module.main()


def main() -> None:
    try:
        app()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    # Skip interpreter teardown: the Temporal client's Rust threads can abort a finishing
    # process ("PyGILState_Release ... finalizing", temporalio/sdk-python#300).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()

"""What every `afteraction` sub-command shares: options, errors and exit codes, the
connection to Temporal and JSON or Rich output.

Exit codes: 0 done; 2 invalid input or a command that was rejected (with the reason);
1 Temporal unreachable, with how to start it; 4 a command sent but not applied yet (no worker
has taken it, or it has not answered in time), with how to ask what became of it.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import socket
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn, Protocol, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console, RenderableType
from temporalio.client import Client

from app.cli.remote import Api, RemoteIncidents
from app.cli.words import in_cli_words
from app.formats.problems import problem_message
from app.services.commands import CommandPending, UnknownCommand
from app.services.deployment import InForce, in_force
from app.services.incident_filter import IncidentFilter
from app.services.incidents import (
    CommandRejected,
    IncidentNotFound,
    Incidents,
    TemporalUnavailable,
    unavailable_message,
)
from domain.action_item import ActionItemSpec, ActionItemSummary
from domain.commands import NewIncident
from domain.identity import Actor, ActorKind
from domain.incident import Incident, IncidentStatus, IncidentSummary
from domain.moments import moment
from domain.paging import PAGE_LIMIT_MAX, BadCursor, Page
from domain.policy import Policy, PolicyFileError
from domain.review import Review
from domain.routing import Routing, RoutingError
from integrations.temporal_client import connect
from settings import Settings, SettingsError, load_settings
from store import StoreError, configured_store

# Piped or redirected, Rich would cut tables to 80 columns and wrap lines mid-command; there,
# a line runs as long as it needs (nothing we print expands to the console's width).
PIPED_WIDTH = 100_000


def _console(*, stderr: bool = False) -> Console:
    console = Console(stderr=stderr)
    if console.is_terminal:
        return console
    return Console(stderr=stderr, width=PIPED_WIDTH, soft_wrap=True)


out = _console()
err = _console(stderr=True)
T = TypeVar("T")
# The exit code of a command sent but not applied yet.
PENDING = 4

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
LimitOption = Annotated[
    int,
    typer.Option("--limit", min=1, max=PAGE_LIMIT_MAX, help="Rows in the page (100 by default)."),
]
CursorOption = Annotated[
    str | None,
    typer.Option("--cursor", help="The next page: the cursor the page before gave (`next`)."),
]
NoteOption = Annotated[str | None, typer.Option("--note", help="What was done.")]
AtOption = Annotated[
    str | None,
    typer.Option("--at", help="When it happened, if earlier: ISO time or a duration ago (10m)."),
]


def _me() -> str:
    try:
        return getpass.getuser()
    except OSError:
        return "unknown"


def cli_actor() -> Actor:
    """Who a CLI talking straight to Temporal or the store is: the operating-system user on
    this host (whoever reaches Temporal can act as anyone, so this is what the record says)."""
    user, host = _me(), socket.gethostname() or "localhost"
    return Actor(kind=ActorKind.CLI, subject=f"{user}@{host}", display_name=user, via=host)


def acting(field: str = "by") -> dict[str, Any]:
    """A command's who-fields for the CLI's actor: the name it records in `field`, and the
    actor itself."""
    actor = cli_actor()
    return {field: actor.label, "actor": actor}


def fail(message: str, code: int) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


def nothing_matches(what: str, options: dict[str, str | bool | None], *, hint: str) -> str:
    """What a list says instead of an empty table: the options that left nothing in it, or that
    there is nothing yet (and `hint`, how to make some)."""
    given = " ".join(
        f"--{name}" if value is True else f"--{name} {value}"
        for name, value in options.items()
        if value is not None and value is not False
    )
    if given:
        return f"no {what} matches {given}"
    return f"there is no {what} yet; {hint}"


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        fail(str(error), 2)


def _moment(text: str, option: str, *, ahead: bool) -> datetime:
    """ISO 8601 (UTC when no zone is given) or a duration: that long ago, or from now."""
    try:
        return moment(text, now=datetime.now(UTC), ahead=ahead)
    except ValueError as error:
        fail(f"{option}: {error}", 2)


def _parse_time(text: str | None, option: str) -> datetime | None:
    """When something happened: ISO 8601, or a duration meaning that long ago."""
    return None if text is None else _moment(text, option, ahead=False)


def parse_due(text: str, option: str) -> datetime:
    """When something is due: ISO 8601, or a duration meaning that long from now."""
    return _moment(text, option, ahead=True)


def _model(model: type[T], **fields: Any) -> T:
    try:
        return model(**fields)
    except ValidationError as error:
        problems = "; ".join(
            ": ".join(
                part for part in (".".join(str(p) for p in e["loc"]), problem_message(e)) if part
            )
            for e in error.errors()
        )
        fail(problems, 2)


def deployed(settings: Settings) -> tuple[InForce, str]:
    """What the deployment runs its incidents under (see app/services/deployment.py), and the
    database that said so; exits with the reason when that or the CLI's own files are
    unusable."""
    try:
        store = configured_store(settings)
        return in_force(settings, store), store.url
    except (PolicyFileError, RoutingError) as error:
        fail(str(error), 2)
    except StoreError as error:
        fail(str(error), 1 if error.retryable else 2)


def _policy_and_routing(settings: Settings, *, say: bool) -> tuple[Policy, Routing]:
    """The deployment's policy and routing; with `say`, a warning when the CLI's own files are
    ignored, or nothing is published."""
    deployed_now, _ = deployed(settings)
    if say and deployed_now.warning:
        warn(deployed_now.warning)
    return deployed_now.policy, deployed_now.routing


def _run_client(action: Callable[[Client, Settings], Awaitable[T]]) -> T:
    """Connect to Temporal, run `action`, and turn its errors into messages and exit codes."""
    settings = _settings()

    async def go() -> T:
        try:
            client = await connect(settings)
        except RuntimeError as error:
            reason = str(error).split("\n", 1)[0]
            raise TemporalUnavailable(
                unavailable_message(settings.effective_temporal_address, reason)
            ) from None
        return await action(client, settings)

    return _exit_codes(go)


def _exit_codes(go: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `go`, its refusals in the CLI's words with exit 2, an absent Temporal, worker or API
    with exit 1."""
    try:
        return asyncio.run(go())
    except (CommandRejected, IncidentNotFound, UnknownCommand, BadCursor) as error:
        fail(in_cli_words(str(error)), 2)
    except TemporalUnavailable as error:
        fail(str(error), 1)
    except CommandPending as error:
        warn(
            f"{in_cli_words(str(error))}; `afteraction outcome {error.subject} "
            f"{error.command_id}` tells what became of it"
        )
        raise typer.Exit(PENDING) from None


def _emit(result: BaseModel | list[Any], as_json: bool, human: RenderableType) -> None:
    if as_json:
        if isinstance(result, list):
            data: Any = [item.model_dump(mode="json") for item in result]
        else:
            data = result.model_dump(mode="json")
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        out.print(human)


def emit_page(page: Page[Any], as_json: bool, human: RenderableType, *, command: str) -> None:
    """A page of a list: JSON with its `total` and `next` cursor, or the table and, when the
    list goes on, how many it shows of how many, and the option that shows the next page."""
    _emit(page, as_json, human)
    if as_json:
        return
    if page.next is not None:
        out.print(
            f"{page.showing()}; the next page: `afteraction {command} … --cursor {page.next}`"
        )
    elif page.total is not None and page.total != len(page.items):
        out.print(page.showing())  # the last page of several


class IncidentService(Protocol):
    """What the CLI asks of incidents: app.services.incidents.Incidents straight on Temporal,
    or app.cli.remote.RemoteIncidents through the API."""

    async def declare(self, request: NewIncident) -> IncidentStatus: ...

    async def list(
        self, filters: IncidentFilter | None = None, *, limit: int, cursor: str | None
    ) -> Page[IncidentSummary]: ...

    async def missing_worker(self) -> str | None: ...

    async def get(self, key: str) -> Incident: ...

    async def command(self, key: str, name: str, payload: BaseModel) -> IncidentStatus: ...

    async def submit_review(self, key: str, review: Review, *, actor: Actor) -> IncidentStatus: ...

    async def add_action_item(
        self, key: str, spec: ActionItemSpec, *, actor: Actor
    ) -> ActionItemSummary: ...

    async def outcome(self, key: str, update_id: str) -> BaseModel: ...


def remote_api(settings: Settings) -> Api | None:
    """The API to talk to instead of Temporal, when the settings give a token."""
    if settings.api_token is None:
        return None
    return Api(settings.effective_api_url, settings.api_token.get_secret_value())


def run_remote(api: Api, action: Callable[[], Awaitable[T]]) -> T:
    """Run `action` against the API, with the same messages and exit codes as on Temporal."""

    async def go() -> T:
        try:
            return await action()
        finally:
            await api.close()

    return _exit_codes(go)


def _run(action: Callable[[IncidentService], Awaitable[T]], *, uses_policy: bool = False) -> T:
    """Run `action` with the incidents service, under the deployment's policy and routing (or
    through the API, which has them). `uses_policy`: the command applies them (declare, the
    review, an added item), so the user hears if the CLI's own files are not the ones used."""
    settings = _settings()
    api = remote_api(settings)
    if api is not None:
        return run_remote(api, lambda: action(RemoteIncidents(api)))
    policy, routing = _policy_and_routing(settings, say=uses_policy)

    async def with_incidents(client: Client, settings: Settings) -> T:
        incidents = Incidents(
            client, task_queue=settings.task_queue, policy=policy, routing=routing
        )
        return await action(incidents)

    return _run_client(with_incidents)

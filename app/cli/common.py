"""What every `afteraction` sub-command shares: options, errors and exit codes, the
connection to Temporal and JSON or Rich output.

Exit codes: 0 done; 2 invalid input or a command that was rejected (with the reason);
1 Temporal (or its worker) unreachable, with how to start it.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import socket
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console, RenderableType
from temporalio.client import Client

from app.services.incidents import (
    CommandRejected,
    IncidentNotFound,
    Incidents,
    TemporalUnavailable,
    unavailable_message,
)
from domain.identity import Actor, ActorKind
from domain.policy import Policy, PolicyFileError, load_policy, parse_duration
from domain.routing import Routing, RoutingError, load_routing
from integrations.temporal_client import connect
from settings import Settings, SettingsError, load_settings

out = Console()
err = Console(stderr=True)
T = TypeVar("T")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
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


def fail(message: str, code: int) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        fail(str(error), 2)


def _moment(text: str, option: str, *, ahead: bool) -> datetime:
    """ISO 8601 (UTC when no zone is given) or a duration: that long ago, or from now."""
    duration = parse_duration(text)
    if isinstance(duration, timedelta):
        return datetime.now(UTC) + (duration if ahead else -duration)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        relative = "how long from now (7d, 36h)" if ahead else "how long ago (20m, 1h30m)"
        fail(
            f"{option} {text!r} is not a time; give ISO 8601 (2026-11-27T14:03:00Z) or {relative}",
            2,
        )
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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
                part
                for part in (
                    ".".join(str(p) for p in e["loc"]),
                    str(e["msg"]).removeprefix("Value error, "),
                )
                if part
            )
            for e in error.errors()
        )
        fail(problems, 2)


def _policy_and_routing(settings: Settings) -> tuple[Policy, Routing]:
    try:
        return load_policy(settings.policy_file), load_routing(settings.routing_file)
    except (PolicyFileError, RoutingError) as error:
        fail(str(error), 2)


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

    try:
        return asyncio.run(go())
    except (CommandRejected, IncidentNotFound) as error:
        fail(str(error), 2)
    except TemporalUnavailable as error:
        fail(str(error), 1)


def _emit(result: BaseModel | list[Any], as_json: bool, human: RenderableType) -> None:
    if as_json:
        if isinstance(result, list):
            data: Any = [item.model_dump(mode="json") for item in result]
        else:
            data = result.model_dump(mode="json")
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        out.print(human)


def _run(action: Callable[[Incidents], Awaitable[T]]) -> T:
    """Run `action` with the incidents service, under the configured policy and routing."""
    settings = _settings()
    policy, routing = _policy_and_routing(settings)

    async def with_incidents(client: Client, settings: Settings) -> T:
        incidents = Incidents(
            client, task_queue=settings.task_queue, policy=policy, routing=routing
        )
        return await action(incidents)

    return _run_client(with_incidents)

"""`afteraction digest`: preview the weekly digest of a week, or send one now. Part of the
`afteraction` app (app.cli.main registers it).

The preview goes through the API when AFTERACTION_API_TOKEN is set, else straight to the store;
a send by hand starts a WeeklyDigest run on Temporal."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text
from temporalio.client import Client, WorkflowFailureError

from app.cli.common import (
    JsonOption,
    _emit,
    _run_client,
    _settings,
    deployed,
    fail,
    remote_api,
    run_remote,
    warn,
)
from app.services.digest import SendPending, WeekError, preview, send_now
from domain.digest import Digest
from domain.digest_runs import DigestRunResult
from domain.digest_text import plain_text
from settings import Settings
from store import StoreError, configured_store

digest: typer.Typer = typer.Typer(
    name="digest",
    help="The weekly digest: preview a week's, or send one now.",
    no_args_is_help=True,
)

WeekOption = Annotated[
    str | None,
    typer.Option(
        "--week",
        help="The ISO week the digest is sent in, e.g. 2026-W49 (it covers the week before "
        "its send time); default: the latest send time's.",
    ),
]


@digest.command(name="preview")
def preview_command(week: WeekOption = None, as_json: JsonOption = False) -> None:
    """Print the digest of a week as its email's plain text (or as JSON)."""
    settings = _settings()
    api = remote_api(settings)
    if api is not None:
        params = {"week": week} if week else None
        remote: Digest = run_remote(
            api, lambda: api.call("GET", "/api/digest", Digest, params=params)
        )
        _show(remote, as_json)
        return
    in_force, _ = deployed(settings)
    if in_force.warning:
        warn(in_force.warning)
    try:
        found = preview(configured_store(settings), settings, in_force.policy.digest, week)
    except WeekError as error:
        fail(f"--week: {error}", 2)
    except StoreError as error:
        fail(str(error), 1 if error.retryable else 2)
    _show(found, as_json)


def _show(found: Digest, as_json: bool) -> None:
    _emit(found, as_json, Text(plain_text(found).rstrip("\n")))


@digest.command(name="send")
def send_command(
    now: Annotated[bool, typer.Option("--now", help="Send it now, by hand.")] = False,
    week: WeekOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send a digest now (by hand, besides the schedule's) to the policy's recipients."""
    if not now:
        fail("say --now to send a digest by hand; the schedule sends the weekly ones", 2)

    async def run(client: Client, settings: Settings) -> DigestRunResult:
        return await send_now(client, settings, week)

    try:
        result = _run_client(run)
    except SendPending as error:
        fail(str(error), 1)
    except WorkflowFailureError as error:
        fail(f"the digest was not sent: {error.cause}", 1)
    lines = [f"digest of the week before {result.slot:%Y-%m-%d %H:%M %Z} ({result.delivery})"]
    lines += [f"  {o.channel}: {o.status} {o.message_id or ''}".rstrip() for o in result.outcomes]
    if not result.outcomes:
        lines.append("  no channel is configured: nothing sent")
    _emit(result, as_json, Text("\n".join(lines)))

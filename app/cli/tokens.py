"""`afteraction tokens`: API tokens for people and bots, straight in the store (whoever can
run this against the database is already its administrator).

Part of the `afteraction` app (app.cli.main registers it), so it shares its exit codes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from pydantic import BaseModel
from rich.table import Table

from app.cli.common import JsonOption, _emit, _settings, cli_actor, fail, out
from domain.identity import Role
from domain.policy import parse_duration
from store import StoreError, configured_store
from store.api_tokens import ApiToken, ApiTokens

tokens: typer.Typer = typer.Typer(
    name="tokens",
    help="API tokens: create (the secret is shown once), list, revoke.",
    no_args_is_help=True,
)


class CreatedToken(BaseModel):
    token: ApiToken
    secret: str


def _tokens() -> ApiTokens:
    try:
        return ApiTokens(configured_store(_settings()))
    except StoreError as error:
        fail(str(error), 1 if error.retryable else 2)


def _expiry(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        duration = parse_duration(text)
    except ValueError:
        duration = None
    if not isinstance(duration, timedelta) or duration <= timedelta(0):
        fail(f"--expires {text!r} is not a duration; give how long it lasts, e.g. 90d or 12h", 2)
    try:
        return datetime.now(UTC) + duration
    except OverflowError:
        fail(f"--expires {text!r} is further away than a date can be; give e.g. 365d", 2)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "—"


def _table(rows: list[ApiToken]) -> Table:
    table = Table(title="API tokens")
    for column in ("Name", "Role", "Team", "Created (UTC)", "By", "Expires", "Revoked"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(
            row.name,
            row.role.value,
            row.team or "—",
            _when(row.created_at),
            row.created_by,
            _when(row.expires_at),
            _when(row.revoked_at),
        )
    return table


@tokens.command()
def create(
    name: str,
    role: Annotated[Role, typer.Option("--role", help="What the token may do.")],
    team: Annotated[
        str | None, typer.Option("--team", help="Act only on this team's action items.")
    ] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="How long it lasts, e.g. 90d (default: never).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a token and print its secret, once: only a hash of it is kept."""
    store = _tokens()
    try:
        token, secret = store.create(
            name, role=role, team=team, expires_at=_expiry(expires), created_by=cli_actor().label
        )
    except StoreError as error:
        fail(str(error), 1 if error.retryable else 2)
    if as_json:
        _emit(CreatedToken(token=token, secret=secret), True, "")
        return
    out.print(f"created token {token.name} ({token.role.value}); its secret, shown only now:")
    out.print(secret, highlight=False, soft_wrap=True)
    out.print("send it as `Authorization: Bearer <secret>`")


@tokens.command("list")
def list_tokens(as_json: JsonOption = False) -> None:
    """List the tokens (never their secrets), oldest first."""
    store = _tokens()
    try:
        rows = store.all()
    except StoreError as error:
        fail(str(error), 1 if error.retryable else 2)
    _emit(rows, as_json, _table(rows) if rows else "no tokens yet: `afteraction tokens create`")


@tokens.command()
def revoke(name: str, as_json: JsonOption = False) -> None:
    """Revoke a token: it stops working at once."""
    store = _tokens()
    try:
        token = store.revoke(name)
    except StoreError as error:
        fail(str(error), 1 if error.retryable else 2)
    _emit(token, as_json, f"revoked token {token.name}")

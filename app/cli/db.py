"""`afteraction db`: where the store's database is, and migrating it by hand.

Every afteraction process migrates the database when it starts; these commands are for
operators who want to see or do that step on its own (before a rolling deploy, say).
Part of the `afteraction` app (app.cli.main registers it), so it shares its exit codes.
"""

from __future__ import annotations

import typer
from pydantic import BaseModel

from app.cli.common import JsonOption, _emit, _settings, fail
from store import DatabaseNewerThanCode, SchemaStatus, StoreError, schema_status, upgrade
from store.configured import prepare_home
from store.database import Store, create_store_engine

db: typer.Typer = typer.Typer(
    name="db", help="The store's database: where it is and its schema.", no_args_is_help=True
)


class SchemaReport(BaseModel):
    database: str
    current: list[str]
    head: str
    state: str


def _report(status: SchemaStatus) -> SchemaReport:
    return SchemaReport(
        database=status.url, current=list(status.current), head=status.head, state=status.state
    )


def _human(report: SchemaReport) -> str:
    return (
        f"database  {report.database}\n"
        f"schema    {', '.join(report.current) or '(none)'}\n"
        f"newest    {report.head}\n"
        f"state     {report.state}"
    )


def _store() -> Store:
    settings = _settings()
    try:
        prepare_home(settings)
        return Store(create_store_engine(settings.effective_database_url))
    except StoreError as error:
        fail(str(error), 2)


@db.command()
def current(as_json: JsonOption = False) -> None:
    """Say where the database is and which schema revision it has, without changing it."""
    store = _store()
    try:
        report = _report(schema_status(store))
    except StoreError as error:
        fail(str(error), 1 if error.retryable else 2)
    finally:
        store.dispose()
    _emit(report, as_json, _human(report))


@db.command("upgrade")
def upgrade_command(as_json: JsonOption = False) -> None:
    """Migrate the database to this release's schema (what every process does at start)."""
    store = _store()
    try:
        report = _report(upgrade(store))
    except DatabaseNewerThanCode as error:
        fail(str(error), 2)
    except StoreError as error:
        fail(str(error), 1 if error.retryable else 2)
    finally:
        store.dispose()
    _emit(report, as_json, _human(report))

"""The store on SQLite and PostgreSQL: migrations, a database newer than the code, the legacy
tickets.db import, and a database URL whose password never reaches a message or a log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from domain.action_item import TicketStatus
from integrations.local import LocalTracker
from store import DatabaseNewerThanCode, StoreError, open_store, schema_status, upgrade
from store.database import Store, create_store_engine
from store.legacy import import_legacy_tickets
from store.migrate import head
from store.schema import Base
from tests.legacy_tickets import legacy_file
from tests.postgres import PASSWORD, PostgresServer
from tests.stack import free_port

AFTERACTION = str(Path(sys.executable).parent / "afteraction")


def fresh(database_url: str) -> Store:
    """A store on `database_url` that this process has not opened (nor migrated) yet."""
    return Store(create_store_engine(database_url))


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AFTERACTION_")}
    environment.update(env)
    return subprocess.run(
        [AFTERACTION, *args], env=environment, capture_output=True, text=True, timeout=60
    )


def test_a_new_database_is_migrated_to_the_newest_revision(database_url: str) -> None:
    store = fresh(database_url)
    before = schema_status(store)
    assert before.current == ()
    assert before.state.startswith("empty")

    after = upgrade(store)
    assert after.current == (head(),)
    assert after.state == "up to date"
    assert upgrade(store) == after, "a second upgrade changes nothing"


def test_the_migrations_create_exactly_the_models_tables(database_url: str) -> None:
    store = open_store(database_url)
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_a_database_newer_than_the_code_is_refused(database_url: str) -> None:
    store = fresh(database_url)
    upgrade(store)
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099_from_the_future'"))

    with pytest.raises(DatabaseNewerThanCode) as refused:
        upgrade(store)
    message = str(refused.value)
    assert "0099_from_the_future" in message
    assert "a newer release migrated it" in message
    assert refused.value.retryable is False
    assert schema_status(store).state.startswith("newer than this release")


def test_db_commands_say_where_the_database_is_and_migrate_it(database_url: str) -> None:
    env = {"AFTERACTION_DATABASE_URL": database_url}
    empty = cli("db", "current", "--json", **env)
    assert empty.returncode == 0, empty.stderr
    assert json.loads(empty.stdout)["current"] == []

    upgraded = cli("db", "upgrade", **env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"schema    {head()}" in upgraded.stdout
    assert "state     up to date" in upgraded.stdout

    current = json.loads(cli("db", "current", "--json", **env).stdout)
    assert current["current"] == [head()]
    assert current["state"] == "up to date"
    assert PASSWORD not in empty.stdout + upgraded.stdout + json.dumps(current)


def test_the_password_never_reaches_a_message_or_a_log(postgres_server: PostgresServer) -> None:
    closed_port = free_port()
    url = f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:{closed_port}/nowhere"
    with pytest.raises(StoreError) as unreachable:
        open_store(url)
    assert PASSWORD not in str(unreachable.value)
    assert "postgres:***@127.0.0.1" in str(unreachable.value)

    reachable = postgres_server.create_database()
    assert PASSWORD in reachable
    store = open_store(reachable)
    assert PASSWORD not in store.url
    for command in (("db", "current"), ("db", "upgrade"), ("tickets", "list")):
        for database in (url, reachable):
            result = cli(*command, AFTERACTION_DATABASE_URL=database, AFTERACTION_LOG_LEVEL="debug")
            assert PASSWORD not in result.stdout + result.stderr, (command, result)
    refused = cli("db", "current", AFTERACTION_DATABASE_URL=url)
    assert refused.returncode == 1
    assert "the database at postgresql+psycopg://postgres:***@" in refused.stderr


def test_an_unsupported_database_url_is_refused_with_the_forms_expected() -> None:
    result = cli("db", "current", AFTERACTION_DATABASE_URL="mysql://root@localhost/afteraction")
    assert result.returncode == 2
    assert "AFTERACTION_DATABASE_URL is invalid" in result.stderr
    assert "sqlite:///PATH or postgresql+psycopg://" in result.stderr


def test_an_earlier_releases_tickets_are_imported_once(database_url: str, tmp_path: Path) -> None:
    old = legacy_file(tmp_path / "tickets.db")
    tracker = LocalTracker(open_store(database_url, legacy_tickets=old))

    tickets = {ticket.ref.key: ticket for ticket in tracker.tickets()}
    assert sorted(tickets) == ["LOCAL-1", "LOCAL-3", "LOCAL-4"]
    assert tickets["LOCAL-1"].status is TicketStatus.CLOSED
    assert tickets["LOCAL-1"].labels == ["afteraction", "sev2"]
    assert tickets["LOCAL-1"].assignee == "ann"
    assert tickets["LOCAL-1"].idempotency_key == "incident/INC-1/action/1"
    assert tickets["LOCAL-1"].due_at == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    assert tickets["LOCAL-4"].idempotency_key is None
    assert [(c.idempotency_key, c.text) for c in tracker.comments("LOCAL-1")] == [
        ("reminder/1", "due soon"),
        ("verify/1", "verified"),
    ]

    again = import_legacy_tickets(tracker.store, old)
    assert again.skipped
    assert len(tracker.tickets()) == 3
    assert len(tracker.comments("LOCAL-1")) == 2
    # New tickets are numbered after the imported ones, never on top of them.
    assert tracker.create("after the import").ref.key == "LOCAL-5"


def test_an_import_that_would_point_an_item_at_another_ticket_is_refused(
    database_url: str, tmp_path: Path
) -> None:
    tracker = LocalTracker(open_store(database_url))
    tracker.create("made before the import")

    with pytest.raises(StoreError, match="already has a different LOCAL-1") as refused:
        import_legacy_tickets(tracker.store, legacy_file(tmp_path / "tickets.db"))
    assert refused.value.retryable is False
    assert [ticket.title for ticket in tracker.tickets()] == ["made before the import"]

"""Alembic, driven from code: every process brings the schema up to date when it opens the
store, and `afteraction db upgrade|current` does the same by hand.

Concurrent starts (two workers and two APIs at once) are safe: the upgrade runs in one
transaction that first takes a lock (PostgreSQL: an advisory lock; SQLite: BEGIN IMMEDIATE),
so the second process finds the schema already current.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from store.database import Store, StoreError

MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed 64-bit number: the advisory lock that serialises upgrades on PostgreSQL.
_UPGRADE_LOCK = 0x61667465_72616374  # "afteract"
_BEGIN_IMMEDIATE = {"afteraction_sqlite_begin": "IMMEDIATE"}


class DatabaseNewerThanCode(StoreError):
    """The database was migrated by a newer release than this one."""

    def __init__(self, store: Store, revisions: tuple[str, ...]) -> None:
        super().__init__(
            f"the database at {store.url} is at schema revision {', '.join(revisions)}, which "
            "this release of afteraction does not know: a newer release migrated it. Run that "
            "release (or newer), or point AFTERACTION_DATABASE_URL at another database",
            retryable=False,
        )


@dataclass(frozen=True)
class SchemaStatus:
    url: str
    current: tuple[str, ...]
    head: str

    @property
    def state(self) -> str:
        if self.current == (self.head,):
            return "up to date"
        if not self.current:
            return "empty: `afteraction db upgrade` (or any afteraction process) creates it"
        if self.unknown:
            return "newer than this release: run a newer afteraction"
        return "behind: `afteraction db upgrade` (or any afteraction process) migrates it"

    @property
    def unknown(self) -> tuple[str, ...]:
        scripts = _scripts()
        known = {revision.revision for revision in scripts.walk_revisions()}
        return tuple(revision for revision in self.current if revision not in known)


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head() -> str:
    revision = _scripts().get_current_head()
    assert revision is not None, "store/migrations/versions holds no revision"
    return revision


def _current(connection: Connection) -> tuple[str, ...]:
    return tuple(sorted(MigrationContext.configure(connection).get_current_heads()))


def schema_status(store: Store) -> SchemaStatus:
    """Where the database is, without changing it."""
    with store.failures_explained(), store.engine.connect() as connection:
        return SchemaStatus(url=store.url, current=_current(connection), head=head())


def upgrade(store: Store) -> SchemaStatus:
    """Migrate to the newest revision this release knows; refuse a database that is newer."""
    with (
        store.failures_explained(),
        store.engine.connect() as plain,
        plain.execution_options(**_BEGIN_IMMEDIATE) as connection,
        connection.begin(),
    ):
        if store.dialect == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _UPGRADE_LOCK})
        status = SchemaStatus(url=store.url, current=_current(connection), head=head())
        if status.unknown:
            raise DatabaseNewerThanCode(store, status.unknown)
        if status.current != (status.head,):
            command.upgrade(_config(connection), "head")
        return SchemaStatus(url=store.url, current=_current(connection), head=status.head)

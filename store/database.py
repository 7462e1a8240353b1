"""One engine per database URL, and transactions that suit each engine.

SQLite: WAL, a busy timeout, foreign keys on, and writes in `BEGIN IMMEDIATE` transactions so
a read-then-write never has to upgrade its lock (and deadlock) while another process writes.
PostgreSQL: READ COMMITTED, with unique constraints doing the arbitration.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

# Seconds a SQLite statement waits for another writer before failing (retryably).
SQLITE_BUSY_TIMEOUT = 5.0
_WAL_ATTEMPTS = 20
_BEGIN_OPTION = "afteraction_sqlite_begin"


class StoreError(Exception):
    """The store is unreachable or refused; the message names the database (never its
    password) and what to do. `retryable` says whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


def redacted_url(url: str | URL) -> str:
    """The URL with its password masked: the only form of it that may reach a log."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        return "<an unparsable database URL>"
    return parsed.render_as_string(hide_password=True)


def failure_message(url: str, error: SQLAlchemyError) -> str:
    """One line a person can act on; `url` is already redacted."""
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
    return (
        f"the database at {url} failed: {reason}; check that it is running and that "
        "AFTERACTION_DATABASE_URL (or AFTERACTION_HOME) names it"
    )


class Store:
    """An engine and its sessions. `reading()` and `writing()` are the only doors in."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._writer = sessionmaker(
            engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"}), expire_on_commit=False
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def url(self) -> str:
        return redacted_url(self.engine.url)

    @contextlib.contextmanager
    def reading(self) -> Iterator[Session]:
        with self.failures_explained(), self._sessions() as session:
            yield session

    @contextlib.contextmanager
    def writing(self) -> Iterator[Session]:
        """A transaction that commits when the block ends and rolls back when it raises."""
        with self.failures_explained(), self._writer() as session, session.begin():
            yield session

    @contextlib.contextmanager
    def failures_explained(self) -> Iterator[None]:
        """The database's own failures as StoreError: its URL (no password) and what to do."""
        try:
            yield
        except OperationalError as error:  # unreachable, locked past the timeout, disk full
            raise StoreError(failure_message(self.url, error)) from None

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_wal(dbapi_connection: Any) -> None:
    """WAL is a property of the file: only its first user sets it. Switching needs the file to
    itself and SQLite does not wait for that, so a process opening a new file at the same time
    as another (the worker and `afteraction tickets`) tries again."""
    for attempt in range(_WAL_ATTEMPTS):
        try:
            mode = dbapi_connection.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                dbapi_connection.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as error:  # sqlite3.OperationalError; the dialect's DBAPI, not ours
            if "locked" not in str(error) or attempt == _WAL_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling cannot BEGIN IMMEDIATE; take it over (the recipe in
    # SQLAlchemy's pysqlite documentation, "Serializable isolation / Savepoints").
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT * 1000)}")
        dbapi_connection.execute("PRAGMA foreign_keys = ON")
        _sqlite_wal(dbapi_connection)
        # Safe in WAL mode: a crash loses no committed transaction; only a power cut may.
        dbapi_connection.execute("PRAGMA synchronous = NORMAL")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def create_store_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            "AFTERACTION_DATABASE_URL is not a database URL; expected sqlite:///PATH or "
            "postgresql+psycopg://USER:PASSWORD@HOST:5432/DATABASE",
            retryable=False,
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if not database or database == ":memory:":
            raise StoreError(
                "an in-memory SQLite database cannot be shared by the worker and the API; "
                "give AFTERACTION_DATABASE_URL a file (sqlite:///PATH)",
                retryable=False,
            )
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT})
        _configure_sqlite(engine)
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(
            parsed,
            pool_pre_ping=True,
            pool_size=5,
            max_overflow=20,
            connect_args={"connect_timeout": 10},
        )
    raise StoreError(
        f"afteraction stores its data in SQLite or PostgreSQL, not {backend!r}; "
        "set AFTERACTION_DATABASE_URL to sqlite:///PATH or postgresql+psycopg://…",
        retryable=False,
    )

"""The local tracker: tickets in a SQLite file, so afteraction runs with no credentials.

Activities call it from the worker's thread pool, so every call opens its own connection
(WAL mode, a busy timeout) and writes in `BEGIN IMMEDIATE` transactions. Keys are LOCAL-1,
LOCAL-2, ...; the only target it serves is "local".
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from domain.action_item import TicketRef, TicketStatus
from integrations.tracker import Ticket, TicketChange, TicketDraft, TrackerError

TARGET = "local"
DB_FILE = "tickets.db"
# Seconds a call waits for another writer before giving up (retryably). An ensure_ticket
# attempt connects up to three times, so this keeps it well inside the ticket activities'
# 20s start-to-close timeout (workflows/action_item.py TRACKER_TIMEOUT).
BUSY_TIMEOUT = 5.0
SCHEMA_ATTEMPTS = 20
_SCHEMA_LOCKS: dict[Path, threading.Lock] = {}
_SCHEMA_LOCKS_GUARD = threading.Lock()


def _schema_lock(path: Path) -> threading.Lock:
    """One lock per database file in this process, shared by every tracker on it."""
    with _SCHEMA_LOCKS_GUARD:
        return _SCHEMA_LOCKS.setdefault(path.resolve(), threading.Lock())


_KEY = re.compile(r"^LOCAL-(\d+)$", re.IGNORECASE)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tickets (
    number INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT UNIQUE,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    labels TEXT NOT NULL,
    assignee TEXT,
    due_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tickets_updated_at ON tickets (updated_at);
CREATE TABLE IF NOT EXISTS comments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_key TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    text TEXT NOT NULL,
    at TEXT NOT NULL,
    UNIQUE (ticket_key, idempotency_key)
);
"""


class Comment(BaseModel):
    ticket_key: str
    idempotency_key: str
    text: str
    at: datetime


class TicketDetail(Ticket):
    """A ticket with what only `show` needs: its body and its comments."""

    body: str
    comments: list[Comment]


def _stamp(moment: datetime) -> str:
    # Fixed-width UTC text sorts like the instants it names, so SQL can compare it.
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _parse_stamp(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


def _key(number: int) -> str:
    return f"LOCAL-{number}"


def _ticket(row: sqlite3.Row) -> Ticket:
    return Ticket(
        ref=TicketRef(target=TARGET, key=_key(row["number"])),
        title=row["title"],
        status=TicketStatus(row["status"]),
        labels=json.loads(row["labels"]),
        assignee=row["assignee"],
        due_at=_parse_stamp(row["due_at"]),
        idempotency_key=row["idempotency_key"],
        updated_at=datetime.fromisoformat(row["updated_at"]),
    )


def _comment(row: sqlite3.Row) -> Comment:
    return Comment(
        ticket_key=row["ticket_key"],
        idempotency_key=row["idempotency_key"],
        text=row["text"],
        at=datetime.fromisoformat(row["at"]),
    )


class LocalTracker:
    """A `Tracker` on one SQLite file; the schema is created on first use."""

    def __init__(self, path: Path, *, clock: Callable[[], datetime] | None = None) -> None:
        self.path = path
        self._clock = clock or (lambda: datetime.now(UTC))
        self._ready = False
        self._ready_lock = threading.Lock()

    @classmethod
    def in_home(cls, home: Path) -> LocalTracker:
        """The tracker of an AFTERACTION_HOME folder."""
        return cls(home / DB_FILE)

    # The Tracker protocol.

    def ensure_ticket(self, target: str, draft: TicketDraft) -> Ticket:
        return self.ensure(target, draft)[0]

    def get(self, target: str, key: str) -> Ticket:
        _check_target(target)
        with self._connect() as db:
            return _ticket(self._row(db, key))

    def update(self, target: str, key: str, change: TicketChange) -> Ticket:
        _check_target(target)
        with self._write() as db:
            row = self._row(db, key)
            labels: list[str] = json.loads(row["labels"])
            new_labels = labels + [
                label for label in dict.fromkeys(change.add_labels) if label not in labels
            ]
            fields: dict[str, Any] = {}
            if new_labels != labels:
                fields["labels"] = json.dumps(new_labels)
            if change.due_at is not None and _stamp(change.due_at) != row["due_at"]:
                fields["due_at"] = _stamp(change.due_at)
            if change.assignee is not None and change.assignee != row["assignee"]:
                fields["assignee"] = change.assignee
            return self._change(db, row, fields)

    def comment(
        self, target: str, key: str, text: str, *, idempotency_key: str, may_exist: bool = True
    ) -> None:
        """`may_exist` is moot here: the UNIQUE key makes every insert idempotent."""
        _check_target(target)
        with self._write() as db:
            row = self._row(db, key)
            now = _stamp(self._clock())
            added = db.execute(
                "INSERT INTO comments (ticket_key, idempotency_key, text, at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (ticket_key, idempotency_key) DO NOTHING",
                (_key(row["number"]), idempotency_key, text, now),
            )
            if added.rowcount:
                db.execute(
                    "UPDATE tickets SET updated_at = ? WHERE number = ?", (now, row["number"])
                )

    def close(self, target: str, key: str) -> Ticket:
        return self._set_status(target, key, TicketStatus.CLOSED)

    def reopen(self, target: str, key: str) -> Ticket:
        return self._set_status(target, key, TicketStatus.OPEN)

    def changed_since(self, target: str, since: datetime) -> list[Ticket]:
        """Tickets afteraction created (they carry an idempotency key) updated at or after
        `since` (naive means UTC), oldest change first."""
        _check_target(target)
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM tickets WHERE idempotency_key IS NOT NULL AND updated_at >= ?"
                " ORDER BY updated_at, number",
                (_stamp(since),),
            ).fetchall()
        return [_ticket(row) for row in rows]

    # Beyond the protocol: for the activities' logs, the CLI and the tests.

    def ensure(self, target: str, draft: TicketDraft) -> tuple[Ticket, bool]:
        """`ensure_ticket`, also saying whether this call created the ticket."""
        _check_target(target)
        with self._connect() as db:
            found = self._by_idempotency_key(db, draft.idempotency_key)
        if found is not None:
            return _ticket(found), False
        try:
            ticket = self._insert(
                title=draft.title,
                body=draft.body,
                labels=draft.labels,
                assignee=draft.assignee,
                due_at=draft.due_at,
                idempotency_key=draft.idempotency_key,
            )
        except sqlite3.IntegrityError:
            # Another call created it between our look-up and our insert: that one is the ticket.
            with self._connect() as db:
                found = self._by_idempotency_key(db, draft.idempotency_key)
            if found is None:
                raise
            return _ticket(found), False
        return ticket, True

    def create(
        self,
        title: str,
        *,
        body: str = "",
        labels: Sequence[str] = (),
        assignee: str | None = None,
        due_at: datetime | None = None,
    ) -> Ticket:
        """A ticket opened by hand: no idempotency key, so no action item follows it."""
        return self._insert(
            title=title,
            body=body,
            labels=labels,
            assignee=assignee,
            due_at=due_at,
            idempotency_key=None,
        )

    def tickets(self, *, status: TicketStatus | None = None) -> list[Ticket]:
        with self._connect() as db:
            if status is None:
                rows = db.execute("SELECT * FROM tickets ORDER BY number").fetchall()
            else:
                rows = db.execute(
                    "SELECT * FROM tickets WHERE status = ? ORDER BY number", (status.value,)
                ).fetchall()
        return [_ticket(row) for row in rows]

    def comments(self, key: str) -> list[Comment]:
        with self._connect() as db:
            return self._comments(db, self._row(db, key))

    def detail(self, key: str) -> TicketDetail:
        with self._connect() as db:
            row = self._row(db, key)
            comments = self._comments(db, row)
        return TicketDetail(**_ticket(row).model_dump(), body=row["body"], comments=comments)

    # SQLite.

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self._create_schema()
        try:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
        except sqlite3.Error as error:
            raise self._unavailable(error) from None
        db.row_factory = sqlite3.Row
        try:
            yield db
        except sqlite3.OperationalError as error:  # locked past the timeout, disk full, ...
            raise self._unavailable(error) from None
        finally:
            db.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A connection in a transaction that holds the write lock from its first statement,
        so a read-then-write never has to upgrade its lock (and deadlock) under contention."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.in_transaction:  # SQLite rolls back by itself after some errors
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _create_schema(self) -> None:
        with self._ready_lock, _schema_lock(self.path):
            if self._ready:
                return
            for attempt in range(SCHEMA_ATTEMPTS):
                try:
                    self._try_create_schema()
                    break
                except sqlite3.OperationalError as error:
                    # Switching to WAL needs the file to itself, and SQLite does not wait for
                    # that: another process opening the same new file at once (the worker
                    # and `afteraction tickets`) makes it fail at once, so try again.
                    if "locked" not in str(error) or attempt == SCHEMA_ATTEMPTS - 1:
                        raise self._unavailable(error) from None
                    time.sleep(0.05 * (attempt + 1))
                except (OSError, sqlite3.Error) as error:
                    raise self._unavailable(error) from None
            self._ready = True

    def _try_create_schema(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
        try:
            # WAL is a property of the file: only its first user has to set it.
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;")
        finally:
            db.close()

    def _unavailable(self, error: Exception) -> TrackerError:
        return TrackerError(
            f"the local tracker at {self.path} failed ({type(error).__name__}: {error})",
            retryable=True,
        )

    def _insert(
        self,
        *,
        title: str,
        body: str,
        labels: Sequence[str],
        assignee: str | None,
        due_at: datetime | None,
        idempotency_key: str | None,
    ) -> Ticket:
        now = _stamp(self._clock())
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO tickets (idempotency_key, title, body, status, labels, assignee,"
                " due_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    idempotency_key,
                    title,
                    body,
                    TicketStatus.OPEN.value,
                    json.dumps(list(dict.fromkeys(labels))),
                    assignee,
                    _stamp(due_at) if due_at is not None else None,
                    now,
                    now,
                ),
            )
            row = db.execute(
                "SELECT * FROM tickets WHERE number = ?", (cursor.lastrowid,)
            ).fetchone()
        return _ticket(row)

    def _set_status(self, target: str, key: str, status: TicketStatus) -> Ticket:
        """Closing a closed ticket (or reopening an open one) changes nothing."""
        _check_target(target)
        with self._write() as db:
            row = self._row(db, key)
            fields = {"status": status.value} if row["status"] != status.value else {}
            return self._change(db, row, fields)

    def _change(self, db: sqlite3.Connection, row: sqlite3.Row, fields: dict[str, Any]) -> Ticket:
        """Apply `fields` to the ticket and move updated_at; no fields, no change."""
        if not fields:
            return _ticket(row)
        fields["updated_at"] = _stamp(self._clock())
        assignments = ", ".join(f"{name} = ?" for name in fields)
        db.execute(
            f"UPDATE tickets SET {assignments} WHERE number = ?",  # names are ours, not input
            (*fields.values(), row["number"]),
        )
        return _ticket(
            db.execute("SELECT * FROM tickets WHERE number = ?", (row["number"],)).fetchone()
        )

    def _row(self, db: sqlite3.Connection, key: str) -> sqlite3.Row:
        match = _KEY.match(key)
        row = (
            db.execute("SELECT * FROM tickets WHERE number = ?", (int(match[1]),)).fetchone()
            if match
            else None
        )
        if row is None:
            raise TrackerError(
                f"no ticket {key} in the local tracker ({self.path}); "
                "`afteraction tickets list` shows the keys",
                retryable=False,
            )
        return row

    @staticmethod
    def _by_idempotency_key(db: sqlite3.Connection, idempotency_key: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = db.execute(
            "SELECT * FROM tickets WHERE idempotency_key = ?", (idempotency_key,)
        ).fetchone()
        return row

    @staticmethod
    def _comments(db: sqlite3.Connection, row: sqlite3.Row) -> list[Comment]:
        rows = db.execute(
            "SELECT * FROM comments WHERE ticket_key = ? ORDER BY id", (_key(row["number"]),)
        ).fetchall()
        return [_comment(comment) for comment in rows]


def _check_target(target: str) -> None:
    if target != TARGET:
        raise TrackerError(
            f"the local tracker serves the target {TARGET!r} only, not {target!r}",
            retryable=False,
        )

"""Importing the local tracker's tickets.db of releases before the store (one SQLite file per
process state folder), once.

Keys, numbers, states, labels and comments are kept: running action items refer to their
tickets as LOCAL-<number>. The import is one transaction, recorded in legacy_imports under the
file's resolved path, so a second start (or a second process starting at once) skips it. A
ticket already in the store with the same number and idempotency key is the same ticket and is
left as it is; a different ticket under the same number stops the import with an error rather
than pointing an action item at the wrong ticket.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select, text

from store.database import Store, StoreError
from store.schema import LegacyImportRow, LocalCommentRow, LocalTicketRow

LEGACY_FILE = "tickets.db"


@dataclass(frozen=True)
class LegacyImport:
    source: str
    tickets: int
    comments: int
    skipped: bool


def _moment(value: str | None) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _read(path: Path) -> tuple[list[sqlite3.Row], list[sqlite3.Row]]:
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise StoreError(f"cannot read the earlier release's {path}: {error}") from None
    db.row_factory = sqlite3.Row
    try:
        tickets = db.execute("SELECT * FROM tickets ORDER BY number").fetchall()
        comments = db.execute("SELECT * FROM comments ORDER BY id").fetchall()
    except sqlite3.Error as error:
        raise StoreError(
            f"{path} is not an afteraction tickets file ({error}); move it out of "
            "AFTERACTION_HOME to start without it",
            retryable=False,
        ) from None
    finally:
        db.close()
    return tickets, comments


def import_legacy_tickets(store: Store, path: Path) -> LegacyImport:
    source = str(path.resolve())
    with store.reading() as session:
        done = session.get(LegacyImportRow, source)
    if done is not None:
        return LegacyImport(source, done.tickets, done.comments, skipped=True)
    tickets, comments = _read(path)
    with store.writing() as session:
        if session.get(LegacyImportRow, source) is not None:  # another process won the race
            return LegacyImport(source, 0, 0, skipped=True)
        numbers: dict[str, int] = {}
        added_tickets = 0
        for row in tickets:
            numbers[f"LOCAL-{row['number']}"] = row["number"]
            existing = session.get(LocalTicketRow, row["number"])
            if existing is not None:
                if existing.idempotency_key != row["idempotency_key"] or (
                    existing.idempotency_key is None and existing.title != row["title"]
                ):
                    raise StoreError(
                        f"{path} holds LOCAL-{row['number']} ({row['title']!r}), but the "
                        f"database at {store.url} already has a different LOCAL-{row['number']}"
                        f" ({existing.title!r}); import it into an empty database, or move "
                        "the file out of AFTERACTION_HOME to start without it",
                        retryable=False,
                    )
                continue
            session.add(
                LocalTicketRow(
                    number=row["number"],
                    idempotency_key=row["idempotency_key"],
                    title=row["title"],
                    body=row["body"],
                    status=row["status"],
                    labels=json.loads(row["labels"]),
                    assignee=row["assignee"],
                    due_at=_moment(row["due_at"]),
                    created_at=_moment(row["created_at"]),
                    updated_at=_moment(row["updated_at"]),
                )
            )
            added_tickets += 1
        session.flush()
        added_comments = 0
        for row in comments:
            number = numbers.get(row["ticket_key"].upper())
            if number is None:
                continue  # a comment on a ticket the file no longer has
            already = session.scalars(
                select(LocalCommentRow.id).where(
                    LocalCommentRow.ticket_number == number,
                    LocalCommentRow.idempotency_key == row["idempotency_key"],
                )
            ).first()
            if already is None:
                session.add(
                    LocalCommentRow(
                        ticket_number=number,
                        idempotency_key=row["idempotency_key"],
                        text=row["text"],
                        at=_moment(row["at"]),
                    )
                )
                added_comments += 1
        if store.dialect == "postgresql" and tickets:
            # Explicit numbers do not move PostgreSQL's sequence: the next ticket must not
            # collide with an imported one.
            highest = session.scalar(select(func.max(LocalTicketRow.number)))
            session.execute(
                text("SELECT setval(pg_get_serial_sequence('local_tickets', 'number'), :n)"),
                {"n": highest},
            )
        session.add(
            LegacyImportRow(
                source=source,
                tickets=added_tickets,
                comments=added_comments,
                imported_at=datetime.now(UTC),
            )
        )
    return LegacyImport(source, added_tickets, added_comments, skipped=False)

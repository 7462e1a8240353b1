"""The local tracker's tickets and comments: the SQL behind integrations.local.LocalTracker.

Tickets are numbered by the database (LOCAL-<number>). Creation is arbitrated by the unique
idempotency key: of two workers that create the same item's ticket at once, one insert wins
and the other finds that ticket, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from domain.action_item import TicketRef, TicketStatus
from domain.tickets import Ticket, TicketComment, TicketDetail
from store.database import Store
from store.schema import LocalCommentRow, LocalTicketRow

TARGET = "local"
KEY_PREFIX = "LOCAL-"
# The largest number a ticket key may carry (a signed 64-bit integer, as both engines store).
_MAX_NUMBER = 2**63 - 1


def key_of(number: int) -> str:
    return f"{KEY_PREFIX}{number}"


def number_of(key: str) -> int | None:
    """The ticket number in LOCAL-<n> (any case), or None when `key` names no local ticket."""
    prefix, digits = key[: len(KEY_PREFIX)], key[len(KEY_PREFIX) :]
    if prefix.upper() != KEY_PREFIX or not digits.isdigit() or not digits.isascii():
        return None
    number = int(digits)
    return number if 0 < number <= _MAX_NUMBER else None


def _ticket(row: LocalTicketRow) -> Ticket:
    return Ticket(
        ref=TicketRef(target=TARGET, key=key_of(row.number)),
        title=row.title,
        status=TicketStatus(row.status),
        labels=list(row.labels),
        assignee=row.assignee,
        due_at=row.due_at,
        idempotency_key=row.idempotency_key,
        updated_at=row.updated_at,
        resolution=row.resolution,
    )


def _comment(row: LocalCommentRow) -> TicketComment:
    return TicketComment(
        ticket_key=key_of(row.ticket_number),
        idempotency_key=row.idempotency_key,
        text=row.text,
        at=row.at,
    )


class LocalTickets:
    """Every read and write of the local tracker's tables. Each method is one transaction."""

    def __init__(self, store: Store, *, clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self._clock = clock or (lambda: datetime.now(UTC))

    def find(self, number: int) -> Ticket | None:
        with self.store.reading() as session:
            row = session.get(LocalTicketRow, number)
            return _ticket(row) if row is not None else None

    def find_by_idempotency_key(self, idempotency_key: str) -> Ticket | None:
        with self.store.reading() as session:
            row = self._by_idempotency_key(session, idempotency_key)
            return _ticket(row) if row is not None else None

    def create(
        self,
        *,
        title: str,
        body: str,
        labels: Sequence[str],
        assignee: str | None,
        due_at: datetime | None,
        idempotency_key: str | None,
    ) -> tuple[Ticket, bool]:
        """The ticket, and whether this call created it: with an idempotency key that another
        call already used, that call's ticket (never a second one)."""
        now = self._clock()
        values = {
            "idempotency_key": idempotency_key,
            "title": title,
            "body": body,
            "status": TicketStatus.OPEN.value,
            "labels": list(dict.fromkeys(labels)),
            "assignee": assignee,
            "due_at": due_at,
            "created_at": now,
            "updated_at": now,
        }
        with self.store.writing() as session:
            if idempotency_key is None:
                row = LocalTicketRow(**values)
                session.add(row)
                session.flush()
                return _ticket(row), True
            # Looked up first so that a retry consumes no ticket number (PostgreSQL's sequence
            # moves even for an insert that conflicts); the insert still settles a race.
            found = self._by_idempotency_key(session, idempotency_key)
            if found is not None:
                return _ticket(found), False
            number = session.execute(
                self._insert(LocalTicketRow)
                .values(**values)
                .on_conflict_do_nothing(index_elements=["idempotency_key"])
                .returning(LocalTicketRow.number)
            ).scalar_one_or_none()
            if number is None:  # another call created it: that one is the ticket
                found = self._by_idempotency_key(session, idempotency_key)
                assert found is not None, "the conflicting ticket is gone"
                return _ticket(found), False
            created = session.get(LocalTicketRow, number)
            assert created is not None
            return _ticket(created), True

    def change(
        self,
        number: int,
        *,
        status: TicketStatus | None = None,
        add_labels: Sequence[str] = (),
        due_at: datetime | None = None,
        assignee: str | None = None,
        resolution: str | None = None,
    ) -> Ticket | None:
        """Apply what differs; updated_at moves only when something did. None: no such ticket.
        A ticket that opens again loses its resolution."""
        with self.store.writing() as session:
            row = session.get(LocalTicketRow, number)
            if row is None:
                return None
            changed = False
            if status is not None and row.status != status.value:
                row.status, changed = status.value, True
                if status is TicketStatus.OPEN:
                    row.resolution = None
            if resolution is not None and row.resolution != resolution:
                row.resolution, changed = resolution, True
            new_labels = [label for label in dict.fromkeys(add_labels) if label not in row.labels]
            if new_labels:
                row.labels, changed = [*row.labels, *new_labels], True
            if due_at is not None and row.due_at != due_at:
                row.due_at, changed = due_at, True
            if assignee is not None and row.assignee != assignee:
                row.assignee, changed = assignee, True
            if changed:
                row.updated_at = self._clock()
            return _ticket(row)

    def add_comment(self, number: int, text: str, *, idempotency_key: str) -> bool | None:
        """True when added, False when a comment with this key was already there, None when
        there is no such ticket. A new comment moves the ticket's updated_at."""
        now = self._clock()
        with self.store.writing() as session:
            if session.get(LocalTicketRow, number) is None:
                return None
            added = session.execute(
                self._insert(LocalCommentRow)
                .values(ticket_number=number, idempotency_key=idempotency_key, text=text, at=now)
                .on_conflict_do_nothing(index_elements=["ticket_number", "idempotency_key"])
                .returning(LocalCommentRow.id)
            ).scalar_one_or_none()
            if added is None:
                return False
            session.execute(
                update(LocalTicketRow).where(LocalTicketRow.number == number).values(updated_at=now)
            )
            return True

    def changed_since(self, since: datetime) -> list[Ticket]:
        """Tickets afteraction created (they carry an idempotency key) updated at or after
        `since`, oldest change first."""
        with self.store.reading() as session:
            rows = session.scalars(
                select(LocalTicketRow)
                .where(
                    LocalTicketRow.idempotency_key.is_not(None),
                    LocalTicketRow.updated_at >= since,
                )
                .order_by(LocalTicketRow.updated_at, LocalTicketRow.number)
            )
            return [_ticket(row) for row in rows]

    def all(self, *, status: TicketStatus | None = None) -> list[Ticket]:
        query = select(LocalTicketRow).order_by(LocalTicketRow.number)
        if status is not None:
            query = query.where(LocalTicketRow.status == status.value)
        with self.store.reading() as session:
            return [_ticket(row) for row in session.scalars(query)]

    def detail(self, number: int) -> TicketDetail | None:
        with self.store.reading() as session:
            row = session.get(LocalTicketRow, number)
            if row is None:
                return None
            comments = session.scalars(
                select(LocalCommentRow)
                .where(LocalCommentRow.ticket_number == number)
                .order_by(LocalCommentRow.id)
            )
            return TicketDetail(
                **_ticket(row).model_dump(),
                body=row.body,
                comments=[_comment(comment) for comment in comments],
            )

    def comments(self, number: int) -> list[TicketComment]:
        found = self.detail(number)
        return found.comments if found is not None else []

    @staticmethod
    def _by_idempotency_key(session: Session, idempotency_key: str) -> LocalTicketRow | None:
        return session.scalars(
            select(LocalTicketRow).where(LocalTicketRow.idempotency_key == idempotency_key)
        ).one_or_none()

    def _insert(self, table: type[LocalTicketRow] | type[LocalCommentRow]) -> Any:
        """INSERT … ON CONFLICT DO NOTHING is spelt per dialect; both engines have it."""
        if self.store.dialect == "postgresql":
            return postgresql_insert(table)
        return sqlite_insert(table)

"""The local tracker: tickets in afteraction's own store, so it runs with no credentials.

A thin `Tracker` over store.local_tickets: it checks the target, turns a key into a ticket
number and the store's failures into TrackerError (retryable while the database is away).
Keys are LOCAL-1, LOCAL-2, ...; the only target it serves is "local".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from domain.action_item import TicketStatus
from domain.tickets import NOT_PLANNED, TicketComment, TicketDetail
from integrations.tracker import Ticket, TicketChange, TicketDraft, TrackerError
from settings import Settings
from store import Store, StoreError, configured_store
from store.local_tickets import TARGET, LocalTickets, number_of

__all__ = ["TARGET", "LocalTracker", "TicketComment", "TicketDetail"]
T = TypeVar("T")


class LocalTracker:
    """A `Tracker` on the store's local_tickets table."""

    def __init__(self, store: Store, *, clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self._tickets = LocalTickets(store, clock=clock)

    @classmethod
    def configured(cls, settings: Settings) -> LocalTracker:
        """The tracker on the store the settings name (StoreError when it is unusable)."""
        return cls(configured_store(settings))

    # The Tracker protocol.

    def ensure_ticket(self, target: str, draft: TicketDraft, *, may_exist: bool = True) -> Ticket:
        return self.ensure(target, draft, may_exist=may_exist)[0]

    def get(self, target: str, key: str) -> Ticket:
        _check_target(target)
        number = self._number(key)
        return self._found(key, self._call(lambda: self._tickets.find(number)))

    def update(self, target: str, key: str, change: TicketChange) -> Ticket:
        _check_target(target)
        number = self._number(key)
        changed = self._call(
            lambda: self._tickets.change(
                number,
                add_labels=change.add_labels,
                due_at=change.due_at,
                assignee=change.assignee,
                status=TicketStatus.CLOSED if change.close_as_not_planned else None,
                resolution=NOT_PLANNED if change.close_as_not_planned else None,
            )
        )
        return self._found(key, changed)

    def comment(
        self, target: str, key: str, text: str, *, idempotency_key: str, may_exist: bool = True
    ) -> None:
        """`may_exist` is moot here: the unique key makes every insert idempotent."""
        _check_target(target)
        number = self._number(key)
        added = self._call(
            lambda: self._tickets.add_comment(number, text, idempotency_key=idempotency_key)
        )
        if added is None:
            raise self._missing(key)

    def close(self, target: str, key: str) -> Ticket:
        return self._set_status(target, key, TicketStatus.CLOSED)

    def reopen(self, target: str, key: str) -> Ticket:
        return self._set_status(target, key, TicketStatus.OPEN)

    def changed_since(self, target: str, since: datetime) -> list[Ticket]:
        """Tickets afteraction created updated at or after `since`, oldest change first."""
        _check_target(target)
        return self._call(lambda: self._tickets.changed_since(since))

    # Beyond the protocol: for the activities' logs, the CLI, the API and the tests.

    def ensure(
        self, target: str, draft: TicketDraft, *, may_exist: bool = True
    ) -> tuple[Ticket, bool]:
        """`ensure_ticket`, also saying whether this call created the ticket. `may_exist` is
        moot here: the unique key settles every create in one transaction."""
        _check_target(target)
        return self._call(
            lambda: self._tickets.create(
                title=draft.title,
                body=draft.body,
                labels=draft.labels,
                assignee=draft.assignee,
                due_at=draft.due_at,
                idempotency_key=draft.idempotency_key,
            )
        )

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
        created, _ = self._call(
            lambda: self._tickets.create(
                title=title,
                body=body,
                labels=labels,
                assignee=assignee,
                due_at=due_at,
                idempotency_key=None,
            )
        )
        return created

    def tickets(self, *, status: TicketStatus | None = None) -> list[Ticket]:
        return self._call(lambda: self._tickets.all(status=status))

    def comments(self, key: str) -> list[TicketComment]:
        return self.detail(key).comments

    def detail(self, key: str) -> TicketDetail:
        number = self._number(key)
        found = self._call(lambda: self._tickets.detail(number))
        if found is None:
            raise self._missing(key)
        return found

    def _set_status(self, target: str, key: str, status: TicketStatus) -> Ticket:
        """Closing a closed ticket (or reopening an open one) changes nothing."""
        _check_target(target)
        number = self._number(key)
        return self._found(key, self._call(lambda: self._tickets.change(number, status=status)))

    def _number(self, key: str) -> int:
        number = number_of(key)
        if number is None:
            raise self._missing(key)
        return number

    def _found(self, key: str, ticket: Ticket | None) -> Ticket:
        if ticket is None:
            raise self._missing(key)
        return ticket

    def _missing(self, key: str) -> TrackerError:
        return TrackerError(
            f"no ticket {key} in the local tracker ({self.store.url}); "
            "`afteraction tickets list` shows the keys",
            retryable=False,
        )

    @staticmethod
    def _call(action: Callable[[], T]) -> T:
        try:
            return action()
        except StoreError as error:
            raise TrackerError(
                f"the local tracker failed: {error}", retryable=error.retryable
            ) from None


def _check_target(target: str) -> None:
    if target != TARGET:
        raise TrackerError(
            f"the local tracker serves the target {TARGET!r} only, not {target!r}",
            retryable=False,
        )

"""The one interface every tracker adapter (local, GitHub, Jira) implements.

Adapters are synchronous (the jira and PyGithub clients are): activities call them from the
worker's thread pool. `ensure_ticket` is the only way to create a ticket and it is
idempotent: the draft's idempotency key is written into the ticket and looked up first.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from domain.tickets import Ticket, TicketChange, TicketDraft

__all__ = ["Ticket", "TicketChange", "TicketDraft", "Tracker", "TrackerError"]


class TrackerError(Exception):
    """A tracker refused or failed; `retryable` says whether trying again can help, and
    `retry_after` (when known) how long to wait first: a rate limit's reset time, or a search
    index's lag after a create whose outcome is unknown."""

    def __init__(
        self, message: str, *, retryable: bool, retry_after: timedelta | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after if retryable else None


class Tracker(Protocol):
    def ensure_ticket(self, target: str, draft: TicketDraft, *, may_exist: bool = True) -> Ticket:
        """The ticket carrying draft.idempotency_key in `target`, created if there is none.
        With `may_exist=False` (a first attempt: no earlier one can have created it) an adapter
        may skip looking for it."""
        ...

    def get(self, target: str, key: str) -> Ticket: ...

    def update(self, target: str, key: str, change: TicketChange) -> Ticket: ...

    def comment(
        self, target: str, key: str, text: str, *, idempotency_key: str, may_exist: bool = True
    ) -> None:
        """Add a comment unless one with this idempotency key is already there. With
        `may_exist=False` (the first attempt: no earlier one can have written it) an adapter
        may skip looking for it."""
        ...

    def close(self, target: str, key: str) -> Ticket: ...

    def reopen(self, target: str, key: str) -> Ticket: ...

    def changed_since(self, target: str, since: datetime) -> list[Ticket]:
        """Every afteraction ticket in `target` updated at or after `since`, in few calls."""
        ...

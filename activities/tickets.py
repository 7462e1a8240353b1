"""Ticket activities: create (exactly once), comment and update tickets in any tracker.

They are synchronous, like the tracker clients they call, and run in the worker's thread
pool. A tracker's refusal fails the activity for good (TrackerRefused); an outage is
retried with the activity's retry policy (TrackerUnavailable).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, runtime_checkable

from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.tickets import CommentOnTicket, EnsureTicket, Ticket, TicketDraft, UpdateTicket
from integrations.registry import TrackerRegistry
from integrations.tracker import TrackerError
from telemetry.logs import get_logger
from telemetry.metrics import tracker_call

log = get_logger("afteraction.tickets")


@runtime_checkable
class _ReportsCreation(Protocol):
    """An adapter that can tell whether `ensure_ticket` created the ticket or found it."""

    def ensure(
        self, target: str, draft: TicketDraft, *, may_exist: bool = True
    ) -> tuple[Ticket, bool]: ...


@contextmanager
def classified() -> Iterator[None]:
    """TrackerError -> ApplicationError: TrackerRefused (final) or TrackerUnavailable (retried)."""
    try:
        yield
    except TrackerError as error:
        if error.retryable:
            # next_retry_delay replaces the retry policy's backoff for this one retry, so a
            # rate limit's reset time is honoured even past the policy's maximum interval.
            raise ApplicationError(
                str(error), type="TrackerUnavailable", next_retry_delay=error.retry_after
            ) from error
        raise ApplicationError(str(error), type="TrackerRefused", non_retryable=True) from error


class TicketActivities:
    def __init__(self, registry: TrackerRegistry) -> None:
        self._registry = registry

    @activity.defn(name="ensure_ticket")
    def ensure_ticket(self, request: EnsureTicket) -> Ticket:
        # Only a retry (after an attempt that died, or whose create's outcome was unknown) or a
        # create the workflow says may follow another (a later run, a retried refusal) can
        # find the ticket already made; the item's very first attempt skips the look-up: one
        # call saved on every item.
        may_exist = request.may_exist or activity.info().attempt > 1
        with classified():
            tracker = self._registry.for_target(request.target)
            with tracker_call(request.target, "ensure_ticket"):
                if isinstance(tracker, _ReportsCreation):
                    ticket, created = tracker.ensure(
                        request.target, request.draft, may_exist=may_exist
                    )
                    event = "ticket.created" if created else "ticket.found"
                else:
                    ticket = tracker.ensure_ticket(
                        request.target, request.draft, may_exist=may_exist
                    )
                    event = "ticket.ensured"
        log.info(
            event,
            target=request.target,
            key=ticket.ref.key,
            idempotency_key=request.draft.idempotency_key,
        )
        return ticket

    @activity.defn(name="comment_on_ticket")
    def comment_on_ticket(self, request: CommentOnTicket) -> None:
        # Only a retry can find its comment already written (by an attempt that died after
        # writing it); the first attempt skips the look-up, a call saved on every comment.
        # (A workflow reset that replays this activity from attempt 1 could write it twice.)
        with classified():
            tracker = self._registry.for_target(request.target)
            with tracker_call(request.target, "comment_on_ticket"):
                tracker.comment(
                    request.target,
                    request.key,
                    request.text,
                    idempotency_key=request.idempotency_key,
                    may_exist=activity.info().attempt > 1,
                )
        log.info(
            "ticket.commented",
            target=request.target,
            key=request.key,
            idempotency_key=request.idempotency_key,
        )

    @activity.defn(name="update_ticket")
    def update_ticket(self, request: UpdateTicket) -> Ticket:
        with classified():
            tracker = self._registry.for_target(request.target)
            with tracker_call(request.target, "update_ticket"):
                ticket = tracker.update(request.target, request.key, request.change)
        log.info(
            "ticket.updated",
            target=request.target,
            key=request.key,
            change=request.change.model_dump(mode="json", exclude_defaults=True),
        )
        return ticket

"""The metrics over the insights read model: what the CLI, the API and the pages show."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.metrics import Grouping, MetricsReport, compute
from domain.policy import format_duration, parse_duration
from store import Store
from store.facts import FactsRepository, epoch_ms

DEFAULT_SINCE = timedelta(days=90)
# A window longer than this is a typo; the read model keeps every incident, so it is no limit.
LONGEST_WINDOW = timedelta(days=3660)


class WindowError(ValueError):
    """A window the metrics cannot use; the message says what to give instead."""


def window_length(text: str) -> timedelta:
    """How far back a window reaches, as people type it (90d, 12w, 36h)."""
    try:
        length = parse_duration(text)
    except ValueError as error:
        raise WindowError(str(error)) from None
    if not isinstance(length, timedelta):
        raise WindowError(f"{text[:40]!r} is not a duration; give how far back to look, e.g. 90d")
    return length


def window(since: timedelta, *, now: datetime | None = None) -> tuple[datetime, datetime]:
    if since <= timedelta(0):
        raise WindowError("give a window that reaches back, such as 30d, 90d or 365d")
    if since > LONGEST_WINDOW:
        raise WindowError(
            f"a window of {format_duration(since)} is longer than ten years; "
            "give one such as 90d or 365d"
        )
    until = now or datetime.now(UTC)
    return until - since, until


class Insights:
    def __init__(self, store: Store) -> None:
        self._facts = FactsRepository(store)

    def metrics(
        self,
        *,
        since: timedelta = DEFAULT_SINCE,
        by: Grouping | None = None,
        now: datetime | None = None,
    ) -> MetricsReport:
        start, end = window(since, now=now)
        start_ms, end_ms = epoch_ms(start), epoch_ms(end)
        assert start_ms is not None and end_ms is not None
        incidents = self._facts.measured_incidents(start_ms, end_ms)
        items = self._facts.item_tallies(start_ms, end_ms, by)
        return compute(incidents, items, since=start, until=end, by=by)

"""The facts a weekly digest reads, and the digest they make (domain/digest.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select

from domain.digest import Digest, build
from domain.digest_runs import week_after, week_before, zone
from domain.metrics import MetricsReport, compute
from store.database import Store
from store.facts import (
    FINAL_INCIDENT_STATES,
    FINAL_ITEM_STATES,
    FactsRepository,
    epoch_ms,
    stored_columns,
)
from store.schema import ActionItemFactRow, IncidentFactRow

# The metrics' windows are closed at both ends; the digest's week ends just before its slot.
_JUST_BEFORE = timedelta(milliseconds=1)


class DigestReader:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._facts = FactsRepository(store)

    def digest(self, *, task_queue: str, slot: datetime, timezone: str) -> Digest:
        """The digest of `slot` in `timezone` (the week is a week of that zone's clock)."""
        slot = slot.astimezone(zone(timezone))
        week_start = week_before(slot)
        since = _ms(week_start)
        incident, item = IncidentFactRow, ActionItemFactRow
        # Whatever the digest may list: still open, or touched since the week began.
        incidents_query = select(incident).where(
            or_(
                incident.state.not_in(FINAL_INCIDENT_STATES),
                incident.declared_ms >= since,
                incident.closed_ms >= since,
                incident.cancelled_ms >= since,
                incident.review_submitted_ms >= since,
            )
        )
        items_query = select(item).where(
            or_(
                item.state.not_in(FINAL_ITEM_STATES),
                item.completed_ms >= since,
                item.accepted_ms >= since,
            )
        )
        with self._store.reading() as session:
            incidents = [stored_columns(row) for row in session.scalars(incidents_query)]
            items = [stored_columns(row) for row in session.scalars(items_query)]
        four_weeks_start = week_start
        for _ in range(4):
            four_weeks_start = week_before(four_weeks_start)
        return build(
            incidents,
            items,
            task_queue=task_queue,
            timezone=timezone,
            week_start=week_start,
            slot=slot,
            ahead_end=week_after(slot),
            week=self._figures(week_start, slot),
            previous_four_weeks=self._figures(four_weeks_start, week_start),
        )

    def _figures(self, start: datetime, end: datetime) -> MetricsReport:
        until = end - _JUST_BEFORE
        start_ms, until_ms = _ms(start), _ms(until)
        return compute(
            self._facts.measured_incidents(start_ms, until_ms),
            self._facts.item_tallies(start_ms, until_ms, None),
            since=start,
            until=until,
        )


def _ms(moment: datetime) -> int:
    value = epoch_ms(moment)
    assert value is not None
    return value

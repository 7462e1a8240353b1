"""The period report's evidence: every incident declared in the period, read from its workflow
with its action items, turned into domain.audit.report rows.

The incidents come from visibility, a page at a time; each incident and its items are asked
for their state (a query each, a few at a time, so a long period does not flood the worker).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from app.services.actions import ActionItems
from app.services.incident_filter import IncidentFilter
from app.services.incidents import CommandRejected, Incidents
from domain.audit.report import (
    REPORT_INCIDENTS,
    IncidentRow,
    PeriodReport,
    incident_row,
    period_report,
)
from domain.paging import PAGE_LIMIT_MAX

READS_AT_ONCE = 16


class PeriodEvidence:
    def __init__(self, incidents: Incidents, items: ActionItems) -> None:
        self._incidents = incidents
        self._items = items

    async def report(self, since: datetime, until: datetime) -> PeriodReport:
        """CommandRejected for a period that ends before it starts or holds too many."""
        if until <= since:
            raise CommandRejected(
                f"the period ends ({until.isoformat()}) before it starts ({since.isoformat()}); "
                "give --from earlier than --to"
            )
        keys = await self._keys(IncidentFilter(since=since, until=until))
        made_at = datetime.now(UTC)
        gate = asyncio.Semaphore(READS_AT_ONCE)
        rows = await asyncio.gather(*(self._row(key, made_at, gate) for key in sorted(keys)))
        return period_report(list(rows), since=since, until=until, made_at=made_at)

    async def _keys(self, filters: IncidentFilter) -> set[str]:
        keys: set[str] = set()
        cursor: str | None = None
        while True:
            page = await self._incidents.list(filters, limit=PAGE_LIMIT_MAX, cursor=cursor)
            keys.update(summary.key for summary in page.items)
            if len(keys) > REPORT_INCIDENTS:
                raise CommandRejected(
                    f"the period holds more than {REPORT_INCIDENTS:,} incidents; report on a "
                    "shorter one, e.g. a quarter at a time"
                )
            if page.next is None:
                return keys
            cursor = page.next

    async def _row(self, key: str, made_at: datetime, gate: asyncio.Semaphore) -> IncidentRow:
        async with gate:
            incident = await self._incidents.get(key)
            items = [await self._items.get(summary.id) for summary in incident.action_items]
        return incident_row(incident, items, made_at)

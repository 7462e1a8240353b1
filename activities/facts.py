"""The activities of the insights read model: the writes of one workflow's facts, and the
look for the earlier incidents a new one repeats.

Idempotent: the store keeps a row's newest revision, so a retried write (the same revision)
rewrites the same values and a late one (an older revision) changes nothing; the look only
reads.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from temporalio import activity

from activities.store_errors import store_unavailable
from domain.action_item import ActionItemState
from domain.facts import ActionItemFacts, IncidentFacts
from domain.policy import Rung
from domain.recurrence import (
    EARLIER_INCIDENTS,
    EARLIER_OPEN_ITEMS,
    EarlierIncident,
    EarlierItem,
    RepeatQuery,
    shared,
)
from domain.severity import Severity
from settings import Settings
from store import StoreError, configured_store
from store.facts import FactsRepository
from telemetry.logs import get_logger

log = get_logger("afteraction.facts")
T = TypeVar("T")


class FactsRecorder:
    """Opens the store the settings name on the first write (the worker starts without it)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._repository: FactsRepository | None = None

    @activity.defn(name="record_incident_facts")
    def record_incident_facts(self, facts: IncidentFacts) -> bool:
        written = self._call(lambda facts_: facts_.record_incident(facts, at=_now()))
        log.debug("facts.recorded", key=facts.key, revision=facts.revision, written=written)
        return written

    @activity.defn(name="record_action_item_facts")
    def record_action_item_facts(self, facts: ActionItemFacts) -> bool:
        written = self._call(lambda facts_: facts_.record_action_item(facts, at=_now()))
        log.debug("facts.recorded", item=facts.id, revision=facts.revision, written=written)
        return written

    @activity.defn(name="find_earlier_incidents")
    def find_earlier_incidents(self, query: RepeatQuery) -> list[EarlierIncident]:
        """The incidents the query's one repeats, latest first, with their open items."""
        found = self._call(lambda facts: _earlier_incidents(facts, query, _now()))
        log.info(
            "repeats.looked",
            key=query.key,
            services=query.services,
            failure_modes=query.failure_modes,
            found=[earlier.key for earlier in found],
        )
        return found

    def _call(self, use: Callable[[FactsRepository], T]) -> T:
        try:
            return use(self._facts())
        except StoreError as error:
            raise store_unavailable(error, "the read model's") from None

    def _facts(self) -> FactsRepository:
        with self._lock:
            if self._repository is None:
                self._repository = FactsRepository(configured_store(self._settings))
            return self._repository


def _now() -> datetime:
    return datetime.now(UTC)


def _earlier_incidents(
    facts: FactsRepository, query: RepeatQuery, now: datetime
) -> list[EarlierIncident]:
    since_ms, until_ms = (round(moment.timestamp() * 1000) for moment in (query.since, query.until))
    skipped = {query.key, *query.exclude}
    matches: list[tuple[Any, tuple[list[str], list[str]]]] = []
    for row in facts.declared_between(since_ms, until_ms):
        if row.key in skipped:
            continue
        same = shared(json.loads(row.services), json.loads(row.failure_modes), query)
        if any(same):
            matches.append((row, same))
        if len(matches) == EARLIER_INCIDENTS:
            break
    items = _open_items(facts.open_items_of([row.key for row, _ in matches]), now)
    return [
        EarlierIncident(
            key=row.key,
            title=row.title,
            severity=Severity(row.severity),
            declared_at=_moment(row.declared_ms),
            services=json.loads(row.services)[:EARLIER_INCIDENTS],
            failure_modes=json.loads(row.failure_modes)[:EARLIER_INCIDENTS],
            same_services=same_services,
            same_failure_modes=same_failure_modes,
            action_items=row.action_items,
            open_items=items.get(row.key, [])[:EARLIER_OPEN_ITEMS],
        )
        for row, (same_services, same_failure_modes) in matches
    ]


def _open_items(rows: Sequence[Any], now: datetime) -> dict[str, list[EarlierItem]]:
    by_incident: dict[str, list[EarlierItem]] = {}
    for row in rows:
        due_at = _moment(row.due_ms)
        by_incident.setdefault(row.incident_key, []).append(
            EarlierItem(
                id=row.id,
                number=row.number,
                title=row.title,
                owning_team=row.owning_team,
                state=ActionItemState(row.state),
                due_at=due_at,
                rung=Rung(row.rung) if row.rung is not None else None,
                overdue=due_at < now,
            )
        )
    return by_incident


def _moment(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)

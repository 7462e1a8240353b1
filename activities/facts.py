"""The activities that keep the insights read model: each writes one workflow's facts.

Idempotent: the store keeps a row's newest revision, so a retried write (the same revision)
rewrites the same values and a late one (an older revision) changes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.facts import ActionItemFacts, IncidentFacts
from settings import Settings
from store import StoreError, configured_store
from store.facts import FactsRepository
from telemetry.logs import get_logger

log = get_logger("afteraction.facts")


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

    def _call(self, write: Callable[[FactsRepository], bool]) -> bool:
        try:
            return write(self._facts())
        except StoreError as error:
            raise ApplicationError(
                f"the read model's database failed: {error}",
                type="StoreUnavailable",
                non_retryable=not error.retryable,
            ) from None

    def _facts(self) -> FactsRepository:
        with self._lock:
            if self._repository is None:
                self._repository = FactsRepository(configured_store(self._settings))
            return self._repository


def _now() -> datetime:
    return datetime.now(UTC)

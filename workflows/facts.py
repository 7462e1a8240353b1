"""FactsWriter: a workflow's facts go to the insights read model after each transition.

The write is a local activity (one marker in the history, no extra workflow task), run beside
the workflow's loop like its notifications, one at a time: each write takes the facts as they
are when it starts, so a burst of transitions costs one or two writes, and skips a write when
nothing the facts hold has changed. The write number (`facts_written`, kept in the state so it
rises across continue-as-new) is the revision the store keeps: a retry writes the same row
again, and a late write never replaces a newer one.

Histories recorded before this wrote no facts, so it is behind a patch; their incidents get
their facts from `afteraction insights rebuild`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.common import Background

with workflow.unsafe.imports_passed_through():
    from domain.facts import ActionItemFacts, IncidentFacts

PATCH = "record-insight-facts"
# A write is one upsert; the database may be busy (SQLite waits up to 5 s for another writer).
WRITE_TIMEOUT = timedelta(seconds=15)
# Bounded: a store that stays down must not hold up the incident's continue-as-new or its end.
# A failed write leaves the row behind until the next transition writes the facts again, and
# `insights check` lists it meanwhile.
WRITE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=10,
)


class _Counted(Protocol):
    facts_written: int


Facts = IncidentFacts | ActionItemFacts


class FactsWriter:
    def __init__(
        self,
        background: Background,
        *,
        activity: str,
        state: Callable[[], _Counted],
        derive: Callable[[int], Facts],
        enabled: bool,
    ) -> None:
        self._background = background
        self._activity = activity
        self._state = state
        self._derive = derive
        self._enabled = enabled
        self._pending = False
        self._writing = False
        self._written: Facts | None = None

    def changed(self) -> None:
        """The state may have changed: write its facts if they did (beside the loop)."""
        if not self._enabled or not workflow.patched(PATCH):
            return
        self._pending = True
        if not self._writing:
            self._writing = True
            self._background.spawn(self._write_latest())

    async def _write_latest(self) -> None:
        try:
            while self._pending:
                self._pending = False
                state = self._state()
                facts = self._derive(state.facts_written + 1)
                if self._written is not None and _same(facts, self._written):
                    continue
                state.facts_written += 1
                try:
                    await workflow.execute_local_activity(
                        self._activity,
                        facts,
                        start_to_close_timeout=WRITE_TIMEOUT,
                        retry_policy=WRITE_RETRY,
                    )
                except ActivityError as error:
                    workflow.logger.error(
                        "facts %s not written to the read model: %s",
                        facts.revision,
                        error.cause or error,
                    )
                    continue
                self._written = facts
        finally:
            self._writing = False


def _same(facts: Facts, written: Facts) -> bool:
    if isinstance(facts, IncidentFacts) and isinstance(written, IncidentFacts):
        return facts.same_facts(written)
    if isinstance(facts, ActionItemFacts) and isinstance(written, ActionItemFacts):
        return facts.same_facts(written)
    return False

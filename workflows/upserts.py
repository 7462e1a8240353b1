"""Search-attribute writes that skip a write when nothing indexed has changed.

Every upsert is a write to the server's visibility store; the lifecycle benchmark showed
them as the largest cost a workflow adds over Temporal's floor. Histories recorded before
this existed upserted on every call, so the skip is behind a patch and they still replay.
"""

from __future__ import annotations

from collections.abc import Sequence

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

PATCH = "upsert-only-changed-search-attributes"


class SearchAttributeWriter:
    def __init__(self) -> None:
        self._last: dict[str, object] | None = None

    def upsert(self, updates: Sequence[SearchAttributeUpdate]) -> None:
        if workflow.patched(PATCH):
            values = {update.key.name: update.value for update in updates}
            if values == self._last:
                return
            self._last = values
        workflow.upsert_search_attributes(updates)

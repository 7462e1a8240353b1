"""Facilitator rotation: propose the person from the pool who facilitated least recently."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity
from temporalio.client import Client

from domain import search_attributes as sa

_NEVER = datetime.min.replace(tzinfo=UTC)


class FacilitatorRotation:
    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn(name="propose_facilitator")
    async def propose_facilitator(self, pool: list[str]) -> str:
        """Someone who never facilitated comes first (in pool order); then the least recent.

        Reads visibility: one query per person in the pool, newest incident first.
        """
        if not pool:
            raise ValueError("the facilitator pool is empty")
        last: dict[str, datetime] = {}
        for person in pool:
            query = (
                f"WorkflowType = 'IncidentWorkflow' AND {sa.FACILITATOR.name} = {sa.quoted(person)}"
            )
            last[person] = _NEVER
            async for execution in self._client.list_workflows(query, limit=1):
                last[person] = execution.start_time
        return min(pool, key=lambda person: (last[person], pool.index(person)))

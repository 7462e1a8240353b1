"""When a review is scheduled without a facilitator, the pool's least recent one is proposed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from domain import search_attributes as sa
from domain.commands import Transition
from domain.review import ScheduleReview
from tests.helpers import declare, eventually
from tests.policies import slow_policy
from workflows.incident import IncidentWorkflow


async def test_rotation_proposes_who_never_facilitated_then_the_least_recent(
    client: Client, worker: Worker, task_queue: str
) -> None:
    suffix = uuid.uuid4().hex[:6]
    pool = [f"ann-{suffix}", f"ben-{suffix}", f"cat-{suffix}"]
    policy = slow_policy().model_copy(update={"facilitators": pool})

    async def review_one() -> str:
        handle = await declare(client, task_queue, policy)
        await handle.execute_update(IncidentWorkflow.resolve, Transition())
        await handle.execute_update(
            IncidentWorkflow.schedule_review,
            ScheduleReview(at=datetime.now(UTC) + timedelta(days=1)),
        )
        incident = await handle.query(IncidentWorkflow.state)
        assert incident.review_schedule is not None
        assert incident.review_schedule.facilitator_proposed
        chosen = incident.review_schedule.facilitator
        assert chosen is not None
        # The next proposal reads visibility, which is eventually consistent.
        query = f"{sa.FACILITATOR.name} = '{chosen}'"
        await eventually(lambda: client.count_workflows(query), lambda counted: counted.count >= 1)
        return chosen

    chosen = [await review_one() for _ in range(4)]
    assert chosen == [pool[0], pool[1], pool[2], pool[0]]

"""The insights read model on the dev server: the workflows write their facts at each
transition, `check` finds the rows equal to the workflows, notices a deleted row, and
`rebuild` restores it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from temporalio.client import Client
from temporalio.worker import Worker

from app.services.read_model import ReadModel
from domain.action_item import (
    ActionItemState,
    TicketStatus,
    VerifyItem,
    action_workflow_id,
)
from domain.commands import Acknowledge, Transition
from domain.functions import ReviewFunction
from domain.incident import IncidentState
from domain.review import ScheduleReview, SubmitReview
from settings import Settings
from store import configured_store
from store.facts import FactsRepository
from store.schema import IncidentFactRow
from tests.cli import Cli, cli_env
from tests.helpers import declare, eventually
from tests.policies import slow_policy
from tests.reviews import full_review, item_spec, item_state, local_route, signal_ticket
from workflows.incident import IncidentWorkflow


async def test_facts_follow_the_workflows_and_check_notices_a_deleted_row(
    client: Client, worker: Worker, task_queue: str, settings: Settings
) -> None:
    started = datetime.now(UTC) - timedelta(minutes=30)
    handle = await declare(
        client, task_queue, slow_policy(), started_at=started, teams=["payments"]
    )
    await handle.execute_update(IncidentWorkflow.acknowledge, Acknowledge(commander="bob"))
    await handle.execute_update(IncidentWorkflow.resolve, Transition())
    await handle.execute_update(
        IncidentWorkflow.schedule_review,
        ScheduleReview(at=datetime.now(UTC) + timedelta(days=1), facilitator="fran"),
    )
    # Held without operations, which SEV2 requires: waived, and a fact the digest lists.
    review = full_review(item_spec("payments", "Cap the pool size"))
    review = review.model_copy(
        update={
            "participants": [
                p for p in review.participants if p.function is not ReviewFunction.OPERATIONS
            ],
            "missing_function_waiver": "operations were on the other incident",
        }
    )
    await handle.execute_update(
        IncidentWorkflow.submit_review,
        SubmitReview(review=review, routes={"payments": local_route("payments")}, by="fran"),
    )
    incident = await handle.query(IncidentWorkflow.state)
    item_id = action_workflow_id(incident.key, 1)
    item = await eventually(
        lambda: item_state(client, item_id), lambda i: i.state is ActionItemState.OPEN
    )
    assert item.ticket is not None
    await signal_ticket(client, item_id, item.ticket.key, TicketStatus.CLOSED)
    await eventually(
        lambda: item_state(client, item_id), lambda i: i.state is ActionItemState.VERIFYING
    )
    await client.get_workflow_handle(item_id).execute_update(
        "verify", VerifyItem(evidence="https://grafana/d/pool", by="carol")
    )
    closed = await handle.result()
    assert closed.state is IncidentState.CLOSED

    store = configured_store(settings)
    facts = FactsRepository(store)
    read_model = ReadModel(client, store, task_queue=task_queue)
    report = await eventually(read_model.check, lambda r: r.workflows == 2)
    assert report.differences == []
    row = facts.incidents([incident.key])[incident.key]
    assert row["state"] == "closed"
    assert row["started_ms"] == round(started.timestamp() * 1000)
    assert (row["missing_functions"], row["missing_functions_waived"]) == ('["operations"]', True)
    item_row = facts.action_items()[f"{incident.key}-1"]
    assert (item_row["state"], item_row["owner"], item_row["approver"]) == (
        "done",
        "payments-oncall",
        None,
    )

    facts.forget_incident(incident.key)
    report = await read_model.check()
    assert {(d.subject, d.kind) for d in report.differences} == {
        (incident.key, "missing"),
        (f"{incident.key}-1", "missing"),
    }
    # The CLI says the same, and exits non-zero until the rows are rebuilt.
    address = client.service_client.config.target_host
    cli = Cli(
        home=settings.home,
        env={**cli_env(settings.home, address), "AFTERACTION_TASK_QUEUE": task_queue},
    )
    checked = await cli("insights", "check")
    assert checked.returncode == 3, checked.stderr
    assert f"{incident.key}-1" in checked.stdout and "missing" in checked.stdout
    rebuilt = await cli("insights", "rebuild", "--json")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads(rebuilt.stdout)["written"] == 2
    checked = await cli("insights", "check")
    assert checked.returncode == 0 and "no difference" in checked.stdout, checked.stdout
    assert facts.incidents([incident.key])[incident.key] == row

    # A row that says something the workflow does not is listed fact by fact.
    with store.writing() as session:
        session.execute(
            update(IncidentFactRow).where(IncidentFactRow.key == incident.key).values(state="open")
        )
    (difference,) = (await read_model.check()).differences
    assert difference.kind == "different"
    assert difference.fields == {"state": ("closed", "open")}

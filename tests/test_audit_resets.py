"""A reset incident's bundle: the run it was reset from and the run it was reset to, the reset
in the record (who, why), the commands a reset reapplied with their sender, each command once
(the reset run's copy of the earlier history is not read twice), and both histories replay."""

from __future__ import annotations

import csv
import io
import uuid

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.worker import Worker

from app.formats.audit_histories import parse_path
from app.services.audit import export_bundle, verify_bundle
from domain.commands import AddTimelineEvent, Cancel
from tests.helpers import declare
from tests.policies import slow_policy
from workflows.incident import IncidentWorkflow


async def test_a_reset_incident_exports_both_runs_and_the_reset_once(
    client: Client, worker: Worker, task_queue: str
) -> None:
    handle = await declare(client, task_queue, slow_policy())
    await handle.execute_update(IncidentWorkflow.add_timeline_event, AddTimelineEvent(text="one"))
    base = await handle.describe()
    history = await handle.fetch_history()
    first_task = next(
        event.event_id
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    )
    # Back to the declaration's first workflow task: "one" stays in the reset-from run only.
    reset = await client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=handle.id, run_id=base.run_id),
            reason="audit drill",
            workflow_task_finish_event_id=first_task,
            request_id=str(uuid.uuid4()),
        )
    )
    after = client.get_workflow_handle(handle.id, run_id=reset.run_id)
    await after.execute_update(IncidentWorkflow.add_timeline_event, AddTimelineEvent(text="two"))
    await after.execute_update(IncidentWorkflow.cancel, Cancel(reason="drill over"))
    await after.result()

    key = (await after.query(IncidentWorkflow.state)).key
    files = await export_bundle(client, key)
    runs = {where[1] for where in map(parse_path, files) if where is not None}
    assert runs == {base.run_id, reset.run_id}
    rows = list(csv.DictReader(io.StringIO(files["record/commands.csv"].decode())))
    assert [(row["command"], row["run_id"], row["input"]) for row in rows] == [
        ("declare", base.run_id, rows[0]["input"]),
        ("add_timeline_event", base.run_id, '{"at":null,"by":null,"text":"one"}'),
        # The reset ends the run it resets, and reapplies the updates after its point.
        ("terminate", base.run_id, '"audit drill"'),
        ("reset", reset.run_id, '"audit drill"'),
        ("add_timeline_event", reset.run_id, '{"at":null,"by":null,"text":"one"}'),
        ("add_timeline_event", reset.run_id, '{"at":null,"by":null,"text":"two"}'),
        ("cancel", reset.run_id, '{"by":null,"reason":"drill over"}'),
    ]
    assert rows[4]["actor"] == rows[1]["actor"], "a reapplied update keeps its sender"
    verdict = await verify_bundle(files)
    assert verdict.problems == [] and verdict.replayed == 2

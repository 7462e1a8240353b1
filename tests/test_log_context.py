"""Inside an activity, every log event (a tracker library's too) names the incident."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import structlog
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

from activities.log_context import LogContextInterceptor
from telemetry.logs import configure_logging


@activity.defn(name="probe_logging")
def probe_logging() -> None:
    # A synchronous activity in the thread pool, logging through the standard library,
    # as the jira and PyGithub clients do.
    logging.getLogger("jira").warning("rate limited")


@workflow.defn(name="ProbeLogging", sandboxed=False)
class ProbeLogging:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(probe_logging, start_to_close_timeout=timedelta(seconds=10))


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """The product's JSON logging, written to a buffer instead of stdout."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    structlog.reset_defaults()
    configure_logging(log_format="json")
    buffer = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    yield buffer
    structlog.reset_defaults()
    root.handlers, root.level = handlers, level


async def test_activity_log_events_carry_the_incident_key_and_workflow_id(
    client: Client, json_logs: io.StringIO
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    task_queue = f"tq-{uuid.uuid4()}"
    workflow_id = f"incident/INC-LOG{uuid.uuid4().hex[:6].upper()}/action/3"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[ProbeLogging],
        activities=[probe_logging],
        activity_executor=ThreadPoolExecutor(2),
        interceptors=[LogContextInterceptor()],
    ):
        await client.execute_workflow(ProbeLogging.run, id=workflow_id, task_queue=task_queue)
    events = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    probe = [event for event in events if event.get("event") == "rate limited"]
    assert len(probe) == 1, events
    assert probe[0]["workflow_id"] == workflow_id
    assert probe[0]["incident_key"] == workflow_id.split("/")[1]
    assert probe[0]["activity_type"] == "probe_logging"

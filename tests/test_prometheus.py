"""Prometheus metrics: the API's GET /metrics (behind a read token) parses with Prometheus'
text parser and moves when an action item goes overdue; webhook deliveries, tracker calls and
reconciler runs are counted; the worker and the Temporal SDK serve theirs over HTTP. All
against the session's real dev server, a real worker and the real API app."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from app.http.api import create_app
from domain.action_item import action_workflow_id
from domain.identity import Role
from domain.policy import ActionItemPolicy, Policy
from domain.reconcile import ReconcileRequest, ReconcileResult
from integrations.local import TARGET as LOCAL_TARGET
from integrations.local import LocalTracker
from integrations.temporal_client import connect
from integrations.ticket_markers import marker
from integrations.webhooks import GITHUB_SIGNATURE
from settings import Settings, SettingsError, load_settings
from tests.auth import bearer, token_secret
from tests.helpers import declare, eventually, new_key
from tests.policies import slow_policy
from tests.reviews import item_spec, item_state, standalone_item
from tests.stack import free_port
from tests.test_api_reviews import resolved_incident, review_json, running_api
from worker import WorkerMetricsError, build_worker, sdk_runtime, serve_metrics
from workflows.action_item import ActionItemWorkflow
from workflows.reconcile import TicketReconcilerWorkflow

CONTRACTS = Path(__file__).parent / "contracts" / "github" / "webhooks"
GITHUB_SECRET = "gh-metrics-secret"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parsed(text: str) -> Samples:
    """Every sample of an exposition, read by prometheus_client's parser of the text format."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(url: str, headers: dict[str, str] | None = None) -> Samples:
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(url, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return parsed(answer.text)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def overdue_soon_policy() -> Policy:
    """Short-term items due 6s after the review (time to see them open and not yet overdue),
    then the ladder from the owner at once; incident deadlines an hour away."""
    slow = slow_policy()
    items = ActionItemPolicy.model_validate(
        {
            "due_within": {"short_term_mitigation": "6s", "long_term_systemic": "1h"},
            "remind_before": ["1s"],
            "stall_after": "1h",
            "escalation": {
                "owner": "0s",
                "team_lead": "1h",
                "manager": "2h",
                "leadership": "3h",
                "repeat_every": "1h",
            },
        }
    )
    severities = {
        severity: rules.model_copy(update={"action_items": items})
        for severity, rules in slow.severities.items()
    }
    return slow.model_copy(update={"severities": severities})


# ---- the API's /metrics -------------------------------------------------------------------


async def test_metrics_parse_and_the_overdue_gauge_moves_when_an_item_goes_overdue(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with running_api(dev_env, tmp_path, policy=overdue_soon_policy()) as api:
        viewer = bearer(token_secret(api.settings, role=Role.VIEWER, name="prometheus"))

        async def metrics() -> Samples:
            answer = await api.http.get("/metrics", headers=viewer)
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"].startswith("text/plain; version=")
            return parsed(answer.text)

        before = await metrics()
        assert value(before, "afteraction_read_model_up") == 1
        assert value(before, "afteraction_action_items_open", team="payments") == 0

        key = await resolved_incident(api)
        review = review_json(item_spec("payments", "Cap the pool size"))
        status = await api.ok("POST", f"/api/incidents/{key}/review", json=review)
        assert status["state"] == "tracking"

        # The item's facts reach the read model when its workflow starts: open, not yet due.
        opened = await eventually(
            metrics, lambda m: value(m, "afteraction_action_items_open", team="payments") == 1
        )
        assert value(opened, "afteraction_action_items_overdue", team="payments") == 0
        assert value(opened, "afteraction_incidents_open", severity="SEV2", state="tracking") == 1
        assert (
            value(opened, "afteraction_escalations_total", subject="action_item", rung="owner") == 0
        )

        # Due 6s after the review: the gauge moves at the scrape after the due date passes.
        overdue = await eventually(
            metrics,
            lambda m: value(m, "afteraction_action_items_overdue", team="payments") == 1,
            timeout=30,
        )
        assert value(overdue, "afteraction_action_items_open", team="payments") == 1
        # The overdue item walks the ladder: its owner's rung fires at once.
        await eventually(
            metrics,
            lambda m: (
                value(m, "afteraction_escalations_total", subject="action_item", rung="owner") >= 1
            ),
            timeout=30,
        )


def offline_app(tmp_path: Path, **fields: Any) -> Any:
    """The API with no Temporal behind it (AFTERACTION_TEMPORAL_ADDRESS names a closed port)."""
    settings = Settings(home=tmp_path, temporal_address=f"127.0.0.1:{free_port()}", **fields)
    return settings, create_app(settings)


@pytest.fixture
async def offline(tmp_path: Path) -> AsyncIterator[tuple[Settings, httpx.AsyncClient]]:
    settings, app = offline_app(tmp_path, github_webhook_secret=GITHUB_SECRET)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://afteraction") as http:
        yield settings, http


async def test_anonymous_and_unknown_callers_get_401_and_a_viewer_reads_them(
    offline: tuple[Settings, httpx.AsyncClient],
) -> None:
    settings, http = offline
    anonymous = await http.get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert "afteraction_" not in anonymous.text
    unknown = await http.get("/metrics", headers=bearer("aft_not-a-token"))
    assert unknown.status_code == 401
    for role in Role:  # every role reads; none is refused
        secret = token_secret(settings, role=role)
        answer = await http.get("/metrics", headers=bearer(secret))
        assert answer.status_code == 200, (role, answer.text)
        assert value(parsed(answer.text), "afteraction_read_model_up") == 1


async def test_webhook_deliveries_are_counted_by_tracker_and_result(
    offline: tuple[Settings, httpx.AsyncClient],
) -> None:
    settings, http = offline
    headers = bearer(token_secret(settings, role=Role.VIEWER))

    async def metrics() -> Samples:
        answer = await http.get("/metrics", headers=headers)
        assert answer.status_code == 200
        return parsed(answer.text)

    async def deliver(body: bytes, event: str, sign_with: str = GITHUB_SECRET) -> int:
        sent = {
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": str(uuid.uuid4()),
            GITHUB_SIGNATURE: signature(sign_with, body),
            "Content-Type": "application/json",
        }
        return (await http.post("/webhooks/github", content=body, headers=sent)).status_code

    name = "afteraction_webhook_deliveries_total"
    before = await metrics()
    ping = (CONTRACTS / "ping.json").read_bytes()
    assert await deliver(ping, "ping") == 200
    opened = (CONTRACTS / "issues.opened.json").read_bytes()  # not afteraction's ticket
    assert await deliver(opened, "issues") == 204
    assert await deliver(opened, "issues", sign_with="wrong") == 401
    assert await deliver(b"{not json", "issues") == 400
    # A ticket of an item whose workflow cannot be told: Temporal is away (503).
    routed = json.loads((CONTRACTS / "issues.closed.json").read_bytes())
    routed["issue"]["body"] = f"Cap it.\n\n{marker(action_workflow_id('INC-X', 1))}\n"
    assert await deliver(json.dumps(routed).encode(), "issues") == 503
    after = await metrics()
    for result in ("ping", "ignored", "bad_signature", "malformed", "unavailable"):
        moved = value(after, name, tracker="github", result=result) - value(
            before, name, tracker="github", result=result
        )
        assert moved == 1, (result, moved)

    # Jira's secret is not set here: 503, counted as not_configured.
    jira = await http.post("/webhooks/jira", content=b"{}", headers={"X-Hub-Signature": "x"})
    assert jira.status_code == 503
    final = await metrics()
    assert (
        value(final, name, tracker="jira", result="not_configured")
        == value(after, name, tracker="jira", result="not_configured") + 1
    )


# ---- the worker's metrics -----------------------------------------------------------------


async def test_the_worker_serves_tracker_calls_and_reconciler_runs(
    client: Client, tmp_path: Path
) -> None:
    task_queue = f"tq-{uuid.uuid4()}"
    address = f"127.0.0.1:{free_port()}"
    settings = Settings(home=tmp_path, worker_metrics_address=address)
    server = serve_metrics(settings)
    assert server is not None
    url = f"http://{address}/metrics"
    try:
        with pytest.raises(WorkerMetricsError, match="AFTERACTION_WORKER_METRICS_ADDRESS"):
            serve_metrics(settings)  # the address is taken: a clear error, not a traceback
        before = await scrape(url)
        key = new_key()
        item_id = action_workflow_id(key, 1)
        async with build_worker(client, settings, task_queue=task_queue):
            item = await client.start_workflow(
                ActionItemWorkflow.run,
                standalone_item(key, history_limit=1000),
                id=item_id,
                task_queue=task_queue,
            )
            opened = await eventually(
                lambda: item_state(client, item_id), lambda found: found.ticket is not None
            )
            assert opened.ticket is not None
            created = await scrape(url)
            calls = "afteraction_tracker_calls_total"
            local_ensure = {"tracker": "local", "operation": "ensure_ticket"}
            assert value(created, calls, **local_ensure) >= value(before, calls, **local_ensure) + 1
            duration = "afteraction_tracker_call_duration_seconds_count"
            assert value(created, duration, **local_ensure) > value(
                before, duration, **local_ensure
            )

            # Closed in the tracker with no webhook: the reconciler finds it, and says how late.
            LocalTracker.configured(settings).close(LOCAL_TARGET, opened.ticket.key)

            async def reconcile() -> ReconcileResult:
                return await client.execute_workflow(
                    TicketReconcilerWorkflow.run,
                    ReconcileRequest(),
                    id=f"reconcile-{uuid.uuid4()}",
                    task_queue=task_queue,
                )

            # Visibility lists the new item eventually: run until a run signals it.
            await eventually(reconcile, lambda result: result.signalled == 1, timeout=30)
            await item.terminate("done")
        after = await scrape(url)
        runs = "afteraction_reconciler_runs_total"
        assert value(after, runs, tracker="local", result="ok") > value(
            before, runs, tracker="local", result="ok"
        )
        lag = "afteraction_reconciler_lag_seconds_count"
        assert value(after, lag, tracker="local") >= value(before, lag, tracker="local") + 1
        last_run = value(after, "afteraction_reconciler_last_run_timestamp_seconds")
        assert last_run >= datetime.now(UTC).timestamp() - 60
        read = {"tracker": "local", "operation": "changed_since"}
        assert value(after, calls, **read) > value(before, calls, **read)
    finally:
        server.shutdown()
        server.server_close()


async def test_the_temporal_sdk_serves_workflow_task_latency(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    address = f"127.0.0.1:{free_port()}"
    settings = Settings(
        home=tmp_path,
        temporal_address=dev_env.client.service_client.config.target_host,
        temporal_metrics_address=address,
    )
    runtime = sdk_runtime(settings)
    assert runtime is not None
    client = await connect(settings, runtime=runtime)
    task_queue = f"tq-{uuid.uuid4()}"
    async with build_worker(client, settings, task_queue=task_queue):
        handle = await declare(client, task_queue, slow_policy())
        await handle.query("state")  # its first workflow task has run
        latency = "temporal_workflow_task_execution_latency_seconds_count"
        samples = await eventually(
            lambda: scrape(f"http://{address}/metrics"),
            lambda found: any(name == latency and v > 0 for (name, _), v in found.items()),
        )
        await handle.terminate("done")
    names = {name for name, _ in samples}
    assert "temporal_workflow_task_schedule_to_start_latency_seconds_bucket" in names
    with pytest.raises(WorkerMetricsError, match="AFTERACTION_TEMPORAL_METRICS_ADDRESS"):
        sdk_runtime(settings)  # its port is the first runtime's


def test_metrics_addresses_are_host_port_and_distinct() -> None:
    assert load_settings(worker_metrics_address="0.0.0.0:9101").worker_metrics_address == (
        "0.0.0.0:9101"
    )
    with pytest.raises(SettingsError, match="AFTERACTION_WORKER_METRICS_ADDRESS is invalid"):
        load_settings(worker_metrics_address="9101")
    with pytest.raises(SettingsError, match="each needs its own port"):
        load_settings(
            worker_metrics_address="127.0.0.1:9101", temporal_metrics_address="127.0.0.1:9101"
        )

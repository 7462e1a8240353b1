"""Entry point: one Temporal worker for every afteraction workflow and activity."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from wsgiref.simple_server import WSGIServer

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import Worker

from activities.digest import DigestActivities
from activities.facilitators import FacilitatorRotation
from activities.facts import FactsRecorder
from activities.log_context import LogContextInterceptor
from activities.notify import Notifier
from activities.reconcile import TicketReconciler
from activities.tickets import TicketActivities
from domain.deployment import DeploymentConfig, policy_source, routing_source
from domain.policy import load_policy
from domain.routing import load_routing
from integrations.registry import TrackerRegistry
from integrations.temporal_client import connect
from integrations.temporal_schedules import ensure_digest_schedule, ensure_reconcile_schedule
from settings import Settings, SettingsError, load_settings
from store import Store, StoreError, configured_store
from store.deployment_config import DeploymentConfigs
from telemetry.logs import configure_logging, get_logger
from telemetry.metrics import serve_worker_metrics, temporal_runtime
from workflows.action_item import ActionItemWorkflow
from workflows.digest import WeeklyDigestWorkflow
from workflows.incident import IncidentWorkflow
from workflows.reconcile import TicketReconcilerWorkflow

WORKFLOWS = [IncidentWorkflow, ActionItemWorkflow, TicketReconcilerWorkflow, WeeklyDigestWorkflow]

log = get_logger("afteraction.worker")


def build_worker(client: Client, settings: Settings, *, task_queue: str | None = None) -> Worker:
    notifier = Notifier(settings.chat_webhook_url)
    registry = TrackerRegistry(settings)
    tickets = TicketActivities(registry)
    reconciler = TicketReconciler(client, registry)
    facts = FactsRecorder(settings)
    digest = DigestActivities(settings, notifier)
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=WORKFLOWS,
        activities=[
            FacilitatorRotation(client).propose_facilitator,
            notifier.notify_escalation,
            tickets.ensure_ticket,
            tickets.comment_on_ticket,
            tickets.update_ticket,
            reconciler.list_targets,
            reconciler.find_targets,
            reconciler.reconcile_target,
            facts.record_incident_facts,
            facts.record_action_item_facts,
            facts.find_earlier_incidents,
            digest.plan_digest,
            digest.send_digest_email,
            digest.send_digest_chat,
        ],
        # The tracker libraries are synchronous; their activities will run in this pool.
        activity_executor=ThreadPoolExecutor(max_workers=16),
        interceptors=[LogContextInterceptor()],
    )


class WorkerMetricsError(Exception):
    """A metrics address is taken or not an address of this host."""


def serve_metrics(settings: Settings) -> WSGIServer | None:
    """Serve the worker's Prometheus metrics where the settings say, from a daemon thread; the
    server, or None when they are not served (WorkerMetricsError: the address cannot be
    bound)."""
    address = settings.worker_metrics_address
    if address is None:
        return None
    try:
        return serve_worker_metrics(address)[0]
    except OSError as error:
        raise WorkerMetricsError(
            f"cannot serve the worker's metrics on {address} ({error.strerror or error}); "
            "choose another AFTERACTION_WORKER_METRICS_ADDRESS, or unset it"
        ) from None


def sdk_runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime that serves the SDK's metrics where the settings say, or None (the
    SDK's default runtime, without them)."""
    address = settings.temporal_metrics_address
    if address is None:
        return None
    try:
        return temporal_runtime(address)
    except ValueError as error:  # the SDK's exporter could not bind
        raise WorkerMetricsError(
            f"cannot serve the Temporal SDK's metrics on {address} ({error}); choose another "
            "AFTERACTION_TEMPORAL_METRICS_ADDRESS, or unset it"
        ) from None


def publish_deployment(settings: Settings, store: Store) -> DeploymentConfig:
    """Load the policy and routing files (PolicyFileError, RoutingError) and publish them as
    what this deployment runs its incidents under: every client reads them from the store."""
    config = DeploymentConfig(
        task_queue=settings.task_queue,
        policy=load_policy(settings.policy_file),
        routing=load_routing(settings.routing_file),
        policy_source=policy_source(settings.policy_file),
        routing_source=routing_source(settings.routing_file),
        published_at=datetime.now(UTC),
        published_by=f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}",
    )
    DeploymentConfigs(store).publish(config)
    return config


async def run_worker(settings: Settings) -> None:
    # Migrate (or refuse a newer database) before taking any task.
    store = await asyncio.to_thread(configured_store, settings)
    published = await asyncio.to_thread(publish_deployment, settings, store)
    serve_metrics(settings)
    client = await connect(settings, runtime=sdk_runtime(settings))
    worker = build_worker(client, settings)
    schedule = await ensure_reconcile_schedule(
        client, settings.task_queue, settings.reconcile_every
    )
    sweep = await ensure_reconcile_schedule(
        client, settings.task_queue, settings.reconcile_sweep_every, full_sweep=True
    )
    digest_policy = published.policy.digest
    digest_zone = digest_policy.effective_timezone(settings.timezone)
    digest = await ensure_digest_schedule(client, settings.task_queue, digest_policy, digest_zone)
    log.info(
        "worker.started",
        temporal_address=settings.effective_temporal_address,
        namespace=settings.namespace,
        task_queue=settings.task_queue,
        reconcile_schedule=schedule,
        reconcile_every=str(settings.reconcile_every),
        sweep_schedule=sweep,
        sweep_every=str(settings.reconcile_sweep_every),
        digest_schedule=digest,
        digest_at=f"{digest_policy.weekday.value} {digest_policy.time} {digest_zone}",
        database=store.url,
        metrics=settings.worker_metrics_address,
        temporal_metrics=settings.temporal_metrics_address,
        policy=published.policy_source,
        routing=published.routing_source,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with worker:
        await stop.wait()
        log.info("worker.stopping")


def main() -> None:
    try:
        settings = load_settings()
    except SettingsError as error:
        raise SystemExit(str(error)) from None
    configure_logging(log_format=settings.log_format, level=settings.log_level)
    with contextlib.suppress(KeyboardInterrupt):
        try:
            asyncio.run(run_worker(settings))
        except (StoreError, WorkerMetricsError) as error:
            raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()

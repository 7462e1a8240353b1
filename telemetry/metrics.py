"""The process's Prometheus metrics (prometheus-client), in Prometheus' conventions: counters
end in `_total`, durations are histograms in seconds, timestamps are Unix seconds.

Counted where they happen, into one of this module's two registries, so that each process
shows only what it counts:

* API_REGISTRY, the API's: webhook deliveries (app/http/webhooks.py);
* WORKER_REGISTRY, the worker's: tracker calls and their errors (activities/tickets.py,
  activities/reconcile.py) and the reconciler's runs and lag (activities/reconcile.py).

Both carry the standard process_* and python_* series.

The read model's gauges (open incidents, open and overdue action items, escalations) are not
counted here: `FactsCollector` reads them from the store at scrape time, in the API process
(app/http/api.py serves both at GET /metrics). The worker serves its registry on
AFTERACTION_WORKER_METRICS_ADDRESS, and the Temporal SDK its own metrics (workflow-task
latency and the like) on AFTERACTION_TEMPORAL_METRICS_ADDRESS (`temporal_runtime`).

Every name and label is listed in the README's "Metrics" section; label values are bounded:
trackers are `local`, `github`, `jira` (anything else is `other`), operations a fixed list.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from threading import Thread
from typing import Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

NAMESPACE = "afteraction"
TRACKERS = ("local", "github", "jira")

# No `_created` series beside every counter and histogram: Prometheus does not need them, and
# in the text format they are separate gauges that only add to every scrape.
disable_created_metrics()
API_REGISTRY = CollectorRegistry(auto_describe=True)
WORKER_REGISTRY = CollectorRegistry(auto_describe=True)
# The standard process_*, python_info and python_gc_* series, as the default registry has them.
for _registry in (API_REGISTRY, WORKER_REGISTRY):
    for _standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        _registry.register(_standard)

WEBHOOK_DELIVERIES = Counter(
    "webhook_deliveries",
    "Tracker webhook deliveries received, by tracker (github, jira) and result: routed (the "
    "item's workflow was signalled), ignored (nothing to act on, or the item has ended), ping, "
    "bad_signature (401), malformed (400), not_configured (503: no secret set), unavailable "
    "(503: Temporal away), error (any other failure).",
    ["tracker", "result"],
    namespace=NAMESPACE,
    registry=API_REGISTRY,
)
TRACKER_CALLS = Counter(
    "tracker_calls",
    "Calls to a tracker adapter, by tracker (local, github, jira) and operation "
    "(ensure_ticket, comment_on_ticket, update_ticket, changed_since, close_duplicate); "
    "failed calls included.",
    ["tracker", "operation"],
    namespace=NAMESPACE,
    registry=WORKER_REGISTRY,
)
TRACKER_ERRORS = Counter(
    "tracker_errors",
    "Tracker adapter calls that raised (a refusal, an outage, a timeout), by tracker and "
    "operation; a subset of afteraction_tracker_calls_total.",
    ["tracker", "operation"],
    namespace=NAMESPACE,
    registry=WORKER_REGISTRY,
)
TRACKER_CALL_DURATION = Histogram(
    "tracker_call_duration_seconds",
    "How long a tracker adapter call took, failed ones included, by tracker and operation.",
    ["tracker", "operation"],
    namespace=NAMESPACE,
    registry=WORKER_REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20),
)
RECONCILER_RUNS = Counter(
    "reconciler_runs",
    "Reconciler reads of one tracker target (one per target with open items, per scheduled "
    "run and per attempt), by tracker and result (ok, error).",
    ["tracker", "result"],
    namespace=NAMESPACE,
    registry=WORKER_REGISTRY,
)
RECONCILER_LAST_RUN = Gauge(
    "reconciler_last_run_timestamp_seconds",
    "Unix time at which a reconciler run last listed its targets (every run does, with or "
    "without open items); 0 until this worker has run one. Alert when "
    "time() - max(this > 0) exceeds a few AFTERACTION_RECONCILE_EVERY.",
    namespace=NAMESPACE,
    registry=WORKER_REGISTRY,
)
RECONCILER_LAG = Histogram(
    "reconciler_lag_seconds",
    "For each ticket change the reconciler found that its action item had not heard of (a "
    "webhook missed or not yet delivered): seconds from the change in the tracker (the "
    "ticket's updated time) to the reconciler reading it, by tracker.",
    ["tracker"],
    namespace=NAMESPACE,
    registry=WORKER_REGISTRY,
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400),
)


def tracker_of(target: str) -> str:
    """A routing target's tracker, as a bounded label value: local, github, jira or other."""
    kind = target.partition(":")[0]
    return kind if kind in TRACKERS else "other"


@contextmanager
def tracker_call(target: str, operation: str) -> Iterator[None]:
    """Count (and time) one tracker adapter call; an exception is counted as an error too."""
    labels = (tracker_of(target), operation)
    TRACKER_CALLS.labels(*labels).inc()
    started = time.perf_counter()
    try:
        yield
    except BaseException:
        TRACKER_ERRORS.labels(*labels).inc()
        raise
    finally:
        TRACKER_CALL_DURATION.labels(*labels).observe(time.perf_counter() - started)


def reconciler_found_change(target: str, changed_at: datetime, read_at: datetime) -> None:
    lag = (read_at - changed_at.astimezone(UTC)).total_seconds()
    RECONCILER_LAG.labels(tracker_of(target)).observe(max(lag, 0.0))


class ReadModel(Protocol):
    """What the collector reads: store.facts.FactsRepository."""

    def open_incidents(self) -> list[tuple[str, str, int]]: ...

    def open_items(self, now_ms: int) -> list[tuple[str, int, int]]: ...

    def escalations_by_rung(self) -> dict[tuple[str, str], int]: ...


class FactsCollector(Collector):
    """The insights read model as Prometheus series, read from the store at each scrape.

    Every API process reports the same figures (they come from one shared store): aggregate
    them across instances with max, not sum. `afteraction_read_model_up` is 0 (and the other
    series absent) when the store could not be read.
    """

    def __init__(self, facts: ReadModel, *, clock: Callable[[], float] = time.time) -> None:
        self._facts = facts
        self._clock = clock

    def describe(self) -> Iterable[Metric]:
        # Names only: registering the collector must not read the store.
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            f"{NAMESPACE}_read_model_up",
            "1 when this scrape read the insights read model from the store, 0 when it failed.",
        )
        families = self._families()
        incidents, items_open, items_overdue, escalations = families
        try:
            for severity, state, count in self._facts.open_incidents():
                incidents.add_metric([severity, state], count)
            for team, open_count, overdue in self._facts.open_items(round(self._clock() * 1000)):
                items_open.add_metric([team], open_count)
                items_overdue.add_metric([team], overdue)
            for (subject, rung), count in sorted(self._facts.escalations_by_rung().items()):
                escalations.add_metric([subject, rung], count)
        except Exception:  # the store is away: say so, and still serve the process's metrics
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [up, *families]

    @staticmethod
    def _families() -> tuple[
        GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily
    ]:
        return (
            GaugeMetricFamily(
                f"{NAMESPACE}_incidents_open",
                "Incidents neither closed nor cancelled, by severity and state.",
                labels=["severity", "state"],
            ),
            GaugeMetricFamily(
                f"{NAMESPACE}_action_items_open",
                "Action items neither done nor accepted, by owning team.",
                labels=["team"],
            ),
            GaugeMetricFamily(
                f"{NAMESPACE}_action_items_overdue",
                "Open action items past their due date at scrape time, by owning team.",
                labels=["team"],
            ),
            CounterMetricFamily(
                f"{NAMESPACE}_escalations",
                "Escalation steps ever fired, by subject (incident, action_item) and rung "
                "(owner, team_lead, manager, leadership); from the read model, whose facts "
                "are kept, so it only grows.",
                labels=["subject", "rung"],
            ),
        )


class Exposition(Collector):
    """What one API process serves at /metrics: API_REGISTRY and the read model."""

    def __init__(self, *collectors: Collector) -> None:
        self._collectors = collectors

    def collect(self) -> Iterable[Metric]:
        for collector in self._collectors:
            yield from collector.collect()


def split_address(address: str) -> tuple[str, int]:
    """host:port (settings validated the form) as (host, port); [::1]:9101 gives ::1."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def serve_worker_metrics(address: str) -> tuple[WSGIServer, Thread]:
    """Serve WORKER_REGISTRY at http://ADDRESS/metrics from a daemon thread (OSError: the
    address cannot be bound)."""
    host, port = split_address(address)
    return start_http_server(port, addr=host, registry=WORKER_REGISTRY)


def temporal_runtime(address: str) -> Runtime:
    """A Temporal runtime whose SDK metrics (temporal_workflow_task_execution_latency_seconds,
    temporal_workflow_task_schedule_to_start_latency_seconds, ...) are served on ADDRESS by
    the SDK's own Prometheus endpoint, named in Prometheus' conventions (`_total` counters,
    durations in seconds)."""
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=address,
                counters_total_suffix=True,
                unit_suffix=True,
                durations_as_seconds=True,
            )
        )
    )

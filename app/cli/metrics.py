"""`afteraction metrics`: the figures of a window, from the insights read model, and the
definitions they are computed by. Part of the `afteraction` app (app.cli.main registers it).

Through the API when AFTERACTION_API_TOKEN is set, else straight from the store.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.console import Group, RenderableType
from rich.table import Table

from app.cli.common import JsonOption, _emit, _settings, fail, remote_api, run_remote
from app.services.insights import DEFAULT_SINCE, Insights, WindowError, window_length
from domain.metrics import DefinitionSet, Grouping, MetricsReport
from domain.policy import format_duration
from store import StoreError, configured_store

metrics: typer.Typer = typer.Typer(
    name="metrics",
    help="Detection, response and closure figures over a window (see `metrics definitions`).",
)

SinceOption = Annotated[
    str, typer.Option("--since", help="How far back the window reaches: 30d, 90d, 365d.")
]
ByOption = Annotated[
    Grouping | None, typer.Option("--by", help="Figures per severity, service or team.")
]


@metrics.callback(invoke_without_command=True)
def show(
    ctx: typer.Context,
    since: SinceOption = format_duration(DEFAULT_SINCE),
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the figures of the incidents declared in the window (and their action items)."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        length = window_length(since)
    except WindowError as error:
        fail(f"--since: {error}", 2)
    report = _remote_report(length, by) or _local_report(length, by)
    _emit(report, as_json, render(report))


@metrics.command()
def definitions(as_json: JsonOption = False) -> None:
    """Print what each figure measures: its facts, fallbacks, exclusions and unit."""
    listed = DefinitionSet()
    _emit(listed, as_json, _definitions_table(listed))


def _local_report(length: timedelta, by: Grouping | None) -> MetricsReport:
    try:
        insights = Insights(configured_store(_settings()))
        return insights.metrics(since=length, by=by)
    except WindowError as error:
        fail(f"--since: {error}", 2)
    except StoreError as error:
        fail(str(error), 1 if error.retryable else 2)


def _remote_report(length: timedelta, by: Grouping | None) -> MetricsReport | None:
    api = remote_api(_settings())
    if api is None:
        return None
    params = {"since": format_duration(length), **({"by": by.value} if by else {})}
    return run_remote(api, lambda: api.call("GET", "/api/metrics", MetricsReport, params=params))


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return format_duration(timedelta(seconds=round(value)))


def _rungs(counts: dict[str, int]) -> str:
    return ", ".join(f"{rung} {count}" for rung, count in counts.items()) or "—"


def render(report: MetricsReport) -> RenderableType:
    groups = [report.total, *report.groups]
    heading = (
        f"{report.since:%Y-%m-%d %H:%M} → {report.until:%Y-%m-%d %H:%M} UTC · definitions "
        f"v{report.definitions_version} (afteraction metrics definitions) · "
        f"{report.total.incidents} incidents, {report.total.cancelled} cancelled (not counted)"
    )
    durations = Table(title="Durations", title_justify="left")
    for column in ("Group", "Metric", "n", "p50", "p90", "mean", "fallbacks"):
        durations.add_column(column, no_wrap=True)
    for group in groups:
        for name, figures in group.durations.items():
            fallbacks = ", ".join(
                [f"from {fact} {n}" for fact, n in figures.fallbacks.items()]
                + [f"to {fact} {n}" for fact, n in figures.end_fallbacks.items()]
            )
            durations.add_row(
                group.group,
                name,
                str(figures.count),
                _seconds(figures.p50),
                _seconds(figures.p90),
                _seconds(figures.mean),
                fallbacks or "—",
            )
    reviews = Table(title="Reviews against the policy's deadline", title_justify="left")
    for column in ("Group", "on time", "late", "overdue", "pending"):
        reviews.add_column(column, no_wrap=True)
    for group in groups:
        r = group.reviews
        reviews.add_row(group.group, str(r.on_time), str(r.late), str(r.overdue), str(r.pending))
    items = Table(title="Action items", title_justify="left")
    for column in (
        "Group",
        "closed",
        "on time",
        "of which extended",
        "late",
        "accepted",
        "open",
        "overdue",
        "overdue by rung",
    ):
        items.add_column(column, no_wrap=True)
    for group in groups:
        a = group.action_items
        items.add_row(
            group.group,
            str(a.closed),
            str(a.on_time),
            str(a.extended),
            str(a.late),
            str(a.accepted),
            str(a.open),
            str(a.overdue),
            _rungs(a.overdue_by_rung),
        )
    escalations = Table(title="Escalations", title_justify="left")
    for column in ("Group", "incidents", "items", "per incident", "per item", "by rung"):
        escalations.add_column(column, no_wrap=True)
    for group in groups:
        e = group.escalations
        escalations.add_row(
            group.group,
            str(e.incidents),
            str(e.action_items),
            "—" if e.per_incident is None else f"{e.per_incident:g}",
            "—" if e.per_item is None else f"{e.per_item:g}",
            _rungs(e.by_rung),
        )
    return Group(heading, durations, reviews, items, escalations)


def _definitions_table(listed: DefinitionSet) -> RenderableType:
    table = Table(title=f"Metric definitions, version {listed.version}", show_lines=True)
    for column in ("Metric", "From", "To", "Window", "Counts", "Leaves out", "Unit"):
        table.add_column(column, no_wrap=column in ("Metric", "Unit"))
    for definition in listed.definitions:
        table.add_row(
            f"{definition.name}\n{definition.title}",
            " else ".join(definition.start) or "—",
            " else ".join(definition.end) or "—",
            definition.window,
            definition.counts,
            "\n".join(definition.excludes) or "—",
            definition.unit.value,
        )
    return table

"""`afteraction insights`: the read model behind the metrics, against the workflows.

`check` exits 3 when the read model differs from the workflows (listing every difference),
besides the app's usual codes (1 Temporal or the store unreachable, 2 invalid input).
"""

from __future__ import annotations

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from temporalio.client import Client

from app.cli.common import JsonOption, _emit, _run_client, fail
from app.services.read_model import CheckReport, ReadModel, RebuildReport
from settings import Settings
from store import StoreError, configured_store

DIFFERS = 3

insights: typer.Typer = typer.Typer(
    name="insights",
    help="The insights read model: check it against the workflows, or rebuild it from them.",
    no_args_is_help=True,
)


def _read_model(client: Client, settings: Settings) -> ReadModel:
    try:
        store = configured_store(settings)
    except StoreError as error:
        fail(str(error), 1 if error.retryable else 2)
    return ReadModel(client, store, task_queue=settings.task_queue)


@insights.command()
def check(as_json: JsonOption = False) -> None:
    """Compare every fact row with its workflow; list each difference (exit 3 if any)."""

    async def run(client: Client, settings: Settings) -> CheckReport:
        return await _read_model(client, settings).check()

    report = _run_client(run)
    _emit(report, as_json, _check_human(report))
    if report.differences:
        raise typer.Exit(DIFFERS)


@insights.command()
def rebuild(as_json: JsonOption = False) -> None:
    """Derive every fact row again from the workflows Temporal holds (rows of incidents whose
    histories retention removed are kept)."""

    async def run(client: Client, settings: Settings) -> RebuildReport:
        return await _read_model(client, settings).rebuild()

    report = _run_client(run)
    _emit(report, as_json, _rebuild_human(report))
    if report.unreadable:
        raise typer.Exit(DIFFERS)


def _check_human(report: CheckReport) -> RenderableType:
    summary = (
        f"{report.workflows} workflows, {report.rows} rows "
        f"({report.retained_only} kept after retention removed their workflows): "
        + (f"{len(report.differences)} differences" if report.differences else "no difference")
    )
    if not report.differences:
        return summary
    table = Table(title="Differences", show_lines=True)
    for column in ("Subject", "Kind", "Fact", "Workflow", "Read model"):
        table.add_column(column)
    for difference in report.differences:
        if not difference.fields:
            table.add_row(difference.subject, difference.kind, "—", "—", difference.detail or "")
        for name, (expected, stored) in difference.fields.items():
            table.add_row(difference.subject, difference.kind, name, str(expected), str(stored))
    hint = "`afteraction insights rebuild` rewrites the rows from the workflows"
    return Group(summary, table, hint)


def _rebuild_human(report: RebuildReport) -> RenderableType:
    summary = (
        f"{report.workflows} workflows: {report.written} rows written, "
        f"{report.unchanged} already newer"
    )
    if not report.unreadable:
        return summary
    lines = [f"{d.subject}: {d.detail}" for d in report.unreadable]
    return Group(summary, f"{len(lines)} could not be read:", *lines)

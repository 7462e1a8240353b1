"""`afteraction config show`: what the deployment runs its incidents under (the policy and
routing its worker published), and whether this CLI's own files agree. Part of the
`afteraction` app (app.cli.main registers it)."""

from __future__ import annotations

import typer
from pydantic import BaseModel
from rich.console import Group, RenderableType
from rich.table import Table

from app.cli.common import JsonOption, _emit, _settings, deployed
from domain.deployment import DeploymentConfig, policy_source, routing_source
from domain.policy import format_duration

config: typer.Typer = typer.Typer(
    name="config", help="What the deployment runs its incidents under.", no_args_is_help=True
)


class ConfigReport(BaseModel):
    deployment: DeploymentConfig | None
    store: str
    cli_policy_file: str
    cli_routing_file: str
    note: str | None


@config.command()
def show(as_json: JsonOption = False) -> None:
    """Print the policy and routing the deployment's worker published, and whether this CLI's
    own files (AFTERACTION_POLICY_FILE, AFTERACTION_ROUTING_FILE) are ignored."""
    settings = _settings()
    in_force, store_url = deployed(settings)
    report = ConfigReport(
        deployment=in_force.published,
        store=store_url,
        cli_policy_file=policy_source(settings.policy_file),
        cli_routing_file=routing_source(settings.routing_file),
        note=in_force.warning,
    )
    _emit(report, as_json, _human(report))


def _human(report: ConfigReport) -> RenderableType:
    published = report.deployment
    if published is None:
        return f"nothing published in {report.store}: {report.note}"
    header = (
        f"task queue {published.task_queue} · store {report.store}\n"
        f"policy  {published.policy_source}\nrouting {published.routing_source}\n"
        f"published {published.published_at:%Y-%m-%d %H:%M:%S} UTC by {published.published_by}"
    )
    table = Table(title="Deadlines by severity", title_justify="left")
    for column in ("Severity", "Acknowledge", "Status update", "Resolve", "Review"):
        table.add_column(column, no_wrap=True)
    for severity, rules in sorted(published.policy.severities.items()):
        review = (
            format_duration(rules.review_within)
            if rules.review_within is not None
            else f"{rules.review_within_business_days} business days"
        )
        table.add_row(
            severity.value,
            format_duration(rules.acknowledge_within),
            format_duration(rules.status_update_every),
            format_duration(rules.resolve_within),
            review,
        )
    teams = ", ".join(sorted(published.routing.teams)) or "none"
    parts: list[RenderableType] = [header, table, f"routed teams: {teams}"]
    if published.policy.facilitators:
        parts.append(f"facilitators: {', '.join(published.policy.facilitators)}")
    if report.note:
        parts.append(f"[yellow]note:[/] {report.note}")
    return Group(*parts)

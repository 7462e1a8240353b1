"""Rich renderings of incidents for people; scripts use --json instead."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table

from domain.escalation import EscalationRecord
from domain.incident import Incident, IncidentStatus, IncidentSummary
from domain.recurrence import Recurrence

_STATE_STYLE = {
    "declared": "bold red",
    "mitigating": "yellow",
    "mitigated": "cyan",
    "resolved": "green",
    "cancelled": "dim",
}


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


def _state(state: str) -> str:
    style = _STATE_STYLE.get(state, "white")
    return f"[{style}]{state}[/]"


def incident_list(summaries: list[IncidentSummary]) -> RenderableType:
    table = Table(title="Incidents", show_lines=False)
    table.add_column("Key", no_wrap=True)
    table.add_column("Sev", no_wrap=True)
    table.add_column("State", no_wrap=True)
    table.add_column("Title")
    table.add_column("Services")
    table.add_column("Declared (UTC)", no_wrap=True)
    table.add_column("Esc", justify="right")
    for row in summaries:
        table.add_row(
            row.key,
            row.severity.value,
            _state(row.state.value),
            row.title,
            ", ".join(row.services),
            row.declared_at.strftime("%m-%d %H:%M") if row.declared_at else "—",
            str(row.escalation_count),
        )
    return table


def status(result: IncidentStatus) -> RenderableType:
    return (
        f"[bold]{result.key}[/] {result.severity.value} {_state(result.state.value)}: "
        f"{result.title}"
    )


def incident(detail: Incident) -> RenderableType:
    header = Table.grid(padding=(0, 2))
    header.add_row("Title", detail.title)
    header.add_row("Severity", detail.severity.value)
    header.add_row("State", _state(detail.state.value))
    header.add_row("Services", ", ".join(detail.services) or "—")
    if detail.failure_modes:
        header.add_row("Failure modes", ", ".join(detail.failure_modes))
    header.add_row("Declared by", detail.declared_by)
    if detail.cancel_reason:
        header.add_row("Cancelled because", detail.cancel_reason)

    clock = Table(title="Clock", title_justify="left")
    clock.add_column("Moment")
    clock.add_column("Time")
    filled_in = {
        "started_at": "not reported: when it was detected"
        if detail.clock.started_reported is False
        else None,
        "detected_at": "not reported: when it was declared"
        if detail.clock.detected_reported is False
        else None,
    }
    for name, value in detail.clock.model_dump().items():
        if isinstance(value, datetime):
            note = filled_in.get(name)
            clock.add_row(name.removesuffix("_at"), _when(value) + (f" ({note})" if note else ""))

    roles = Table(title="Roles", title_justify="left")
    roles.add_column("Role")
    roles.add_column("Person")
    roles.add_row("commander", detail.roles.commander or "—")
    roles.add_row("scribe", detail.roles.scribe or "—")
    roles.add_row("communications lead", detail.roles.communications_lead or "—")
    roles.add_row("subject-matter experts", ", ".join(detail.roles.subject_matter_experts) or "—")

    timeline = records(
        "Timeline",
        ("When", "What", "Who", "Text"),
        (
            (_when(event.at), event.kind.value, event.author or "", event.text)
            for event in detail.timeline
        ),
        earlier=detail.earlier_timeline_events,
    )

    parts: list[RenderableType] = [header, clock, roles, timeline]
    if detail.recurrences:
        parts.append(repeats(detail.recurrences))
    if detail.escalations:
        parts.append(escalations(detail.escalations, earlier=detail.earlier_escalations))
    # Not expanded: piped, the console is as wide as the longest line (see app.cli.common).
    return Panel(Group(*parts), title=detail.key, title_align="left", expand=False)


def repeats(recurrences: list[Recurrence]) -> Table:
    """The earlier incidents this one repeats, and the state of their open fixes then."""
    table = Table(title="Repeats", title_justify="left")
    for column in ("Found at", "Earlier incident", "Shared", "Open action items"):
        table.add_column(column)
    for recurrence in recurrences:
        for earlier in recurrence.earlier:
            items = "\n".join(
                f"{item.id} {item.title} ({item.standing})" for item in earlier.open_items
            )
            if not items:
                items = f"none open of {earlier.action_items}"
            table.add_row(
                recurrence.stage.value,
                f"{earlier.key} {earlier.severity.value}: {earlier.title}",
                ", ".join(earlier.matched_on),
                items,
            )
    return table


def records(
    title: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    earlier: int = 0,
) -> Table:
    """A titled table of what a workflow keeps a list of (timeline events, escalations,
    extensions); the `earlier` ones a run handed over only as a count are in the history."""
    table = Table(
        title=title,
        title_justify="left",
        caption=f"and {earlier} earlier, in the history of the earlier runs" if earlier else None,
        caption_justify="left",
    )
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    return table


def escalations(escalated: list[EscalationRecord], *, earlier: int = 0) -> Table:
    """An incident's or an item's escalations."""
    return records(
        "Escalations",
        ("When", "Deadline", "Rung", "Notified", "Why"),
        (
            (
                _when(record.at),
                record.deadline.value,
                record.rung.value,
                ", ".join(record.notified),
                record.reason,
            )
            for record in escalated
        ),
        earlier=earlier,
    )

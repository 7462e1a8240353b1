"""The period report as Markdown and CSV: totals first, then one row per incident."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from domain.audit.report import DeadlineRow, IncidentRow, ItemRow, PeriodReport, Standing

DEADLINES = ("acknowledge", "resolve", "review")


def _duration(seconds: int) -> str:
    seconds = abs(seconds)
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            whole, rest = divmod(seconds, size)
            smaller = {"d": ("h", 3_600), "h": ("m", 60), "m": ("s", 1)}[unit]
            part = rest // smaller[1]
            return f"{whole}{unit}" + (f" {part}{smaller[0]}" if part else "")
    return f"{seconds}s"


def deadline_text(row: DeadlineRow) -> str:
    """E.g. 'met, 4m early', 'late by 1h 5m', 'missed by 2d', 'pending'."""
    if row.by_seconds is None:
        return row.standing.value
    if row.standing is Standing.MET:
        return f"met, {_duration(row.by_seconds)} early" if row.by_seconds < 0 else "met"
    return f"{row.standing.value} by {_duration(row.by_seconds)}"


def review_text(row: IncidentRow) -> str:
    if row.missing_functions:
        missing = ", ".join(row.missing_functions)
        return f"{row.review_standing.value}: without {missing} ({row.waiver})"
    return row.review_standing.value


def item_text(item: ItemRow) -> str:
    text = f"{item.id} {item.outcome.value}"
    if item.evidence is not None:
        text += f", verified by {item.verified_by}: {item.evidence}"
    if item.approver is not None:
        text += f", approved by {item.approver}: {item.rationale}"
    if item.rung is not None and item.closed_at is None:
        text += f", at the {item.rung.value.replace('_', ' ')} rung"
    return text


def _counts(tally: Mapping[Any, int]) -> str:
    return ", ".join(f"{key.value} {count}" for key, count in tally.items()) or "none"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def report_markdown(report: PeriodReport) -> str:
    totals = report.totals
    lines = [
        f"# Incident control evidence: {report.since:%Y-%m-%d %H:%M} to "
        f"{report.until:%Y-%m-%d %H:%M} UTC",
        "",
        f"Incidents declared in the period, as they stood at {report.made_at:%Y-%m-%d %H:%M} "
        "UTC. Deadlines are the policy's for each incident's severity; an item is on time when "
        "it was done by the due date in force when it closed, and an accepted risk never is.",
        "",
        "## Totals",
        "",
        "| | |",
        "|---|---|",
        f"| incidents | {totals.incidents} (and {totals.cancelled} cancelled) |",
        *(f"| {kind} | {_counts(getattr(totals, kind))} |" for kind in DEADLINES),
        f"| reviews | {_counts(totals.reviews)} |",
        f"| action items | {_counts(totals.items)} |",
        f"| verified with evidence | {totals.verified_items} |",
        "",
        "## Incidents",
        "",
        "| Incident | Severity | State | Acknowledge | Resolve | Review | Review held "
        "| Action items |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report.incidents:
        items = "<br>".join(_cell(item_text(item)) for item in row.items) or "none"
        state = row.state.value
        if row.cancel_reason:
            state += f": {row.cancel_reason}"
        lines.append(
            f"| {row.key} {_cell(row.title)} | {row.severity.value} | {_cell(state)} | "
            + " | ".join(deadline_text(getattr(row, kind)) for kind in DEADLINES)
            + f" | {_cell(review_text(row))} | {items} |"
        )
    return "\n".join(lines) + "\n"


DEADLINE_PARTS = ("due_at", "done_at", "standing", "by_seconds")
CSV_COLUMNS = (
    "key",
    "title",
    "severity",
    "state",
    "declared_at",
    *(
        f"{kind}_{part}"
        for kind in DEADLINES
        for part in ("due_at", "done_at", "standing", "by_seconds")
    ),
    "review_held",
    "missing_functions",
    "waiver",
    "items",
)


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat()


def report_csv(report: PeriodReport) -> str:
    """One row per incident, after a first row (key `totals`) with the period's counts."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    totals = report.totals
    writer.writerow(
        {
            "key": "totals",
            "title": f"{totals.incidents} incidents, {totals.cancelled} cancelled",
            **{f"{kind}_standing": _counts(getattr(totals, kind)) for kind in DEADLINES},
            "review_held": _counts(totals.reviews),
            "items": f"{_counts(totals.items)}; verified with evidence {totals.verified_items}",
        }
    )
    for row in report.incidents:
        values: dict[str, object] = {
            "key": row.key,
            "title": row.title,
            "severity": row.severity.value,
            "state": row.state.value,
            "declared_at": _iso(row.declared_at),
            "review_held": row.review_standing.value,
            "missing_functions": " ".join(row.missing_functions),
            "waiver": row.waiver or "",
            "items": "; ".join(item_text(item) for item in row.items),
        }
        for kind in DEADLINES:
            deadline: DeadlineRow = getattr(row, kind)
            values[f"{kind}_due_at"] = _iso(deadline.due_at)
            values[f"{kind}_done_at"] = _iso(deadline.done_at)
            values[f"{kind}_standing"] = deadline.standing.value
            values[f"{kind}_by_seconds"] = (
                "" if deadline.by_seconds is None else deadline.by_seconds
            )
        writer.writerow(values)
    return out.getvalue()

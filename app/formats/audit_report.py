"""The period report as Markdown and CSV: totals first, then one row per incident."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from jinja2 import Environment, StrictUndefined

from app.formats.markdown_text import table, when
from domain.audit.report import DeadlineRow, IncidentRow, ItemRow, PeriodReport, Standing

DEADLINES = ("acknowledge", "resolve", "review")


class ReportFormat(StrEnum):
    MD = "md"
    CSV = "csv"
    HTML = "html"


MEDIA_TYPES = {
    ReportFormat.MD: "text/markdown; charset=utf-8",
    ReportFormat.CSV: "text/csv; charset=utf-8",
    ReportFormat.HTML: "text/html; charset=utf-8",
}


def rendered(report: PeriodReport, form: ReportFormat) -> str:
    if form is ReportFormat.CSV:
        return report_csv(report)
    if form is ReportFormat.HTML:
        return report_html(report)
    return report_markdown(report)


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
    """E.g. 'INC-…-2 risk accepted, approved by vp-eng: replaced by the new pool'."""
    proof = _proof(item)
    return f"{item.id} {_outcome(item)}" + (f", {proof}" if proof else "")


def _counts(tally: Mapping[Any, int]) -> str:
    return ", ".join(f"{key.value} {count}" for key, count in tally.items()) or "none"


def report_markdown(report: PeriodReport) -> str:
    totals = report.totals
    summary = table(
        ("", ""),
        [
            ("incidents", f"{totals.incidents} (and {totals.cancelled} cancelled)"),
            *((kind, _counts(getattr(totals, kind))) for kind in DEADLINES),
            ("reviews", _counts(totals.reviews)),
            ("action items", _counts(totals.items)),
            ("verified with evidence", str(totals.verified_items)),
        ],
    )
    incidents = table(
        ("Incident", "Severity", "State", "Acknowledge", "Resolve", "Review", "Review held"),
        [
            (
                f"{row.key} {row.title}",
                row.severity.value,
                _state(row),
                *(deadline_text(getattr(row, kind)) for kind in DEADLINES),
                review_text(row),
            )
            for row in report.incidents
        ],
    )
    items = table(
        ("Action item", "Team", "Outcome", "Due", "Closed", "Evidence or approval"),
        [
            (
                f"{item.id} {item.title}",
                item.owning_team,
                _outcome(item),
                when(item.due_at),
                when(item.closed_at) if item.closed_at else None,
                _proof(item),
            )
            for row in report.incidents
            for item in row.items
        ],
    )
    return (
        f"# Incident control evidence: {when(report.since)} to {when(report.until)}\n\n"
        f"{EXPLANATION.format(made_at=when(report.made_at))}\n\n"
        f"## Totals\n\n{summary}\n\n## Incidents\n\n{incidents}\n\n"
        f"## Action items\n\n{items}\n"
    )


EXPLANATION = (
    "Incidents declared in the period, as they stood at {made_at}. Deadlines are the policy's "
    "for each incident's severity; an item is on time when it was done by the due date in "
    "force when it closed, and an accepted risk never is."
)


def _state(row: IncidentRow) -> str:
    return f"{row.state.value}: {row.cancel_reason}" if row.cancel_reason else row.state.value


def _outcome(item: ItemRow) -> str:
    if item.rung is not None and item.closed_at is None:
        return f"{item.outcome.value}, at the {item.rung.value.replace('_', ' ')} rung"
    return item.outcome.value


def _proof(item: ItemRow) -> str | None:
    if item.evidence is not None:
        return f"verified by {item.verified_by}: {item.evidence}"
    if item.approver is not None:
        return f"approved by {item.approver}: {item.rationale}"
    return None


_HTML = Environment(autoescape=True, undefined=StrictUndefined).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Incident control evidence: {{ when(r.since) }} to {{ when(r.until) }}</title>
<style>body{font-family:sans-serif;color:#111}table{border-collapse:collapse}
td,th{border:1px solid #999;padding:4px 8px;text-align:left;vertical-align:top}</style>
</head><body>
<h1>Incident control evidence: {{ when(r.since) }} to {{ when(r.until) }}</h1>
<p>{{ explanation }}</p>
<h2>Totals</h2>
<table><tbody>
<tr><th scope="row">incidents</th>
<td>{{ r.totals.incidents }} (and {{ r.totals.cancelled }} cancelled)</td></tr>
{% for kind in deadlines %}<tr><th scope="row">{{ kind }}</th>
<td>{{ counts(r.totals[kind]) }}</td></tr>
{% endfor %}<tr><th scope="row">reviews</th><td>{{ counts(r.totals.reviews) }}</td></tr>
<tr><th scope="row">action items</th><td>{{ counts(r.totals.items) }}</td></tr>
<tr><th scope="row">verified with evidence</th><td>{{ r.totals.verified_items }}</td></tr>
</tbody></table>
<h2>Incidents</h2>
<table><thead><tr><th>Incident</th><th>Severity</th><th>State</th><th>Acknowledge</th>
<th>Resolve</th><th>Review</th><th>Review held</th></tr></thead><tbody>
{% for row in r.incidents %}<tr><td>{{ row.key }} {{ row.title }}</td>
<td>{{ row.severity.value }}</td>
<td>{{ state(row) }}</td>{% for kind in deadlines %}<td>{{ deadline(row[kind]) }}</td>{% endfor %}
<td>{{ review(row) }}</td></tr>
{% endfor %}</tbody></table>
<h2>Action items</h2>
<table><thead><tr><th>Action item</th><th>Team</th><th>Outcome</th><th>Due</th><th>Closed</th>
<th>Evidence or approval</th></tr></thead><tbody>
{% for row in r.incidents %}{% for item in row.items %}<tr><td>{{ item.id }} {{ item.title }}</td>
<td>{{ item.owning_team }}</td><td>{{ outcome(item) }}</td><td>{{ when(item.due_at) }}</td>
<td>{{ when(item.closed_at) if item.closed_at else "" }}</td><td>{{ proof(item) or "" }}</td></tr>
{% endfor %}{% endfor %}</tbody></table>
</body></html>
"""
)


def report_html(report: PeriodReport) -> str:
    """A page of its own (no script, no asset from elsewhere); what people typed is escaped."""
    return _HTML.render(
        r=report,
        explanation=EXPLANATION.format(made_at=when(report.made_at)),
        deadlines=DEADLINES,
        when=when,
        counts=_counts,
        state=_state,
        deadline=deadline_text,
        review=review_text,
        outcome=_outcome,
        proof=_proof,
    )


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

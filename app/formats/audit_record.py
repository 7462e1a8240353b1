"""The audit record as files: Markdown to read, CSV to sort and filter, the review as JSON.

The same record always gives the same bytes (no time of writing, rows in the record's order),
so `audit verify` can write it again from the histories and compare.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from app.formats.markdown_text import NONE, Markdown, inline, safe, table
from domain.audit.record import AuditRecord, ReviewEntry, compact
from domain.review import Review

FOLDER = "record"
MARKDOWN = f"{FOLDER}/record.md"
COMMANDS = f"{FOLDER}/commands.csv"
DEADLINES = f"{FOLDER}/deadlines.csv"
TICKETS = f"{FOLDER}/tickets.csv"
REVIEWS = f"{FOLDER}/reviews.json"
# A cell of the Markdown shows this much of a command's input; the CSV holds all of it.
SHOWN_INPUT = 300

_COMMAND_COLUMNS = ("at", "subject", "command", "actor", "outcome", "reason", "input")
_DEADLINE_COLUMNS = (
    "at", "subject", "kind", "deadline", "due_at", "rung", "recipients", "reason", "outcome"
)  # fmt: skip
_TICKET_COLUMNS = (
    "at", "subject", "event", "ticket", "link", "status", "actor", "outcome", "detail"
)  # fmt: skip
_WHERE = ("workflow_id", "run_id", "event_id")


def stamp(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _value(value: Any) -> str:
    if isinstance(value, datetime):
        return stamp(value)
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return "" if value is None else str(value)


def _csv(rows: Sequence[BaseModel], columns: Sequence[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*columns, *_WHERE])
    for row in rows:
        writer.writerow([_value(getattr(row, name)) for name in (*columns, *_WHERE)])
    return out.getvalue().encode()


def _cell(row: BaseModel, name: str) -> str:
    """A Markdown table's cell: a ticket with its link, a command's input cut short."""
    text = _value(getattr(row, name))
    link = getattr(row, "link", "")
    if name == "ticket" and text and link.startswith(("https://", "http://")):
        return Markdown(f"[{inline(text)}](<{link}>)")
    if name == "input":
        text = _shown_input(text)
    return text


def _shown_input(text: str) -> str:
    """A command's input, cut short for a table; a declaration's policy (it is long, and the
    same for most incidents) is left to the CSV."""
    value = json.loads(text)
    if isinstance(value, dict) and "policy" in value:
        text = compact({**value, "policy": "(in commands.csv)"})
    return text if len(text) <= SHOWN_INPUT else text[:SHOWN_INPUT] + "…"


def _table(rows: Sequence[BaseModel], columns: Sequence[str]) -> str:
    headers = [name.replace("_", " ").capitalize() for name in columns]
    return table(headers, [[_cell(row, name) for name in columns] for row in rows])


def _review(entry: ReviewEntry) -> str:
    lines = [f"### {inline(entry.subject)}, accepted {stamp(entry.at)} from {inline(entry.actor)}"]
    try:
        review = Review.model_validate(entry.review)
    except ValidationError:
        return "\n\n".join([*lines, f"The review as sent is in `{REVIEWS}`."])
    lines.append(safe(review.executive_summary.strip()) or "_No executive summary._")
    lines.append(f"Facilitator: {inline(review.facilitator or NONE)}")
    people = [f"{p.name} ({p.function.value})" for p in review.participants]
    lines.append(f"Participants: {inline(', '.join(people) or NONE)}")
    if review.decisions:
        lines.append(
            table(
                ("Decision", "Rationale", "Owner", "Date"),
                [(d.decision, d.rationale, d.owner, d.date.isoformat()) for d in review.decisions],
            )
        )
    if review.action_items:
        lines.append(
            table(
                ("Action item", "Team", "Kind", "Priority", "Success criteria"),
                [
                    (s.title, s.owning_team, s.kind.value, s.priority.value, s.success_criteria)
                    for s in review.action_items
                ],
            )
        )
    lines.append(f"Every field of the review as accepted is in `{REVIEWS}`.")
    return "\n\n".join(lines)


def _missing(record: AuditRecord) -> list[str]:
    if not record.missing_runs:
        return []
    return [
        "**Runs missing**: the histories name these runs, whose own histories were gone when "
        "the bundle was exported (the namespace's retention removed them); what they did is "
        "not in this record.",
        table(("Workflow", "Run"), record.missing_runs),
    ]


def record_markdown(record: AuditRecord) -> str:
    workflows = {workflow_id for workflow_id, _, _ in record.runs}
    parts = [
        f"# Audit record of {inline(record.incident_key)}",
        f"Derived from the Temporal histories in `histories/`: {len(record.runs)} runs of "
        f"{len(workflows)} workflows. `afteraction audit verify` derives it again from them and "
        "compares. A command that a validator refused leaves no history, so it is not here; "
        "`refused` is a command accepted and then failed. The CSV files hold every row in full.",
        "## Runs",
        table(("Workflow", "Run", "Type"), record.runs),
        *_missing(record),
        "## Commands",
        _table(record.commands, _COMMAND_COLUMNS),
        "## Deadlines, reminders and escalations",
        _table(record.deadlines, _DEADLINE_COLUMNS),
        "## The review as accepted",
        *([_review(entry) for entry in record.reviews] or ["_No review was accepted._"]),
        "## Tickets",
        _table(record.tickets, _TICKET_COLUMNS),
        "## Verifications",
        _table(record.verifications, ("at", "subject", "by", "evidence", "actor")),
        "## Risk acceptances",
        _table(record.acceptances, ("at", "subject", "approver", "rationale", "actor")),
    ]
    return "\n\n".join(parts) + "\n"


def record_files(record: AuditRecord) -> dict[str, bytes]:
    """Every file of the record, by its path in the bundle."""
    reviews = [entry.model_dump(mode="json") for entry in record.reviews]
    reviews_json = json.dumps(reviews, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return {
        MARKDOWN: record_markdown(record).encode(),
        COMMANDS: _csv(record.commands, _COMMAND_COLUMNS),
        DEADLINES: _csv(record.deadlines, _DEADLINE_COLUMNS),
        TICKETS: _csv(record.tickets, _TICKET_COLUMNS),
        REVIEWS: reviews_json.encode(),
    }

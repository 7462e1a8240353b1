"""The readable audit record of an incident, derived from the histories of its runs alone.

Pure: the same histories give the same record, byte for byte once written, which is how
`audit verify` proves a bundle's record says what its histories say.

What a history cannot hold, the record cannot show: a command that an Update validator refused
leaves no event (Temporal keeps no rejected Update), so `refused` here means a command that was
accepted and then failed in its handler.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from domain.action_item import item_id_of_workflow
from domain.audit.events import EventKind, HistoryEvent, RunHistory
from domain.identity import Actor
from domain.incident import key_from_workflow_id

# Signals between afteraction's own workflows: not anyone's command.
INTERNAL_SIGNALS = frozenset({"action_item_changed", "repeat_proven", "ticket_changed"})
TICKET_ACTIVITIES = frozenset({"ensure_ticket", "comment_on_ticket", "update_ticket"})


class Outcome:
    ACCEPTED = "accepted"
    REFUSED = "refused"
    PENDING = "pending"  # accepted, not finished when the history was read
    DELIVERED = "delivered"
    FAILED = "failed"


class Entry(BaseModel):
    """A row of the record: when, about what, and the history event it was read from."""

    at: datetime
    subject: str = Field(description="the incident key or the action item id")
    workflow_id: str
    run_id: str
    event_id: int


class CommandEntry(Entry):
    command: str
    actor: str
    input: str = Field(description="the command's input as compact JSON, without its actor")
    outcome: str
    reason: str = ""


class DeadlineEntry(Entry):
    """A due date set, a reminder sent or a step up the escalation ladder."""

    kind: str = Field(description="due_date, reminder or escalation")
    deadline: str = ""
    due_at: datetime | None = None
    rung: str = ""
    recipients: list[str] = Field(default_factory=list)
    reason: str = ""
    outcome: str = ""


class TicketEntry(Entry):
    event: str = Field(description="created, create_failed, comment, update or changed")
    ticket: str = ""
    link: str = ""
    status: str = ""
    detail: str = ""
    actor: str = ""
    outcome: str = ""


class ReviewEntry(BaseModel):
    at: datetime
    subject: str
    actor: str
    review: dict[str, Any]


class VerificationEntry(BaseModel):
    at: datetime
    subject: str
    by: str
    evidence: str
    actor: str


class AcceptanceEntry(BaseModel):
    at: datetime
    subject: str
    approver: str
    rationale: str
    actor: str


class AuditRecord(BaseModel):
    incident_key: str
    runs: list[tuple[str, str, str]] = Field(
        default_factory=list, description="(workflow id, run id, workflow type) of every run"
    )
    missing_runs: list[tuple[str, str]] = Field(
        default_factory=list,
        description="(workflow id, run id) of runs the histories name (the run before, after or "
        "reset to) whose history is not there: retention removed it before the export",
    )
    commands: list[CommandEntry] = Field(default_factory=list)
    deadlines: list[DeadlineEntry] = Field(default_factory=list)
    tickets: list[TicketEntry] = Field(default_factory=list)
    reviews: list[ReviewEntry] = Field(default_factory=list)
    verifications: list[VerificationEntry] = Field(default_factory=list)
    acceptances: list[AcceptanceEntry] = Field(default_factory=list)


def compact(value: Any) -> str:
    """JSON on one line, keys sorted: the same value always reads the same."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def actor_label(value: Any, identity: str | None = None) -> str:
    """The actor a command carried, as records name it; else the client's identity."""
    if isinstance(value, dict):
        try:
            return Actor.model_validate(value).label
        except ValidationError:
            pass
    return f"client:{identity}" if identity else "unknown"


def subject_of(workflow_id: str) -> str:
    return item_id_of_workflow(workflow_id) or key_from_workflow_id(workflow_id)


def _first(data: Any) -> Any:
    """A call's single argument (Temporal keeps a list of them)."""
    return data[0] if isinstance(data, list) and data else None


def _mentions(text: str) -> list[str]:
    """The people a comment opens by mentioning: `@a @b reminder: ...`."""
    people = []
    for word in text.split():
        if not word.startswith("@"):
            break
        people.append(word[1:])
    return people


class _Run:
    """Reads one run's events into the record."""

    def __init__(self, run: RunHistory, record: AuditRecord) -> None:
        self.run = run
        self.record = record
        self.subject = subject_of(run.workflow_id)
        self.by_id = {event.event_id: event for event in run.events}
        self.update_ends = {
            e.ref: e for e in run.events if e.kind is EventKind.UPDATE_COMPLETED and e.ref
        }
        self.activity_ends = {
            e.ref: e
            for e in run.events
            if e.kind in (EventKind.ACTIVITY_COMPLETED, EventKind.ACTIVITY_FAILED) and e.ref
        }
        self.admitted = {
            e.ref: e for e in run.events if e.kind is EventKind.UPDATE_ADMITTED and e.ref
        }
        self.links: dict[str, str] = {}

    def where(self, event: HistoryEvent) -> dict[str, Any]:
        return {
            "at": event.at,
            "subject": self.subject,
            "workflow_id": self.run.workflow_id,
            "run_id": self.run.run_id,
            "event_id": event.event_id,
        }

    def command(
        self, event: HistoryEvent, name: str, payload: Any, outcome: str, reason: str = ""
    ) -> None:
        shown = (
            {k: v for k, v in payload.items() if k != "actor"}
            if isinstance(payload, dict)
            else payload
        )
        actor = payload.get("actor") if isinstance(payload, dict) else None
        self.record.commands.append(
            CommandEntry(
                **self.where(event),
                command=name,
                actor=actor_label(actor, event.identity),
                input=compact(shown),
                outcome=outcome,
                reason=reason,
            )
        )

    def read(self, held: set[str]) -> None:
        """Read the run's events; a run reset from a run in `held` only from its reset on (the
        events before it are copies of that run's, already read there)."""
        first = 0
        for event in self.run.events:
            base = event.data.get("base_run_id") if isinstance(event.data, dict) else None
            if event.kind is EventKind.RESET and base in held:
                first = event.event_id
        for event in self.run.events:
            handler = getattr(self, f"_on_{event.kind.value}", None)
            if handler is not None and event.event_id >= first:
                handler(event)

    def _on_started(self, event: HistoryEvent) -> None:
        start = _first(event.data)
        if not isinstance(start, dict) or start.get("carried_over") is not None:
            return  # a continuation (its first run holds the start) or an unreadable input
        if self.run.workflow_type == "IncidentWorkflow":
            self.command(event, "declare", start, Outcome.ACCEPTED)
        elif self.run.workflow_type == "ActionItemWorkflow":
            self._due_date(event, start.get("due_at"), "the item's first due date")

    def _due_date(self, event: HistoryEvent, due_at: Any, reason: str) -> None:
        if due_at is None:
            return
        self.record.deadlines.append(
            DeadlineEntry(
                **self.where(event),
                kind="due_date",
                deadline="action_due",
                due_at=due_at,
                reason=reason,
            )
        )

    def _on_update_accepted(self, event: HistoryEvent) -> None:
        if event.name is None and event.ref in self.admitted:
            admitted = self.admitted[event.ref]
            event = event.model_copy(
                update={"name": admitted.name, "identity": admitted.identity, "data": admitted.data}
            )
        payload = _first(event.data)
        end = self.update_ends.get(event.ref or "")
        if end is None:
            self.command(event, event.name or "?", payload, Outcome.PENDING)
            return
        if end.failure is not None:
            self.command(event, event.name or "?", payload, Outcome.REFUSED, end.failure)
            return
        self.command(event, event.name or "?", payload, Outcome.ACCEPTED)
        if isinstance(payload, dict):
            self._applied(event, event.name or "", payload)

    def _on_update_rejected(self, event: HistoryEvent) -> None:
        self.command(
            event, event.name or "?", _first(event.data), Outcome.REFUSED, event.failure or ""
        )

    def _applied(self, event: HistoryEvent, name: str, payload: dict[str, Any]) -> None:
        actor = actor_label(payload.get("actor"), event.identity)
        if name == "submit_review" and isinstance(payload.get("review"), dict):
            self.record.reviews.append(
                ReviewEntry(
                    at=event.at, subject=self.subject, actor=actor, review=payload["review"]
                )
            )
        # The command's own fields, with the time it was applied and the actor as records name it.
        fields = {**payload, "at": event.at, "subject": self.subject, "actor": actor}
        if name == "verify":
            self.record.verifications.append(VerificationEntry.model_validate(fields))
        elif name == "accept_risk":
            self.record.acceptances.append(AcceptanceEntry.model_validate(fields))
        elif name == "extend_deadline":
            reason = f"extended by {actor}: {payload.get('reason', '')}"
            self._due_date(event, payload.get("due_at"), reason)

    def _on_signaled(self, event: HistoryEvent) -> None:
        payload = _first(event.data)
        if event.name == "ticket_changed" and isinstance(payload, dict):
            key = str(payload.get("ticket_key", ""))
            self.record.tickets.append(
                TicketEntry(
                    **self.where(event),
                    event="changed",
                    ticket=key,
                    link=self.links.get(key, ""),
                    status=str(payload.get("status") or ""),
                    detail=f"{payload.get('event', '')} at {payload.get('at', '')} "
                    f"(from {payload.get('source', '')})",
                    actor=actor_label(payload.get("actor"), None),
                )
            )
        elif event.name not in INTERNAL_SIGNALS:
            self.command(event, event.name or "?", payload, Outcome.ACCEPTED)

    def _on_terminated(self, event: HistoryEvent) -> None:
        self.command(event, "terminate", event.failure, Outcome.ACCEPTED)

    def _on_reset(self, event: HistoryEvent) -> None:
        self.command(event, "reset", event.failure, Outcome.ACCEPTED)

    def _activity_outcome(self, event: HistoryEvent) -> tuple[str, Any]:
        end = self.activity_ends.get(str(event.event_id))
        if end is None:
            return Outcome.PENDING, None
        if end.kind is EventKind.ACTIVITY_FAILED:
            return f"{Outcome.FAILED}: {end.failure or ''}", None
        return Outcome.DELIVERED, _first(end.data)

    def _on_activity_scheduled(self, event: HistoryEvent) -> None:
        payload = _first(event.data)
        if not isinstance(payload, dict):
            return
        outcome, result = self._activity_outcome(event)
        if event.name == "notify_escalation":
            self.record.deadlines.append(
                DeadlineEntry(
                    **self.where(event),
                    kind="escalation",
                    deadline=str(payload.get("deadline", "")),
                    due_at=payload.get("due_at"),
                    rung=str(payload.get("rung", "")),
                    recipients=[str(r) for r in payload.get("recipients", [])],
                    reason=str(payload.get("reason", "")),
                    outcome=outcome,
                )
            )
        elif event.name in TICKET_ACTIVITIES:
            self._ticket_call(event, event.name or "", payload, outcome, result)

    def _ticket_call(
        self, event: HistoryEvent, name: str, payload: dict[str, Any], outcome: str, result: Any
    ) -> None:
        key = str(payload.get("key", ""))
        if name == "ensure_ticket":
            ref = result.get("ref", {}) if isinstance(result, dict) else {}
            key = str(ref.get("key", ""))
            if key:
                self.links[key] = str(ref.get("url") or "")
            draft = payload.get("draft", {})
            entry = TicketEntry(
                **self.where(event),
                event="created" if key else "create_failed",
                ticket=key,
                link=self.links.get(key, ""),
                status=str(result.get("status", "")) if isinstance(result, dict) else "",
                detail=f"{payload.get('target', '')}: {draft.get('title', '')}",
                outcome=outcome,
            )
        elif name == "comment_on_ticket":
            text = str(payload.get("text", ""))
            entry = TicketEntry(
                **self.where(event),
                event="comment",
                ticket=key,
                link=self.links.get(key, ""),
                detail=text,
                outcome=outcome,
            )
            if "/reminder/" in str(payload.get("idempotency_key", "")):
                self.record.deadlines.append(
                    DeadlineEntry(
                        **self.where(event),
                        kind="reminder",
                        deadline="action_due",
                        recipients=_mentions(text),
                        reason=text,
                        outcome=outcome,
                    )
                )
        else:
            change = {
                name: value
                for name, value in payload.get("change", {}).items()
                if value not in (None, [], False)
            }
            entry = TicketEntry(
                **self.where(event),
                event="update",
                ticket=key,
                link=self.links.get(key, ""),
                status="closed" if change.get("close_as_not_planned") else "",
                detail=compact(change),
                outcome=outcome,
            )
        self.record.tickets.append(entry)


def _order(entry: Entry) -> tuple[datetime, str, str, int]:
    return (entry.at, entry.workflow_id, entry.run_id, entry.event_id)


_LINKS_TO_RUNS = (EventKind.STARTED, EventKind.CONTINUED_AS_NEW, EventKind.RESET)


def _missing_runs(runs: list[RunHistory]) -> list[tuple[str, str]]:
    held = {(run.workflow_id, run.run_id) for run in runs}
    named = {
        (run.workflow_id, event.ref)
        for run in runs
        for event in run.events
        if event.kind in _LINKS_TO_RUNS and event.ref
    }
    return sorted(named - held)


def derive_record(incident_key: str, runs: Iterable[RunHistory]) -> AuditRecord:
    """The record of `incident_key` from the histories of every run of it and its items."""
    record = AuditRecord(incident_key=incident_key)
    ordered = sorted(
        (run for run in runs if run.events),
        key=lambda run: (run.workflow_id, run.events[0].at, run.run_id),
    )
    links: dict[str, str] = {}
    for run in ordered:
        record.runs.append((run.workflow_id, run.run_id, run.workflow_type))
        reader = _Run(run, record)
        reader.links = links  # a ticket created in an earlier run keeps its link in the next
        reader.read({other.run_id for other in ordered if other.workflow_id == run.workflow_id})
    record.missing_runs = _missing_runs(ordered)
    record.commands.sort(key=_order)
    record.deadlines.sort(key=_order)
    record.tickets.sort(key=_order)
    record.reviews.sort(key=lambda e: e.at)
    record.verifications.sort(key=lambda e: (e.at, e.subject))
    record.acceptances.sort(key=lambda e: (e.at, e.subject))
    return record

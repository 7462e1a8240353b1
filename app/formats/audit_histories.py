"""Workflow histories in an audit bundle: where each run's JSON lives, and the events of a
history decoded for the record (domain/audit/record.py).

A history is kept as the Temporal JSON that `WorkflowHistory.to_json` writes, which
`WorkflowHistory.from_json` and `temporal workflow show --output json` read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any
from urllib.parse import quote, unquote

from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent as ProtoEvent
from temporalio.client import WorkflowHistory
from temporalio.converter import PayloadConverter

from domain.audit.events import EventKind, HistoryEvent, RunHistory

FOLDER = "histories"

_CLOSED = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: EventKind.COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: EventKind.FAILED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: EventKind.CANCELED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: EventKind.TIMED_OUT,
}


class HistoryFileError(Exception):
    """A history file that cannot be read; the message names it."""


def history_path(workflow_id: str, run_id: str) -> str:
    """histories/<workflow id, percent-encoded>/<run id>.json: one folder per workflow."""
    return f"{FOLDER}/{quote(workflow_id, safe='')}/{quote(run_id, safe='')}.json"


def parse_path(path: str) -> tuple[str, str] | None:
    """(workflow id, run id) of a history file's path, or None for another file."""
    parts = path.split("/")
    if len(parts) != 3 or parts[0] != FOLDER or not parts[2].endswith(".json"):
        return None
    return unquote(parts[1]), unquote(parts[2].removesuffix(".json"))


def history_json(history: WorkflowHistory) -> bytes:
    return (history.to_json() + "\n").encode()


def load_history(path: str, data: bytes) -> WorkflowHistory:
    where = parse_path(path)
    if where is None:
        raise HistoryFileError(f"{path}: not a history file's path")
    try:
        history = WorkflowHistory.from_json(where[0], data.decode())
    except (ValueError, UnicodeDecodeError) as error:
        raise HistoryFileError(f"{path}: not a Temporal history in JSON ({error})") from None
    if not history.events:
        raise HistoryFileError(f"{path}: the history holds no events")
    return history


def _decode(converter: PayloadConverter, payloads: Sequence[Payload]) -> list[Any]:
    values = []
    for payload in payloads:
        try:
            [value] = converter.from_payloads([payload], None)
        except Exception:  # an encoding this converter does not read: named, not guessed
            encoding = payload.metadata.get("encoding", b"").decode(errors="replace")
            value = f"<payload in {encoding or 'an unknown encoding'}>"
        values.append(value)
    return values


def _failure(failure: Failure) -> str:
    return failure.message or failure.cause.message or "failed"


def _event(converter: PayloadConverter, event: ProtoEvent) -> HistoryEvent | None:
    def made(kind: EventKind, **fields: Any) -> HistoryEvent:
        at = event.event_time.ToDatetime(tzinfo=UTC)
        return HistoryEvent(event_id=event.event_id, at=at, kind=kind, **fields)

    kind = event.event_type
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
        a = event.workflow_execution_started_event_attributes
        return made(
            EventKind.STARTED,
            name=a.workflow_type.name,
            ref=a.continued_execution_run_id or None,
            identity=a.identity or None,
            data=_decode(converter, a.input.payloads),
        )
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
        run = event.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
        return made(EventKind.CONTINUED_AS_NEW, ref=run)
    if kind in _CLOSED:
        return made(_CLOSED[kind])
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
        t = event.workflow_execution_terminated_event_attributes
        return made(EventKind.TERMINATED, identity=t.identity or None, failure=t.reason)
    if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
        f = event.workflow_task_failed_event_attributes
        if f.cause != WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW:
            return None
        return made(
            EventKind.RESET,
            identity=f.identity or None,
            ref=f.new_run_id,
            data={"base_run_id": f.base_run_id},
            failure=_failure(f.failure),
        )
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED:
        admitted = event.workflow_execution_update_admitted_event_attributes.request
        return made(
            EventKind.UPDATE_ADMITTED,
            name=admitted.input.name,
            ref=admitted.meta.update_id,
            identity=admitted.meta.identity or None,
            data=_decode(converter, admitted.input.args.payloads),
        )
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
        accepted = event.workflow_execution_update_accepted_event_attributes
        request = accepted.accepted_request
        if not request.HasField("input"):
            # Admitted first (an update a reset reapplied): the request is in that event.
            return made(EventKind.UPDATE_ACCEPTED, ref=accepted.protocol_instance_id)
        return made(
            EventKind.UPDATE_ACCEPTED,
            name=request.input.name,
            ref=accepted.protocol_instance_id or request.meta.update_id,
            identity=request.meta.identity or None,
            data=_decode(converter, request.input.args.payloads),
        )
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED:
        r = event.workflow_execution_update_rejected_event_attributes
        return made(
            EventKind.UPDATE_REJECTED,
            name=r.rejected_request.input.name,
            ref=r.rejected_request.meta.update_id,
            identity=r.rejected_request.meta.identity or None,
            data=_decode(converter, r.rejected_request.input.args.payloads),
            failure=_failure(r.failure),
        )
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
        c = event.workflow_execution_update_completed_event_attributes
        if c.outcome.HasField("failure"):
            return made(
                EventKind.UPDATE_COMPLETED,
                ref=c.meta.update_id,
                failure=_failure(c.outcome.failure),
            )
        return made(
            EventKind.UPDATE_COMPLETED,
            ref=c.meta.update_id,
            data=_decode(converter, c.outcome.success.payloads),
        )
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
        s = event.workflow_execution_signaled_event_attributes
        return made(
            EventKind.SIGNALED,
            name=s.signal_name,
            identity=s.identity or None,
            data=_decode(converter, s.input.payloads),
        )
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        scheduled = event.activity_task_scheduled_event_attributes
        return made(
            EventKind.ACTIVITY_SCHEDULED,
            name=scheduled.activity_type.name,
            data=_decode(converter, scheduled.input.payloads),
        )
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
        d = event.activity_task_completed_event_attributes
        return made(
            EventKind.ACTIVITY_COMPLETED,
            ref=str(d.scheduled_event_id),
            data=_decode(converter, d.result.payloads),
        )
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
        x = event.activity_task_failed_event_attributes
        return made(
            EventKind.ACTIVITY_FAILED, ref=str(x.scheduled_event_id), failure=_failure(x.failure)
        )
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
        o = event.activity_task_timed_out_event_attributes
        return made(
            EventKind.ACTIVITY_FAILED, ref=str(o.scheduled_event_id), failure=_failure(o.failure)
        )
    if kind == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
        i = event.start_child_workflow_execution_initiated_event_attributes
        return made(EventKind.CHILD_INITIATED, name=i.workflow_type.name, ref=i.workflow_id)
    return None


def run_history(history: WorkflowHistory, run_id: str, converter: PayloadConverter) -> RunHistory:
    """The events of one run that the record reads, their payloads decoded."""
    started = history.events[0].workflow_execution_started_event_attributes
    events = [e for e in (_event(converter, event) for event in history.events) if e is not None]
    return RunHistory(
        workflow_id=history.workflow_id,
        run_id=run_id,
        workflow_type=started.workflow_type.name,
        events=events,
    )

"""A bundle's histories replayed on the installed workflow code, and where one diverges.

The SDK's Replayer says that a history does not replay and why, not at which event; a history
that fails is replayed again cut short at workflow task boundaries (a bisection, a few replays
of that history only) to find the first workflow task whose recorded commands the code no
longer makes, and its events are named.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import Replayer

# The SDK wraps core's message ("[TMPRL1100] Nondeterminism error: ...") in a Rust debug print.
_CORE_MESSAGE = re.compile(r'message: "(.*?)", source')
_SHOWN_EVENTS = 20


@dataclass
class Replayed:
    count: int
    problems: list[str]


def _reason(failure: Exception) -> str:
    text = str(failure)
    found = _CORE_MESSAGE.search(text)
    return found.group(1).replace("\\'", "'") if found else text


def _event(event: HistoryEvent) -> str:
    name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_").lower()
    if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        name += f" {event.activity_task_scheduled_event_attributes.activity_type.name}"
    elif event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
        name += f" {event.start_child_workflow_execution_initiated_event_attributes.workflow_id}"
    return f"{event.event_id} {name}"


async def _fails(replayer: Replayer, history: WorkflowHistory, length: int) -> bool:
    prefix = WorkflowHistory(history.workflow_id, history.events[:length])
    result = await replayer.replay_workflow(prefix, raise_on_replay_failure=False)
    return result.replay_failure is not None


async def _where(replayer: Replayer, history: WorkflowHistory) -> str:
    """The first workflow task whose recorded commands the code does not make, and its events."""
    events = history.events
    # Cut just before each workflow task is scheduled: the prefix ends with the commands the
    # previous task recorded, as a running workflow's history does.
    cuts = [
        index
        for index, event in enumerate(events)
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED and index > 0
    ] + [len(events)]
    low, high = 0, len(cuts) - 1
    while low < high:
        middle = (low + high) // 2
        if await _fails(replayer, history, cuts[middle]):
            high = middle
        else:
            low = middle + 1
    cut = cuts[low]
    completed = [
        index
        for index in range(cut)
        if events[index].event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    ]
    if not completed:
        return "in its first workflow task"
    start = completed[-1]
    recorded = [_event(event) for event in events[start + 1 : cut]]
    if len(recorded) > _SHOWN_EVENTS:
        recorded[_SHOWN_EVENTS:] = [f"{len(recorded) - _SHOWN_EVENTS} more"]
    return (
        f"at the workflow task completed at event {events[start].event_id}, which recorded "
        f"{'; '.join(recorded) or 'no command'}"
    )


async def replay_histories(
    loaded: Sequence[tuple[str, WorkflowHistory]],
    workflows: Sequence[type],
    converter: DataConverter,
) -> Replayed:
    """Replay every (path, history); a problem per history that does not replay, naming its
    path, its workflow, the event where it diverges and the SDK's reason."""
    replayer = Replayer(workflows=list(workflows), data_converter=converter)

    async def histories() -> AsyncIterator[WorkflowHistory]:
        for _, history in loaded:
            yield history

    failed: list[tuple[str, WorkflowHistory, Exception]] = []
    paths = iter(path for path, _ in loaded)
    count = 0
    async with replayer.workflow_replay_iterator(histories()) as results:
        async for result in results:
            path = next(paths)
            count += 1
            if result.replay_failure is not None:
                failed.append((path, result.history, result.replay_failure))
    problems = [
        f"{path}: workflow {history.workflow_id} does not replay on the installed code "
        f"{await _where(replayer, history)}: {_reason(failure)}"
        for path, history, failure in failed
    ]
    return Replayed(count=count, problems=problems)

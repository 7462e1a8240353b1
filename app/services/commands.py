"""Commands to a workflow (its Updates): sent under a stable id, waited for with backoff, and
answered with what is known of them: applied, refused, or not known yet.

The id (`command id`) is the command's name and the caller's key for the request (the API's
`Idempotency-Key`, or one the CLI draws per invocation): Temporal keeps one Update per id in a
run, so sending it again attaches to the first instead of applying it twice.

A command no worker has taken is not lost and not refused: the server holds it until a worker
takes the workflow's next task (or restarts first). Such a command, and one whose worker has
not answered within COMMAND_WAIT, is `CommandPending`: the API answers 202 and the CLI exits
4, both naming the command id and how to ask for its outcome.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError, RPCStatusCode

from app.services.workers import NoWorker, unless_absent

# How long a command is waited for before its outcome is called unknown (a busy worker takes
# its time; the answer must still reach an HTTP client that waits 30 s).
COMMAND_WAIT = timedelta(seconds=20)
# One attempt's RPC deadline; the next attempt attaches to the same Update.
ATTEMPT = timedelta(seconds=5)
FIRST_PAUSE, LONGEST_PAUSE = 0.2, 2.0
# How long asking for an earlier command's outcome may wait for it.
OUTCOME_WAIT = timedelta(seconds=2)
KEY_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,100}")


class CommandPending(Exception):
    """Sent, and not applied yet (no worker has taken it, or it has not answered in time):
    the message says why; `command_id` names it, and `subject` (the incident key or the item
    id) where, for asking its outcome later."""

    def __init__(self, message: str, *, command_id: str, subject: str) -> None:
        super().__init__(message)
        self.command_id = command_id
        self.subject = subject


class UnknownCommand(Exception):
    """No command with this id on the workflow: refused by its validator (which leaves no
    trace), lost in a server restart before a worker took it, or never sent."""


class Pending(BaseModel):
    """The API's 202 answer: the command was sent, its outcome is not known yet."""

    command: str
    command_id: str
    detail: str
    outcome: str


def command_id(name: str, key: str | None = None) -> str:
    """The Update id of command `name` for a request: `name:key`, or a fresh key. ValueError
    for a key that is not 1-100 letters, digits or ._:-"""
    if key is None:
        return f"{name}:{uuid.uuid4().hex}"
    if not KEY_PATTERN.fullmatch(key):
        raise ValueError(
            "an Idempotency-Key is 1 to 100 letters, digits, dots, dashes, underscores or "
            "colons, e.g. a UUID"
        )
    return f"{name}:{key}"


async def send(
    client: Client,
    workflow_id: str,
    name: str,
    payload: BaseModel,
    *,
    result_type: type[Any],
    update_id: str,
    subject: str,
    absent: Callable[[], Awaitable[str | None]],
) -> Any:
    """Run Update `name` under `update_id` on `subject`'s workflow and return its answer.
    Raises the SDK's WorkflowUpdateFailedError when the workflow refuses it, RPCError for the
    server's own failures, and CommandPending when its outcome is not known within
    COMMAND_WAIT.

    `absent()` says why no worker serves the workflow's task queue (None when one may)."""
    handle = client.get_workflow_handle(workflow_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + COMMAND_WAIT.total_seconds()
    pause = FIRST_PAUSE
    while True:
        remaining = deadline - loop.time()
        attempt = handle.execute_update(
            name,
            payload,
            id=update_id,
            result_type=result_type,
            rpc_timeout=timedelta(seconds=max(0.5, min(ATTEMPT.total_seconds(), remaining))),
        )
        try:
            return await unless_absent(attempt, absent)
        except NoWorker as error:
            raise CommandPending(
                f"{name} is sent but not applied yet: {error}. It is applied when a worker "
                "takes it (unless the Temporal server restarts first)",
                command_id=update_id,
                subject=subject,
            ) from None
        except WorkflowUpdateFailedError:
            raise
        except (WorkflowUpdateRPCTimeoutOrCancelledError, RPCError) as error:
            if isinstance(error, RPCError) and error.status not in _NOT_YET:
                raise
        if loop.time() + pause >= deadline:
            raise CommandPending(
                f"{name} is sent, but the worker has not answered within "
                f"{int(COMMAND_WAIT.total_seconds())}s (it may be busy)",
                command_id=update_id,
                subject=subject,
            )
        await asyncio.sleep(pause)
        pause = min(pause * 2, LONGEST_PAUSE)


async def outcome(
    client: Client, workflow_id: str, update_id: str, *, result_type: type[Any], subject: str
) -> Any:
    """The answer of an earlier command: its result once applied; WorkflowUpdateFailedError
    when it failed; CommandPending while it waits; UnknownCommand when the workflow has none
    by that id."""
    update = client.get_workflow_handle(workflow_id).get_update_handle(
        update_id, result_type=result_type
    )
    try:
        return await update.result(rpc_timeout=OUTCOME_WAIT)
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        raise CommandPending(
            f"{update_id} is not applied yet", command_id=update_id, subject=subject
        ) from None
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise UnknownCommand(
                f"no command {update_id} on {workflow_id}: it was refused when it was sent, "
                "lost in a Temporal restart before a worker took it, or never sent; send it "
                "again"
            ) from None
        if error.status in _NOT_YET:
            raise CommandPending(
                f"{update_id} is not applied yet", command_id=update_id, subject=subject
            ) from None
        raise


# What an attempt fails with while the worker has not answered: the client's own deadline
# (DEADLINE_EXCEEDED, CANCELLED) or the server's "no poller seen" (FAILED_PRECONDITION).
_NOT_YET = (
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.CANCELLED,
    RPCStatusCode.FAILED_PRECONDITION,
)

"""The ticket activities against a local tracker in tmp_path, in Temporal's ActivityEnvironment."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import LogCapture
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import tickets as tickets_module
from activities.tickets import TicketActivities
from domain.action_item import TicketStatus
from domain.tickets import (
    CommentOnTicket,
    EnsureTicket,
    TicketChange,
    TicketDraft,
    UpdateTicket,
)
from integrations.local import LocalTracker
from integrations.registry import TrackerRegistry
from settings import Settings

DUE = datetime(2026, 12, 15, 17, 0, tzinfo=UTC)
WORKFLOW_ID = "incident/INC-1/action/2"


@pytest.fixture
def activities(tmp_path: Path) -> TicketActivities:
    return TicketActivities(TrackerRegistry(Settings(home=tmp_path)))


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The activities' log events; their own logger, so other tests' logging set-up is moot."""
    capture = LogCapture()
    monkeypatch.setattr(tickets_module, "log", structlog.wrap_logger(None, processors=[capture]))
    return capture.entries


@pytest.fixture
def local(tmp_path: Path) -> LocalTracker:
    return LocalTracker.configured(Settings(home=tmp_path))


def ensure_request(target: str = "local") -> EnsureTicket:
    return EnsureTicket(
        target=target,
        draft=TicketDraft(
            idempotency_key=WORKFLOW_ID,
            title="Alert on checkout error rate",
            body="Success: the alert fires within 2 minutes.",
            labels=["afteraction"],
            assignee="alice",
            due_at=DUE,
        ),
    )


def test_ensure_ticket_creates_once(
    activities: TicketActivities, local: LocalTracker, logs: list[Any]
) -> None:
    env = ActivityEnvironment()
    first = env.run(activities.ensure_ticket, ensure_request())
    again = env.run(activities.ensure_ticket, ensure_request())

    assert first == again
    assert (first.ref.target, first.ref.key, first.idempotency_key) == (
        "local",
        "LOCAL-1",
        WORKFLOW_ID,
    )
    assert [t.ref.key for t in local.tickets()] == ["LOCAL-1"]
    assert [(e["event"], e["target"], e["key"]) for e in logs] == [
        ("ticket.created", "local", "LOCAL-1"),
        ("ticket.found", "local", "LOCAL-1"),
    ]


def test_comment_on_ticket(
    activities: TicketActivities, local: LocalTracker, logs: list[Any]
) -> None:
    env = ActivityEnvironment()
    key = env.run(activities.ensure_ticket, ensure_request()).ref.key
    request = CommentOnTicket(
        target="local", key=key, text="@alice due in 2 days", idempotency_key="reminder/1"
    )

    logs.clear()
    assert env.run(activities.comment_on_ticket, request) is None
    env.run(activities.comment_on_ticket, request)

    assert [c.text for c in local.comments(key)] == ["@alice due in 2 days"]
    assert logs[0]["event"] == "ticket.commented"
    assert (logs[0]["target"], logs[0]["key"]) == ("local", key)


def test_update_ticket(activities: TicketActivities, local: LocalTracker) -> None:
    env = ActivityEnvironment()
    key = env.run(activities.ensure_ticket, ensure_request()).ref.key
    change = TicketChange(assignee="bob", add_labels=["overdue"])

    ticket = env.run(activities.update_ticket, UpdateTicket(target="local", key=key, change=change))

    assert (ticket.assignee, ticket.labels, ticket.status) == (
        "bob",
        ["afteraction", "overdue"],
        TicketStatus.OPEN,
    )
    assert local.get("local", key) == ticket


@pytest.mark.parametrize(
    ("name", "request_", "message"),
    [
        (
            "update_ticket",
            UpdateTicket(target="local", key="LOCAL-7", change=TicketChange(assignee="bob")),
            "no ticket LOCAL-7",
        ),
        (
            "comment_on_ticket",
            CommentOnTicket(target="local", key="LOCAL-7", text="hi", idempotency_key="x"),
            "no ticket LOCAL-7",
        ),
        (
            "ensure_ticket",
            ensure_request("github:acme/checkout"),
            "github tracker is not configured yet",
        ),
        ("ensure_ticket", ensure_request("trello:x"), "unknown tracker target 'trello:x'"),
    ],
)
def test_refusals_are_not_retryable(
    activities: TicketActivities, name: str, request_: Any, message: str
) -> None:
    with pytest.raises(ApplicationError, match=message) as error:
        ActivityEnvironment().run(getattr(activities, name), request_)
    assert error.value.type == "TrackerRefused"
    assert error.value.non_retryable is True


def test_an_unusable_file_is_retryable(tmp_path: Path) -> None:
    (tmp_path / "home").write_text("a file where the state folder should be")
    activities = TicketActivities(TrackerRegistry(Settings(home=tmp_path / "home")))

    with pytest.raises(ApplicationError, match="the local tracker's database is unusable") as error:
        ActivityEnvironment().run(activities.ensure_ticket, ensure_request())
    assert error.value.type == "TrackerUnavailable"
    assert error.value.non_retryable is False

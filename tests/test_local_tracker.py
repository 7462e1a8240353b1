"""The local tracker on the store, on SQLite and on PostgreSQL: idempotent creation (also
across processes and engines), comments, changes."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from domain.action_item import TicketStatus
from domain.tickets import TicketChange, TicketDraft
from integrations.local import LocalTracker
from integrations.registry import TrackerRegistry
from integrations.tracker import TrackerError
from settings import Settings
from store import Store, open_store
from store.database import create_store_engine
from store.local_tickets import LocalTickets

DUE = datetime(2026, 12, 15, 17, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves, so 'before' and 'after' never share a microsecond."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 1) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def draft(key: str = "incident/INC-1/action/1", **fields: object) -> TicketDraft:
    values: dict[str, object] = {
        "idempotency_key": key,
        "title": "Alert on checkout error rate",
        "body": "Success: the alert fires within 2 minutes of a 1% error rate.",
        "labels": ["afteraction", "sev2"],
        "assignee": "alice",
        "due_at": DUE,
        **fields,
    }
    return TicketDraft.model_validate(values)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tracker(database_url: str, clock: Clock) -> LocalTracker:
    return LocalTracker(open_store(database_url), clock=clock)


def count(tracker: LocalTracker) -> int:
    return len(tracker.tickets())


def test_ensure_ticket_twice_is_one_ticket(tracker: LocalTracker) -> None:
    first = tracker.ensure_ticket("local", draft())
    second = tracker.ensure_ticket("local", draft(title="a retry may carry another title"))

    assert first.ref.key == second.ref.key == "LOCAL-1"
    assert second == first
    assert first.status is TicketStatus.OPEN
    assert first.idempotency_key == "incident/INC-1/action/1"
    assert first.labels == ["afteraction", "sev2"]
    assert (first.assignee, first.due_at) == ("alice", DUE)
    assert tracker.ensure("local", draft())[1] is False
    assert tracker.ensure_ticket("local", draft("incident/INC-1/action/2")).ref.key == "LOCAL-2"
    assert count(tracker) == 2


def test_concurrent_ensure_ticket_makes_exactly_one_row(database_url: str) -> None:
    open_store(database_url)  # migrated once, as a process does at start
    barrier = threading.Barrier(8)
    results: list[tuple[str, bool]] = []
    errors: list[BaseException] = []

    def ensure() -> None:
        # An engine per thread, like separate worker processes sharing the database.
        tracker = LocalTracker(Store(create_store_engine(database_url)))
        barrier.wait()
        try:
            ticket, created = tracker.ensure("local", draft())
            results.append((ticket.ref.key, created))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=ensure) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert {key for key, _ in results} == {"LOCAL-1"}
    assert sum(created for _, created in results) == 1
    assert count(LocalTracker(open_store(database_url))) == 1


def test_concurrent_ensure_ticket_on_one_tracker(tracker: LocalTracker) -> None:
    barrier = threading.Barrier(8)
    keys: list[str] = []

    def ensure() -> None:
        barrier.wait()
        keys.append(tracker.ensure_ticket("local", draft()).ref.key)

    threads = [threading.Thread(target=ensure) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert keys == ["LOCAL-1"] * 8
    assert count(tracker) == 1


def test_comment_is_idempotent_per_ticket(tracker: LocalTracker, clock: Clock) -> None:
    one = tracker.ensure_ticket("local", draft()).ref.key
    two = tracker.ensure_ticket("local", draft("incident/INC-1/action/2")).ref.key

    at = clock.advance()
    tracker.comment("local", one, "@alice due in 2 days", idempotency_key="reminder/1")
    clock.advance()
    tracker.comment("local", one, "@alice due in 2 days (retry)", idempotency_key="reminder/1")
    tracker.comment("local", two, "@bob due in 2 days", idempotency_key="reminder/1")

    comments = tracker.comments(one)
    assert [(c.ticket_key, c.idempotency_key, c.text, c.at) for c in comments] == [
        (one, "reminder/1", "@alice due in 2 days", at)
    ]
    assert [c.text for c in tracker.comments(two)] == ["@bob due in 2 days"]
    # A comment is a change: updated_at moves, but not for the duplicate.
    assert tracker.get("local", one).updated_at == at
    detail = tracker.detail(one)
    assert detail.comments == comments
    assert detail.body.startswith("Success:")


def test_update_changes_due_assignee_and_adds_labels(tracker: LocalTracker, clock: Clock) -> None:
    key = tracker.ensure_ticket("local", draft()).ref.key
    at = clock.advance()
    new_due = DUE + timedelta(days=7)

    ticket = tracker.update(
        "local",
        key,
        TicketChange(due_at=new_due, assignee="bob", add_labels=["overdue", "sev2", "overdue"]),
    )

    assert (ticket.due_at, ticket.assignee) == (new_due, "bob")
    assert ticket.labels == ["afteraction", "sev2", "overdue"]
    assert ticket.updated_at == at
    assert tracker.get("local", key) == ticket

    clock.advance()
    unchanged = tracker.update("local", key, TicketChange(add_labels=["overdue"]))
    assert unchanged == ticket, "a change that changes nothing does not move updated_at"


def test_close_and_reopen(tracker: LocalTracker, clock: Clock) -> None:
    key = tracker.ensure_ticket("local", draft()).ref.key

    closed_at = clock.advance()
    closed = tracker.close("local", key)
    assert (closed.status, closed.updated_at) == (TicketStatus.CLOSED, closed_at)
    clock.advance()
    assert tracker.close("local", key) == closed, "closing a closed ticket changes nothing"
    assert [t.ref.key for t in tracker.tickets(status=TicketStatus.CLOSED)] == [key]
    assert tracker.tickets(status=TicketStatus.OPEN) == []

    reopened_at = clock.advance()
    reopened = tracker.reopen("local", key)
    assert (reopened.status, reopened.updated_at) == (TicketStatus.OPEN, reopened_at)
    assert tracker.get("local", key) == reopened


def test_changed_since(tracker: LocalTracker, clock: Clock) -> None:
    early = tracker.ensure_ticket("local", draft("incident/INC-1/action/1")).ref.key
    late = tracker.ensure_ticket("local", draft("incident/INC-1/action/2")).ref.key
    commented = tracker.ensure_ticket("local", draft("incident/INC-1/action/3")).ref.key
    tracker.create("opened by hand")
    since = clock.advance()

    assert tracker.changed_since("local", since) == []
    clock.advance()
    tracker.close("local", late)
    tracker.comment("local", commented, "still open?", idempotency_key="stalled/1")
    tracker.update("local", tracker.tickets()[-1].ref.key, TicketChange(assignee="carol"))

    changed = tracker.changed_since("local", since)
    assert [t.ref.key for t in changed] == [late, commented], "hand-made tickets are not ours"
    assert changed[0].status is TicketStatus.CLOSED
    assert early not in [t.ref.key for t in changed]
    assert [t.ref.key for t in tracker.changed_since("local", since - timedelta(hours=1))] == [
        early,
        late,
        commented,
    ]


def test_hand_made_ticket_has_no_idempotency_key(tracker: LocalTracker) -> None:
    ticket = tracker.create("Rotate the certificate", labels=["ops"])
    assert (ticket.ref.key, ticket.idempotency_key, ticket.labels) == ("LOCAL-1", None, ["ops"])


def test_unknown_key_is_refused_by_name(tracker: LocalTracker) -> None:
    tracker.ensure_ticket("local", draft())
    for call in (
        lambda: tracker.get("local", "LOCAL-99"),
        lambda: tracker.close("local", "LOCAL-99"),
        lambda: tracker.update("local", "LOCAL-99", TicketChange(assignee="bob")),
        lambda: tracker.comment("local", "LOCAL-99", "hi", idempotency_key="x"),
        lambda: tracker.comments("LOCAL-99"),
    ):
        with pytest.raises(TrackerError, match="no ticket LOCAL-99 in the local tracker") as error:
            call()
        assert error.value.retryable is False
    with pytest.raises(TrackerError, match="no ticket PROJ-1") as error:
        tracker.get("local", "PROJ-1")
    assert error.value.retryable is False


@pytest.mark.parametrize("target", ["github:acme/checkout", "jira:OPS", "LOCAL", ""])
def test_wrong_target_is_refused(tracker: LocalTracker, target: str) -> None:
    with pytest.raises(TrackerError, match=f"serves the target 'local' only, not '{target}'") as e:
        tracker.ensure_ticket(target, draft())
    assert e.value.retryable is False
    assert tracker.tickets() == []


def test_registry(tmp_path: Path) -> None:
    registry = TrackerRegistry(Settings(home=tmp_path / "home"))
    assert not (tmp_path / "home").exists(), "nothing is created before it is used"
    local = registry.for_target("local")
    assert local is registry.for_target("local")
    assert isinstance(local, LocalTracker)
    assert local.store.url == f"sqlite:///{tmp_path / 'home' / 'afteraction.db'}"

    with pytest.raises(TrackerError, match="AFTERACTION_GITHUB_TOKEN") as error:
        registry.for_target("github:acme/checkout")
    assert error.value.retryable is False
    assert "github tracker is not configured yet" in str(error.value)
    with pytest.raises(TrackerError, match="AFTERACTION_JIRA_URL") as error:
        registry.for_target("jira:OPS")
    assert error.value.retryable is False
    for target in ("gitlab:acme/x", "github:", "jira", "Local"):
        with pytest.raises(TrackerError, match="expected local, github:owner/repo or jira:PROJECT"):
            registry.for_target(target)


def test_insert_that_loses_the_race_returns_the_winner(
    tracker: LocalTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    winner = tracker.ensure_ticket("local", draft())
    lookups = iter([None])  # the first look-up misses, as if the winner were not there yet
    real = LocalTickets._by_idempotency_key
    monkeypatch.setattr(
        LocalTickets,
        "_by_idempotency_key",
        staticmethod(lambda session, key: next(lookups, None) or real(session, key)),
    )

    assert tracker.ensure("local", draft()) == (winner, False)
    assert count(tracker) == 1


ENSURE_IN_A_PROCESS = """
import sys
from datetime import UTC, datetime
from domain.tickets import TicketDraft
from integrations.local import LocalTracker
from store import open_store
draft = TicketDraft(idempotency_key="incident/INC-1/action/1", title="t", body="b",
                    due_at=datetime(2026, 12, 1, tzinfo=UTC))
print(LocalTracker(open_store(sys.argv[1])).ensure_ticket("local", draft).ref.key)
"""


def test_processes_opening_a_new_database_at_once_share_one_ticket(database_url: str) -> None:
    """The worker, the API and `afteraction tickets` may be the first to open (and migrate) a
    new database together."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", ENSURE_IN_A_PROCESS, database_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    results = [process.communicate(timeout=60) for process in processes]
    assert [process.returncode for process in processes] == [0] * 6, results
    assert {out.strip() for out, _ in results} == {"LOCAL-1"}
    assert count(LocalTracker(open_store(database_url))) == 1

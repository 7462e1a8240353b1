"""The GitHub tracker adapter with the real PyGithub client against the GitHub emulator."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.tickets import TicketActivities
from domain.action_item import TicketStatus
from domain.tickets import CommentOnTicket, EnsureTicket, TicketChange, TicketDraft, UpdateTicket
from integrations import ticket_markers
from integrations.github import GitHubTracker
from integrations.rate_limits import WriteBudget
from integrations.registry import TrackerRegistry
from integrations.ticket_markers import comment_marker
from integrations.tracker import TrackerError
from settings import Settings
from tests.emulators.github import GitHubEmulator, Issue, github_serving
from tests.helpers import FakeClock, eventually_sync

REPO = "acme/payments"
TARGET = f"github:{REPO}"
TOKEN = "ghp_emulatorTokenDoNotLeak0123456789"
KEY = "incident/INC-261127-7KQ2/action/2"
DUE = datetime(2026, 12, 15, 17, 0, tzinfo=UTC)
CREATE = "POST /repos/{owner}/{repo}/issues"
LIST = "GET /repos/{owner}/{repo}/issues"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator(clock: FakeClock) -> Iterator[GitHubEmulator]:
    with github_serving(REPO, token=TOKEN, clock=clock) as emulator:
        yield emulator
        assert emulator.request_errors == []


@pytest.fixture
def tracker(emulator: GitHubEmulator) -> Iterator[GitHubTracker]:
    gh = GitHubTracker(SecretStr(TOKEN), emulator.base_url, timeout=5)
    yield gh
    gh.shutdown()


def draft(key: str = KEY, **overrides: object) -> TicketDraft:
    fields: dict[str, object] = {
        "idempotency_key": key,
        "title": "[INC-261127-7KQ2] Add a circuit breaker to the payments client",
        "body": "Incident: INC-261127-7KQ2\nOwning team: payments\nSuccess: p99 < 300 ms",
        "labels": ["afteraction", "mitigate", "sev2"],
        "assignee": "alice",
        "due_at": DUE,
    }
    fields.update(overrides)
    return TicketDraft.model_validate(fields)


def refused(error: pytest.ExceptionInfo[TrackerError]) -> str:
    message = str(error.value)
    assert TOKEN not in message
    return message


# ------------------------------------------------------------------------------ ensure


def test_ensure_creates_one_issue_with_labels_marker_and_assignee(
    emulator: GitHubEmulator, tracker: GitHubTracker
) -> None:
    first, created = tracker.ensure(TARGET, draft())
    again, created_again = tracker.ensure(TARGET, draft())

    assert (created, created_again) == (True, False)
    assert first == again
    assert first.ref.key == f"{REPO}#1"
    assert first.ref.url == f"{emulator.origin}/{REPO}/issues/1"
    assert first.idempotency_key == KEY
    assert first.status is TicketStatus.OPEN
    assert first.assignee == "alice"
    assert first.due_at == DUE
    assert first.updated_at.tzinfo is not None
    issues = emulator.repo(REPO).issues
    assert list(issues) == [1]
    issue = issues[1]
    assert issue.labels == [
        "afteraction",
        "mitigate",
        "sev2",
        "afteraction-key:INC-261127-7KQ2-2",
        "due:2026-12-15",
    ]
    assert issue.assignees == ["alice"]
    assert issue.body is not None
    assert ticket_markers.key_from_text(issue.body) == KEY
    assert ticket_markers.marker(KEY) in issue.body
    assert "Due: 2026-12-15 17:00 UTC" in issue.body
    assert issue.body.startswith("Incident: INC-261127-7KQ2")
    assert emulator.counts[CREATE] == 1
    # A look-up is one listing call; no repository fetch, no search.
    assert emulator.counts["GET /repos/{owner}/{repo}/issues"] == 2
    assert emulator.counts["GET /repos/{owner}/{repo}"] == 0
    assert not any("search" in name for name in emulator.counts)


def test_a_retry_after_a_create_whose_answer_was_lost_finds_the_issue(
    emulator: GitHubEmulator, tracker: GitHubTracker
) -> None:
    """The worker dies after GitHub created the issue but before the activity completed: the
    retry's look-up finds it (labels listing, not search), so there is still one issue."""
    emulator.slow_next(1, 2.0, method="POST", path="/repos/{owner}/{repo}/issues")
    hasty = GitHubTracker(SecretStr(TOKEN), emulator.base_url, timeout=1)
    try:
        with pytest.raises(TrackerError) as error:
            hasty.ensure_ticket(TARGET, draft())
    finally:
        hasty.shutdown()
    assert error.value.retryable
    refused(error)
    # The server finishes the create the client gave up on.
    issues = eventually_sync(lambda: list(emulator.repo(REPO).issues), bool, timeout=10)
    assert issues == [1]
    ticket, created = tracker.ensure(TARGET, draft())
    assert not created
    assert ticket.ref.key == f"{REPO}#1"
    assert emulator.counts[CREATE] == 1
    assert list(emulator.repo(REPO).issues) == [1]


def test_ensure_after_create_without_completion_creates_nothing_more(
    emulator: GitHubEmulator, tracker: GitHubTracker
) -> None:
    created = tracker.ensure_ticket(TARGET, draft())
    for _ in range(3):  # the activity retried after the create, e.g. a worker restart
        assert tracker.ensure_ticket(TARGET, draft()) == created
    assert emulator.counts[CREATE] == 1


def test_ensure_finds_a_closed_issue_and_keeps_items_apart(
    emulator: GitHubEmulator, tracker: GitHubTracker
) -> None:
    one = tracker.ensure_ticket(TARGET, draft())
    tracker.close(TARGET, one.ref.key)
    other = tracker.ensure_ticket(TARGET, draft("incident/INC-261127-7KQ2/action/23"))
    assert other.ref.key == f"{REPO}#2"
    again = tracker.ensure_ticket(TARGET, draft())
    assert again.ref.key == one.ref.key and again.status is TicketStatus.CLOSED
    assert emulator.counts[CREATE] == 2


def test_ensure_without_assignee_and_a_malformed_key(
    emulator: GitHubEmulator, tracker: GitHubTracker
) -> None:
    ticket = tracker.ensure_ticket(TARGET, draft(assignee=None))
    assert ticket.assignee is None
    with pytest.raises(TrackerError, match="not an action item's idempotency key") as error:
        tracker.ensure_ticket(TARGET, draft("INC-1-2"))
    assert not error.value.retryable
    with pytest.raises(TrackerError, match="expected github:owner/repo"):
        tracker.ensure_ticket("github:acme", draft())


# ------------------------------------------------------------------------------ after creation


def test_comment_is_idempotent(emulator: GitHubEmulator, tracker: GitHubTracker) -> None:
    ticket = tracker.ensure_ticket(TARGET, draft())
    for _ in range(2):
        tracker.comment(
            TARGET, ticket.ref.key, "Reminder: due in 3 days @alice", idempotency_key="remind-1"
        )
    tracker.comment(TARGET, ticket.ref.key, "Escalated to @bob", idempotency_key="escalate-1")
    comments = emulator.repo(REPO).issues[1].comments
    assert [c.body for c in comments] == [
        f"Reminder: due in 3 days @alice\n\n{comment_marker('remind-1')}",
        f"Escalated to @bob\n\n{comment_marker('escalate-1')}",
    ]
    assert emulator.counts["POST /repos/{owner}/{repo}/issues/{issue_number}/comments"] == 2


def test_a_first_attempt_comments_in_one_call_and_a_retry_looks_first(
    emulator: GitHubEmulator, tracker: GitHubTracker
) -> None:
    ticket = tracker.ensure_ticket(TARGET, draft())
    emulator.reset_counts()
    tracker.comment(TARGET, ticket.ref.key, "verified", idempotency_key="v", may_exist=False)
    assert dict(emulator.counts) == {"POST /repos/{owner}/{repo}/issues/{issue_number}/comments": 1}
    emulator.reset_counts()
    tracker.comment(TARGET, ticket.ref.key, "verified", idempotency_key="v", may_exist=True)
    assert dict(emulator.counts) == {"GET /repos/{owner}/{repo}/issues/{issue_number}/comments": 1}
    assert len(emulator.repo(REPO).issues[1].comments) == 1


def test_update_moves_the_due_label_and_line_adds_labels_and_assigns(
    emulator: GitHubEmulator, tracker: GitHubTracker
) -> None:
    ticket = tracker.ensure_ticket(TARGET, draft())
    later = datetime(2027, 1, 10, 12, 30, tzinfo=UTC)
    updated = tracker.update(
        TARGET,
        ticket.ref.key,
        TicketChange(due_at=later, add_labels=["escalated:lead", "sev2"], assignee="bob"),
    )
    assert updated.due_at == later
    assert updated.assignee == "bob"
    issue = emulator.repo(REPO).issues[1]
    assert [label for label in issue.labels if label.startswith("due:")] == ["due:2027-01-10"]
    assert "escalated:lead" in issue.labels and issue.labels.count("sev2") == 1
    assert issue.body is not None
    assert "Due: 2027-01-10 12:30 UTC" in issue.body and "2026-12-15" not in issue.body
    assert ticket_markers.key_from_text(issue.body) == KEY
    assert issue.assignees == ["bob"]
    assert tracker.get(TARGET, ticket.ref.key) == updated

    emulator.reset_counts()
    assert tracker.update(TARGET, ticket.ref.key, TicketChange(add_labels=["sev2"])) == updated
    assert emulator.counts["PATCH /repos/{owner}/{repo}/issues/{issue_number}"] == 0


def test_close_and_reopen(emulator: GitHubEmulator, tracker: GitHubTracker) -> None:
    ticket = tracker.ensure_ticket(TARGET, draft())
    emulator.reset_counts()
    closed = tracker.close(TARGET, ticket.ref.key)
    assert closed.status is TicketStatus.CLOSED
    issue = emulator.repo(REPO).issues[1]
    assert (issue.state, issue.state_reason) == ("closed", "completed")
    assert dict(emulator.counts) == {"PATCH /repos/{owner}/{repo}/issues/{issue_number}": 1}
    reopened = tracker.reopen(TARGET, "#1")
    assert reopened.status is TicketStatus.OPEN
    assert issue.state == "open"
    assert tracker.get(TARGET, "1").status is TicketStatus.OPEN


def test_changed_since_lists_only_tickets_updated_since(
    emulator: GitHubEmulator, tracker: GitHubTracker, clock: FakeClock
) -> None:
    old = tracker.ensure_ticket(TARGET, draft("incident/INC-261127-7KQ2/action/1"))
    clock.advance(60)
    fresh = tracker.ensure_ticket(TARGET, draft())
    clock.advance(60)
    since = clock.now
    clock.advance(60)
    tracker.close(TARGET, fresh.ref.key)
    # An issue labelled afteraction by hand (no key) is not a ticket of ours.
    emulator.repo(REPO).issues[3] = Issue(
        id=99,
        number=3,
        title="hand made",
        body=None,
        user="carol",
        created_at=clock.now,
        updated_at=clock.now,
        labels=["afteraction"],
    )
    emulator.reset_counts()

    changed = tracker.changed_since(TARGET, since)

    assert [(t.ref.key, t.status) for t in changed] == [(fresh.ref.key, TicketStatus.CLOSED)]
    assert old.ref.key not in {t.ref.key for t in changed}
    assert dict(emulator.counts) == {"GET /repos/{owner}/{repo}/issues": 1}
    assert tracker.changed_since(TARGET, clock.now + timedelta(minutes=1)) == []


def test_changed_since_pages_through_the_listing(
    emulator: GitHubEmulator, tracker: GitHubTracker, clock: FakeClock
) -> None:
    # More issues than the worker's write budget allows in a minute: seed them with a bigger one.
    seeder = GitHubTracker(
        SecretStr(TOKEN), emulator.base_url, timeout=5, writes=WriteBudget(per_minute=1000)
    )
    for n in range(1, 121):
        seeder.ensure_ticket(TARGET, draft(f"incident/INC-261127-7KQ2/action/{n}"))
    seeder.shutdown()
    emulator.reset_counts()
    changed = tracker.changed_since(TARGET, clock.now - timedelta(days=1))
    assert len(changed) == 120
    assert dict(emulator.counts) == {"GET /repos/{owner}/{repo}/issues": 2}  # 100 a page


# ------------------------------------------------------------------------------ errors


def test_wrong_token_is_refused_naming_the_variable(emulator: GitHubEmulator) -> None:
    wrong = GitHubTracker(SecretStr("ghp_wrongTokenAlsoSecret"), emulator.base_url, timeout=5)
    with pytest.raises(TrackerError) as error:
        wrong.ensure_ticket(TARGET, draft())
    message = refused(error)
    assert not error.value.retryable
    assert "401" in message and "AFTERACTION_GITHUB_TOKEN" in message and REPO in message
    assert "ghp_wrongTokenAlsoSecret" not in message


def test_unknown_repository_is_refused_naming_it(
    emulator: GitHubEmulator, tracker: GitHubTracker
) -> None:
    with pytest.raises(TrackerError) as error:
        tracker.ensure_ticket("github:acme/nope", draft())
    message = refused(error)
    assert not error.value.retryable
    assert "acme/nope" in message and "404" in message and "github:owner/repo" in message
    with pytest.raises(TrackerError) as missing_issue:
        tracker.get(TARGET, f"{REPO}#42")
    assert "no issue #42 in acme/payments" in refused(missing_issue)
    assert not missing_issue.value.retryable
    with pytest.raises(TrackerError, match="is not an issue of acme/payments"):
        tracker.get(TARGET, "acme/other#1")


def test_validation_failure_is_refused_with_githubs_errors(
    emulator: GitHubEmulator, tracker: GitHubTracker
) -> None:
    with pytest.raises(TrackerError) as error:
        tracker.ensure_ticket(TARGET, draft(title="   "))
    message = refused(error)
    assert not error.value.retryable
    assert "422 Validation Failed" in message and "field=title" in message
    assert "code=missing_field" in message and REPO in message


def test_forbidden_without_rate_limit_headers_names_the_permission(
    emulator: GitHubEmulator, tracker: GitHubTracker
) -> None:
    emulator.fail_next(status=403, message="Resource not accessible by personal access token")
    with pytest.raises(TrackerError) as error:
        tracker.ensure_ticket(TARGET, draft())
    message = refused(error)
    assert not error.value.retryable
    assert REPO in message and "Issues read and write" in message
    assert "AFTERACTION_GITHUB_TOKEN" in message


@pytest.mark.parametrize("status", [403, 429])
def test_rate_limit_is_retryable_and_names_the_reset(
    emulator: GitHubEmulator, tracker: GitHubTracker, status: int
) -> None:
    reset = emulator.rate_limit_next(status=status, reset_in=120, method="POST")
    with pytest.raises(TrackerError) as error:
        tracker.ensure_ticket(TARGET, draft())
    message = refused(error)
    assert error.value.retryable
    expected = datetime.fromtimestamp(reset, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f"resets at {expected}" in message and REPO in message
    assert error.value.retry_after is not None
    assert 115 <= error.value.retry_after.total_seconds() <= 121
    assert emulator.counts[CREATE] == 1
    assert emulator.repo(REPO).issues == {}
    # Until the reset, a retry is refused without calling GitHub, and says how long to wait.
    emulator.reset_counts()
    with pytest.raises(TrackerError) as again:
        tracker.ensure_ticket(TARGET, draft())
    assert again.value.retryable and again.value.retry_after is not None
    assert again.value.retry_after.total_seconds() > 100
    assert emulator.counts == {}


def test_no_call_is_made_before_the_reset_and_the_retry_then_creates_once(
    emulator: GitHubEmulator, tracker: GitHubTracker
) -> None:
    reset = emulator.rate_limit_next(status=403, reset_in=2, method="POST")
    with pytest.raises(TrackerError):
        tracker.ensure_ticket(TARGET, draft())
    refused_at = emulator.requests[-1].at
    # A short wait is spent in the attempt (under the activity's timeout) instead of failing it.
    tracker.ensure_ticket(TARGET, draft())
    later = [request for request in emulator.requests if request.at > refused_at]
    assert later and all(request.at >= reset for request in later)
    assert list(emulator.repo(REPO).issues) == [1]


def test_a_used_up_primary_limit_closes_the_gate_until_its_reset() -> None:
    with GitHubEmulator(token=TOKEN, rate_limit=3) as emulator:
        emulator.add_repo(REPO)
        gh = GitHubTracker(SecretStr(TOKEN), emulator.base_url, timeout=5)
        gh.ensure_ticket(TARGET, draft())  # list + create: 2 of 3
        gh.get(TARGET, f"{REPO}#1")  # the third: x-ratelimit-remaining is now 0
        emulator.reset_counts()
        with pytest.raises(TrackerError) as error:
            gh.get(TARGET, f"{REPO}#1")
        assert error.value.retryable and error.value.retry_after is not None
        assert emulator.counts == {}
        assert gh.gate.closed_until == emulator.rate_reset
        gh.shutdown()


def test_retry_after_is_preferred_to_the_reset_epoch(
    emulator: GitHubEmulator, tracker: GitHubTracker
) -> None:
    emulator.rate_limit_next(
        status=403, reset_in=3600, retry_after=30, secondary=True, method="POST"
    )
    with pytest.raises(TrackerError) as error:
        tracker.ensure_ticket(TARGET, draft())
    assert error.value.retryable
    assert "(in 30s)" in refused(error)


def test_server_errors_and_timeouts_are_retryable_and_never_duplicate(
    emulator: GitHubEmulator, tracker: GitHubTracker
) -> None:
    emulator.fail_next(status=502, method="POST")
    with pytest.raises(TrackerError) as error:
        tracker.ensure_ticket(TARGET, draft())
    assert error.value.retryable and "502" in refused(error)
    assert emulator.counts[CREATE] == 1  # PyGithub did not re-send the POST by itself
    emulator.fail_next(status=503, path="/repos/{owner}/{repo}/issues", method="GET")
    with pytest.raises(TrackerError) as unavailable:
        tracker.ensure_ticket(TARGET, draft())
    assert unavailable.value.retryable
    ticket = tracker.ensure_ticket(TARGET, draft())
    assert ticket.ref.key == f"{REPO}#1" and emulator.counts[CREATE] == 2
    assert list(emulator.repo(REPO).issues) == [1]


# ------------------------------------------------------------------------------ registry


def test_registry_serves_github_targets_only_with_a_token(
    emulator: GitHubEmulator, tmp_path: Path
) -> None:
    bare = TrackerRegistry(Settings(home=tmp_path, github_token=None))
    with pytest.raises(TrackerError, match="AFTERACTION_GITHUB_TOKEN") as error:
        bare.for_target(TARGET)
    assert not error.value.retryable
    registry = TrackerRegistry(
        Settings(home=tmp_path, github_token=SecretStr(TOKEN), github_base_url=emulator.base_url)
    )
    adapter = registry.for_target(TARGET)
    assert isinstance(adapter, GitHubTracker)
    assert registry.for_target("github:acme/other") is adapter
    with pytest.raises(TrackerError, match="expected github:owner/repo"):
        registry.for_target("github:nope")


def test_settings_read_the_github_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFTERACTION_GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("AFTERACTION_GITHUB_BASE_URL", "https://ghe.example.com/api/v3/")
    settings = Settings(_env_file=None)
    assert settings.github_token is not None
    assert settings.github_token.get_secret_value() == TOKEN
    assert settings.github_base_url == "https://ghe.example.com/api/v3"
    assert TOKEN not in repr(settings)
    monkeypatch.delenv("AFTERACTION_GITHUB_TOKEN")
    monkeypatch.delenv("AFTERACTION_GITHUB_BASE_URL")
    defaults = Settings(_env_file=None)
    assert (defaults.github_token, defaults.github_base_url) == (None, "https://api.github.com")


# ------------------------------------------------------------------------------ activities


def test_ticket_activities_through_the_registry(emulator: GitHubEmulator, tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path, github_token=SecretStr(TOKEN), github_base_url=emulator.base_url
    )
    activities = TicketActivities(TrackerRegistry(settings))
    env = ActivityEnvironment()
    request = EnsureTicket(target=TARGET, draft=draft(), may_exist=False)  # an item's first

    first = env.run(activities.ensure_ticket, request)
    assert emulator.counts[LIST] == 0, "a first attempt creates without a look-up"
    again = ActivityEnvironment()  # the server retrying an attempt that died after creating
    again.info = dataclasses.replace(again.info, attempt=2)
    assert again.run(activities.ensure_ticket, request) == first
    assert first.ref.key == f"{REPO}#1"
    assert emulator.counts[CREATE] == 1

    comment = CommentOnTicket(
        target=TARGET, key=first.ref.key, text="Due in 3 days @alice", idempotency_key="r1"
    )
    env.run(activities.comment_on_ticket, comment)
    retry = ActivityEnvironment()  # the server retrying an attempt that died after writing
    retry.info = dataclasses.replace(retry.info, attempt=2)
    retry.run(activities.comment_on_ticket, comment)
    assert len(emulator.repo(REPO).issues[1].comments) == 1

    later = DUE + timedelta(days=7)
    update = UpdateTicket(target=TARGET, key=first.ref.key, change=TicketChange(due_at=later))
    assert env.run(activities.update_ticket, update).due_at == later

    emulator.fail_next(status=502)
    with pytest.raises(ApplicationError) as outage:
        env.run(activities.ensure_ticket, request)
    assert outage.value.type == "TrackerUnavailable" and not outage.value.non_retryable

    missing = EnsureTicket(target="github:acme/missing", draft=draft())
    with pytest.raises(ApplicationError) as refusal:
        env.run(activities.ensure_ticket, missing)
    assert refusal.value.type == "TrackerRefused" and refusal.value.non_retryable
    assert "acme/missing" in str(refusal.value) and TOKEN not in str(refusal.value)


def test_a_spent_primary_limit_is_refused_by_github_and_then_not_called() -> None:
    with GitHubEmulator(token=TOKEN, rate_limit=2) as emulator:
        emulator.add_repo(REPO)
        emulator.rate_reset = int(time.time()) + 600
        gh = GitHubTracker(SecretStr(TOKEN), emulator.base_url, timeout=5)
        emulator.rate_used = 2  # spent by someone else with the same token
        with pytest.raises(TrackerError) as error:
            gh.ensure_ticket(TARGET, draft())
        assert error.value.retryable and "rate limit" in refused(error)
        assert emulator.counts == {"GET /repos/{owner}/{repo}/issues": 1}
        with pytest.raises(TrackerError):
            gh.ensure_ticket(TARGET, draft())
        assert sum(emulator.counts.values()) == 1
        gh.shutdown()

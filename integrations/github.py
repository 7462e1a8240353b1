"""The GitHub Issues tracker: action items as issues in `github:owner/repo`, through PyGithub.

A ticket's key is `owner/repo#N` (the form the webhooks in app/http/webhooks.py route by). The issue
carries its action item's idempotency key twice (integrations/ticket_markers.py): a hidden
marker in the body and an `afteraction-key:KEY-N` label. GitHub has no due-date field, so the
due date is a `due:YYYY-MM-DD` label and a line of the body; the workflow stays the source of
truth.

Exactly-once creation: `ensure_ticket` lists the repository's issues carrying the key's label
(the issues listing is consistent; the search index is not) and creates the issue only when
there is none. PyGithub's own retries are off (`retry=None`): its default retry re-sends a POST
that got a 5xx, which can create an issue twice. Retrying is the activity retry policy's job,
and every retry starts with the look-up again. PyGithub's per-call sleeps
(`seconds_between_requests` / `seconds_between_writes`) are off too: the secondary write limit
is a budget shared by the worker, not a sleep per call (integrations/rate_limits.py): every
content-creating call (create, comment, edit) takes a slot of one `WriteBudget` per token.

Every GitHub failure becomes a `TrackerError`: refusals that a retry cannot fix (401, 403
without rate-limit headers, 404, 410, 422) are non-retryable and say what to fix; rate limits
(429, 403 with `x-ratelimit-remaining: 0` or `retry-after`), 5xx, timeouts and connection errors
are retryable and, for rate limits, say when the limit resets. A rate limit also closes the
tracker's `RateLimitGate` until the reset time (`retry-after`, else `x-ratelimit-reset`, else a
minute for a secondary limit that names no time, as GitHub's documentation asks), and so does a
successful answer reporting `x-ratelimit-remaining: 0`: no call is made before the reset, and
the refused attempt's `retry_after` tells Temporal when to try again.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from github import Auth, Github
from github.GithubException import (
    BadCredentialsException,
    GithubException,
    RateLimitExceededException,
)
from github.Issue import Issue
from github.Repository import Repository
from pydantic import SecretStr

from domain.action_item import TicketRef, TicketStatus
from domain.tickets import NOT_PLANNED
from integrations import ticket_markers
from integrations.rate_limits import RateLimitGate, WriteBudget
from integrations.tracker import Ticket, TicketChange, TicketDraft, TrackerError
from settings import ENV_PREFIX

PREFIX = "github:"
TICKET_LABEL = "afteraction"
DUE_LABEL_PREFIX = "due:"
PER_PAGE = 100  # the most GitHub pages: fewer calls for listings
# GitHub: after a secondary rate limit that names no reset time, "wait for at least one minute".
SECONDARY_LIMIT_WAIT = 60

TOKEN_VARIABLE = f"{ENV_PREFIX}GITHUB_TOKEN"
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_KEY = re.compile(r"^(?:(?P<repo>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+))?#?(?P<number>[1-9][0-9]*)$")
_DUE_LABEL = re.compile(rf"^{re.escape(DUE_LABEL_PREFIX)}(\d{{4}}-\d{{2}}-\d{{2}})$", re.IGNORECASE)
# The due line written into the body: "Due: 2026-12-15 17:00 UTC".
_DUE_LINE = re.compile(
    r"^Due: (?P<date>\d{4}-\d{2}-\d{2})(?: (?P<time>\d{2}:\d{2}) UTC)?[ \t]*$", re.MULTILINE
)


def repository_of(target: str) -> str:
    """'github:owner/repo' -> 'owner/repo' (non-retryable TrackerError for anything else)."""
    name = target.removeprefix(PREFIX) if target.startswith(PREFIX) else ""
    if not _REPO.match(name):
        raise TrackerError(
            f"{target!r} is not a GitHub tracker target; expected github:owner/repo "
            "(e.g. github:acme/payments in the routing file)",
            retryable=False,
        )
    return name


def ticket_key(repo: str, number: int) -> str:
    return f"{repo}#{number}"


def due_label(due_at: datetime) -> str:
    return f"{DUE_LABEL_PREFIX}{_utc(due_at):%Y-%m-%d}"


def due_line(due_at: datetime) -> str:
    return f"Due: {_utc(due_at):%Y-%m-%d %H:%M} UTC"


def _utc(moment: datetime) -> datetime:
    """Aware UTC; a naive datetime means UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _unique(labels: Iterable[str]) -> list[str]:
    """Labels in order without case-insensitive repeats (GitHub compares names that way)."""
    seen: set[str] = set()
    kept: list[str] = []
    for label in labels:
        if label.lower() not in seen:
            seen.add(label.lower())
            kept.append(label)
    return kept


def _due_at(labels: list[str], body: str | None) -> datetime | None:
    """The due date from the `due:` label; the body's due line adds the time of day when it
    names the same date (a label edited by hand wins over the body)."""
    dates = [m[1] for m in map(_DUE_LABEL.match, labels) if m is not None]
    line = _DUE_LINE.search(body or "")
    if not dates:
        return None
    day = datetime.strptime(dates[0], "%Y-%m-%d").replace(tzinfo=UTC)
    if line is not None and line["date"] == dates[0] and line["time"]:
        hours, minutes = map(int, line["time"].split(":"))
        return day + timedelta(hours=hours, minutes=minutes)
    return day


def _body_with_due(body: str, due_at: datetime) -> str:
    if _DUE_LINE.search(body):
        return _DUE_LINE.sub(due_line(due_at), body, count=1)
    return f"{body.rstrip()}\n\n{due_line(due_at)}"


class GitHubTracker:
    """A `Tracker` over GitHub Issues (GitHub.com or GitHub Enterprise) for any number of
    `github:owner/repo` targets, with one token. Safe to share between threads."""

    def __init__(
        self,
        token: SecretStr,
        base_url: str,
        *,
        timeout: int = 30,
        writes: WriteBudget | None = None,
        gate: RateLimitGate | None = None,
    ) -> None:
        self.base_url = base_url
        self.writes = writes or WriteBudget(what="GitHub")
        self.gate = gate or RateLimitGate(what="GitHub")
        self._github = Github(
            base_url=base_url,
            auth=Auth.Token(token.get_secret_value()),
            timeout=timeout,
            retry=None,
            per_page=PER_PAGE,
            seconds_between_requests=None,
            seconds_between_writes=None,
            lazy=True,  # a repository or issue object costs no call until it is read
        )
        self._repos: dict[str, Repository] = {}
        self._lock = threading.Lock()

    def shutdown(self) -> None:
        """Close PyGithub's connections (the tracker is unusable afterwards)."""
        self._github.close()

    # The Tracker protocol.

    def ensure_ticket(self, target: str, draft: TicketDraft, *, may_exist: bool = True) -> Ticket:
        return self.ensure(target, draft, may_exist=may_exist)[0]

    def get(self, target: str, key: str) -> Ticket:
        repo_name, number = self._locate(target, key)
        with self._errors(repo_name, f"reading issue #{number}", number=number):
            issue = self._repo(repo_name).get_issue(number)
            return self._ticket(target, repo_name, issue)

    def update(self, target: str, key: str, change: TicketChange) -> Ticket:
        repo_name, number = self._locate(target, key)
        with self._errors(repo_name, f"updating issue #{number}", number=number):
            issue = self._repo(repo_name).get_issue(number)
            labels = [label.name for label in issue.labels]
            new_labels = _unique([*labels, *change.add_labels])
            body = issue.body or ""
            new_body = body
            if change.due_at is not None:
                new_labels = [label for label in new_labels if not _DUE_LABEL.match(label)]
                new_labels.append(due_label(change.due_at))
                new_body = _body_with_due(body, change.due_at)
            edits: dict[str, Any] = {}
            if [label.lower() for label in new_labels] != [label.lower() for label in labels]:
                edits["labels"] = new_labels
            if new_body != body:
                edits["body"] = new_body
            assignees = [user.login.lower() for user in issue.assignees]
            if change.assignee is not None and assignees != [change.assignee.lower()]:
                edits["assignees"] = [change.assignee]
            if change.close_as_not_planned and (
                issue.state != "closed" or issue.state_reason != NOT_PLANNED
            ):
                edits["state"], edits["state_reason"] = "closed", NOT_PLANNED
            if edits:
                self.writes.reserve()
                issue.edit(**edits)
            return self._ticket(target, repo_name, issue)

    def comment(
        self, target: str, key: str, text: str, *, idempotency_key: str, may_exist: bool = True
    ) -> None:
        """One call on a first attempt; a retry first lists the comments for the marker."""
        repo_name, number = self._locate(target, key)
        marker = ticket_markers.comment_marker(idempotency_key)
        with self._errors(repo_name, f"commenting on issue #{number}", number=number):
            issue = self._repo(repo_name).get_issue(number)
            if may_exist and any(marker in (c.body or "") for c in issue.get_comments()):
                return
            self.writes.reserve()
            issue.create_comment(f"{text.rstrip()}\n\n{marker}")

    def close(self, target: str, key: str) -> Ticket:
        return self._set_state(target, key, "closed")

    def reopen(self, target: str, key: str) -> Ticket:
        return self._set_state(target, key, "open")

    def changed_since(self, target: str, since: datetime) -> list[Ticket]:
        """Afteraction tickets updated at or after `since` (to the second; naive means UTC),
        from one paged listing of the issues labelled `afteraction`."""
        repo_name = repository_of(target)
        with self._errors(repo_name, "listing changed issues"):
            issues = self._repo(repo_name).get_issues(
                state="all",
                labels=[TICKET_LABEL],
                since=_utc(since),
                sort="updated",
                direction="asc",
            )
            tickets = [self._ticket(target, repo_name, issue) for issue in issues]
        return [ticket for ticket in tickets if ticket.idempotency_key is not None]

    # Beyond the protocol.

    def ensure(
        self, target: str, draft: TicketDraft, *, may_exist: bool = True
    ) -> tuple[Ticket, bool]:
        """`ensure_ticket`, also saying whether this call created the issue. With
        `may_exist=False` (a first attempt: nothing can have created it) the look-up is
        skipped, a call saved on every item."""
        repo_name = repository_of(target)
        try:
            label = ticket_markers.label_for(draft.idempotency_key)
            marker = ticket_markers.marker(draft.idempotency_key)
        except ValueError as error:
            raise TrackerError(str(error), retryable=False) from None
        with self._errors(repo_name, "looking up the action item's issue"):
            repo = self._repo(repo_name)
            found = (
                sorted(repo.get_issues(state="all", labels=[label]), key=lambda i: i.number)
                if may_exist
                else []
            )
            if found:
                return self._ticket(target, repo_name, found[0]), False
        with self._errors(repo_name, "creating the action item's issue"):
            body = f"{draft.body.rstrip()}\n\n{marker}\n{due_line(draft.due_at)}"
            labels = _unique([*draft.labels, label, due_label(draft.due_at)])
            extra: dict[str, Any] = {}
            if draft.assignee:
                extra["assignees"] = [draft.assignee]
            self.writes.reserve()
            issue = repo.create_issue(title=draft.title, body=body, labels=labels, **extra)
            return self._ticket(target, repo_name, issue), True

    # Internals.

    def _repo(self, name: str) -> Repository:
        with self._lock:
            repo = self._repos.get(name.lower())
            if repo is None:
                repo = self._repos[name.lower()] = self._github.get_repo(name)
            return repo

    def _locate(self, target: str, key: str) -> tuple[str, int]:
        repo_name = repository_of(target)
        match = _KEY.match(key.strip())
        if match is None or (match["repo"] and match["repo"].lower() != repo_name.lower()):
            raise TrackerError(
                f"{key!r} is not an issue of {repo_name}; expected {repo_name}#N",
                retryable=False,
            )
        return repo_name, int(match["number"])

    def _set_state(self, target: str, key: str, state: str) -> Ticket:
        repo_name, number = self._locate(target, key)
        verb = "closing" if state == "closed" else "reopening"
        with self._errors(repo_name, f"{verb} issue #{number}", number=number):
            issue = self._repo(repo_name).get_issue(number)
            self.writes.reserve()
            if state == "closed":
                issue.edit(state="closed", state_reason="completed")
            else:
                issue.edit(state="open")
            return self._ticket(target, repo_name, issue)

    @staticmethod
    def _ticket(target: str, repo_name: str, issue: Issue) -> Ticket:
        labels = [label.name for label in issue.labels]
        body = issue.body
        return Ticket(
            ref=TicketRef(
                target=target, key=ticket_key(repo_name, issue.number), url=issue.html_url
            ),
            title=issue.title,
            status=TicketStatus.CLOSED if issue.state == "closed" else TicketStatus.OPEN,
            labels=labels,
            assignee=issue.assignees[0].login if issue.assignees else None,
            due_at=_due_at(labels, body),
            idempotency_key=(
                ticket_markers.key_from_labels(labels) or ticket_markers.key_from_text(body)
            ),
            updated_at=_utc(issue.updated_at),
            resolution=issue.state_reason if issue.state == "closed" else None,
        )

    @contextlib.contextmanager
    def _errors(self, repo_name: str, action: str, *, number: int | None = None) -> Iterator[None]:
        self.gate.pass_through()
        try:
            yield
            self._note_remaining()
        except TrackerError:
            raise
        except GithubException as error:
            raise self._classify(error, repo_name, action, number) from None
        except requests.exceptions.RequestException as error:
            raise TrackerError(
                f"GitHub at {self.base_url} did not answer while {action} in {repo_name} "
                f"({type(error).__name__}); will retry",
                retryable=True,
            ) from None

    def _classify(
        self, error: GithubException, repo_name: str, action: str, number: int | None
    ) -> TrackerError:
        status = error.status
        headers = {str(k).lower(): str(v) for k, v in (error.headers or {}).items()}
        message = _github_message(error)
        where = f"while {action} in {repo_name}"
        if isinstance(error, BadCredentialsException) or status == 401:
            return TrackerError(
                f"GitHub refused the token (401 {message}) {where}: set {TOKEN_VARIABLE} to a "
                "valid token (fine-grained: Issues read and write on the repository; classic: "
                "the repo scope)",
                retryable=False,
            )
        if (
            status == 429
            or isinstance(error, RateLimitExceededException)
            or (
                status == 403
                and (
                    headers.get("x-ratelimit-remaining") == "0"
                    or "retry-after" in headers
                    or "secondary rate limit" in message.lower()
                )
            )
        ):
            reset = _reset_at(headers) or time.time() + SECONDARY_LIMIT_WAIT
            self.gate.close_until(reset)
            wait = max(reset - time.time(), 1.0)
            return TrackerError(
                f"GitHub rate limit reached ({status} {message}) {where}; the limit resets at "
                f"{datetime.fromtimestamp(reset, UTC):%Y-%m-%dT%H:%M:%SZ} (in {wait:.0f}s)",
                retryable=True,
                retry_after=timedelta(seconds=wait),
            )
        if status == 403:
            return TrackerError(
                f"GitHub refused {action} in {repo_name} (403 {message}): the token in "
                f"{TOKEN_VARIABLE} lacks permission there; it needs Issues read and write on "
                f"{repo_name} (classic token: the repo scope)",
                retryable=False,
            )
        if status == 404:
            if number is not None and self._repository_exists(repo_name):
                return TrackerError(
                    f"there is no issue #{number} in {repo_name} (404) {where}",
                    retryable=False,
                )
            return TrackerError(
                f"GitHub repository {repo_name} was not found (404) {where}: check the target "
                f"github:{repo_name} in the routing file (github:owner/repo) and that the token "
                f"in {TOKEN_VARIABLE} can see the repository",
                retryable=False,
            )
        if status == 410:
            return TrackerError(
                f"issues are disabled in {repo_name} (410 {message}) {where}: enable Issues in "
                "the repository's settings or route the team elsewhere",
                retryable=False,
            )
        if status == 422:
            return TrackerError(
                f"GitHub rejected the request (422 {message}{_error_details(error)}) {where}",
                retryable=False,
            )
        if status >= 500:
            return TrackerError(
                f"GitHub failed (HTTP {status} {message}) {where}; will retry", retryable=True
            )
        return TrackerError(f"GitHub refused (HTTP {status} {message}) {where}", retryable=False)

    def _note_remaining(self) -> None:
        """After a success: when the primary limit is used up, close the gate until its reset."""
        requester = self._github.requester
        remaining, _limit = requester.rate_limiting
        if remaining == 0 and requester.rate_limiting_resettime > time.time():
            self.gate.close_until(requester.rate_limiting_resettime)

    def _repository_exists(self, repo_name: str) -> bool:
        """After a 404 on an issue: is it the issue or the repository that is missing?"""
        try:
            self._github.get_repo(repo_name).full_name  # noqa: B018 - the read fetches it
        except GithubException:
            return False
        except requests.exceptions.RequestException:
            return True  # unknown: name the issue, the narrower claim
        return True


def _github_message(error: GithubException) -> str:
    data = error.data
    if isinstance(data, Mapping) and isinstance(data.get("message"), str):
        return str(data["message"])
    return error.message or "no message"


def _error_details(error: GithubException) -> str:
    data = error.data
    errors = data.get("errors") if isinstance(data, Mapping) else None
    if not isinstance(errors, list) or not errors:
        return ""
    parts: list[str] = []
    for item in errors:
        if isinstance(item, Mapping):
            fields = ", ".join(
                f"{name}={item[name]}"
                for name in ("resource", "field", "code", "message")
                if item.get(name)
            )
            parts.append(fields)
        else:
            parts.append(str(item))
    return ": " + "; ".join(parts)


def _reset_at(headers: Mapping[str, str]) -> float | None:
    """When the limit resets (epoch seconds), from retry-after (seconds from now, which GitHub
    says wins) or x-ratelimit-reset (epoch seconds); None when neither is given."""
    retry_after = headers.get("retry-after", "").strip()
    reset = headers.get("x-ratelimit-reset", "").strip()
    if retry_after.isdigit():
        return time.time() + int(retry_after)
    if reset.isdigit():
        return float(reset)
    return None

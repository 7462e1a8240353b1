"""An in-memory GitHub REST API (issues subset) that the real PyGithub client talks to over HTTP.

    emulator = GitHubEmulator()
    emulator.start()
    emulator.add_repo("acme/payments")
    gh = github.Github(base_url=emulator.base_url, auth=github.Auth.Token(emulator.token))

Every route is an operation of tests/contracts/github/openapi-issues-subset.json (see `ROUTES`),
and every response is validated against that description as it is sent: problems land in
`emulator.contract_errors` (and in the process-wide `tests.github_contract.RECORDER`).

Fault injection: `fail_next` (5xx), `rate_limit_next` (403/429 with x-ratelimit-remaining: 0,
x-ratelimit-reset and optionally retry-after), `delay` / `slow_next` (slow responses).
Request counts: `emulator.counts["POST /repos/{owner}/{repo}/issues"]`, `reset_counts()`.

Webhooks: after `send_webhooks_to(url, secret)`, every change sends the `issues` or
`issue_comment` delivery GitHub would, signed with X-Hub-Signature-256, whether an API call or a
person made it (`close_as`, `reopen_as`, `comment_as`, `label_as`: what someone does in GitHub's
UI; they are not API calls and are not counted). Each payload is checked against the webhook
schemas of the same OpenAPI description. `drop_next_webhooks(n)` loses deliveries.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from tests.emulators._http import EmulatedService, Fault, RecordedRequest, Reply, compile_routes
from tests.emulators.webhook_sender import Delivery, WebhookSender
from tests.github_contract import ContractChecker, checker

DOCS = "https://docs.github.com/rest"
API_VERSION = "2022-11-28"

Json = Any
Handler = Callable[["_Request"], "Reply"]


def _ts(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node_id(kind: str, ident: int) -> str:
    return base64.b64encode(f"0{len(kind)}:{kind}{ident}".encode()).decode()


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        doc: str = DOCS,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"message": message, "documentation_url": doc}
        if errors is not None:
            self.body["errors"] = errors
        if status >= 400 and status != 422:
            self.body["status"] = str(status)
        self.headers = headers or {}


@dataclass
class Label:
    id: int
    name: str
    color: str = "ededed"
    description: str | None = None
    default: bool = False


@dataclass
class Comment:
    id: int
    body: str
    user: str
    created_at: datetime
    updated_at: datetime


@dataclass
class Issue:
    id: int
    number: int
    title: str
    body: str | None
    user: str
    created_at: datetime
    updated_at: datetime
    state: str = "open"
    state_reason: str | None = None
    closed_at: datetime | None = None
    closed_by: str | None = None
    labels: list[str] = field(default_factory=list)
    assignees: list[str] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)


@dataclass
class Repo:
    id: int
    owner: str
    name: str
    created_at: datetime
    issues: dict[int, Issue] = field(default_factory=dict)
    labels: dict[str, Label] = field(default_factory=dict)  # keyed by lower-case name

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, str]
    params: dict[str, str]
    body: Json
    login: str

    @property
    def repo_name(self) -> str:
        return f"{self.params['owner']}/{self.params['repo']}"


_STATES = {"open", "closed", "all"}
_STATE_REASONS = {"completed", "not_planned", "reopened", "duplicate", None}


class GitHubEmulator(EmulatedService):
    """GitHub's issues REST API, in memory, over real HTTP on 127.0.0.1."""

    thread_name = "github-emulator"
    server_header = "GitHub.com"

    def __init__(
        self,
        *,
        token: str | None = "x",
        login: str = "afteraction-bot",
        prefix: str = "/api/v3",
        rate_limit: int = 5000,
        clock: Callable[[], datetime] | None = None,
        contract: ContractChecker | None = None,
    ) -> None:
        self.github_contract = contract if contract is not None else checker()
        super().__init__(self.github_contract)
        self.token = token  # None accepts any token (and none)
        self.login = login
        self.prefix = prefix.rstrip("/")
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.rate_limit = rate_limit
        self.rate_used = 0
        self.rate_reset = int(time.time()) + 3600
        self.repos: dict[str, Repo] = {}
        self._ids = 1000
        self.routes = compile_routes(
            self._route_table(), {"issue_number": r"\d+", "comment_id": r"\d+"}
        )
        self.webhooks = WebhookSender(
            event_header="X-GitHub-Event",
            delivery_header="X-GitHub-Delivery",
            signature_header="X-Hub-Signature-256",
            user_agent="GitHub-Hookshot/emulator",
            extra_headers={
                "X-GitHub-Hook-ID": "1",
                "X-GitHub-Hook-Installation-Target-Type": "repository",
            },
        )

    def stop(self) -> None:
        self.webhooks.stop()
        super().stop()

    @property
    def origin(self) -> str:
        assert self._origin is not None, "start() the emulator first"
        return self._origin

    @property
    def base_url(self) -> str:
        """What to pass as PyGithub's base_url (a GitHub Enterprise style /api/v3 prefix)."""
        return self.origin + self.prefix

    # ----------------------------------------------------------------------------- state
    def _next_id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids

    def add_repo(self, full_name: str) -> Repo:
        owner, name = full_name.split("/", 1)
        with self._lock:
            repo = Repo(id=self._next_id(), owner=owner, name=name, created_at=self.clock())
            self.repos[full_name.lower()] = repo
            return repo

    def repo(self, full_name: str) -> Repo:
        return self.repos[full_name.lower()]

    # ----------------------------------------------------------------------------- webhooks
    def send_webhooks_to(self, url: str, secret: str | None) -> None:
        """Send every later change to `url` as GitHub does, signed with `secret`."""
        self.webhooks.to(url, secret)

    def drop_next_webhooks(self, n: int = 1) -> None:
        self.webhooks.drop_next(n)

    @property
    def deliveries(self) -> list[Delivery]:
        return self.webhooks.deliveries

    def wait_for_webhooks(self, timeout: float = 10.0) -> None:
        self.webhooks.wait(timeout)

    def _emit(
        self,
        event: str,
        action: str,
        repo: Repo,
        issue: Issue,
        sender: str,
        **extra: Any,
    ) -> None:
        if self.webhooks.url is None:
            return  # nobody to tell
        # Webhook payloads carry a few fields the REST answers leave out.
        issue_json = self.issue_json(repo, issue)
        issue_json["reactions"] = _no_reactions(str(issue_json["url"]))
        if "comment" in extra:
            extra["comment"]["reactions"] = _no_reactions(str(extra["comment"]["url"]))
        payload: dict[str, Any] = {
            "action": action,
            "issue": issue_json,
            **extra,
            "repository": {**self.repo_json(repo), "has_downloads": True},
            "sender": self.user_json(sender),
        }
        for problem in self.github_contract.check_webhook(event, action, payload):
            self.contract_errors.append(f"webhook {event}.{action}: {problem}")
        self.webhooks.send(event, payload)

    def _emit_label_changes(self, repo: Repo, issue: Issue, before: list[str], sender: str) -> None:
        old = {name.lower() for name in before}
        new = {name.lower() for name in issue.labels}
        for name in issue.labels:
            if name.lower() not in old:
                label = self.label_json(repo, repo.labels[name.lower()])
                self._emit("issues", "labeled", repo, issue, sender, label=label)
        for name in before:
            if name.lower() not in new and name.lower() in repo.labels:
                label = self.label_json(repo, repo.labels[name.lower()])
                self._emit("issues", "unlabeled", repo, issue, sender, label=label)

    # What people do in GitHub's UI: no API call is counted, the webhooks are sent.
    def close_as(self, repo_name: str, number: int, *, by: str, reason: str = "completed") -> None:
        with self._lock:
            repo, issue = self.repo(repo_name), self.repo(repo_name).issues[number]
            if issue.state == "closed":
                return
            issue.state, issue.state_reason = "closed", reason
            issue.closed_at = issue.updated_at = self.clock()
            issue.closed_by = by
            self._emit("issues", "closed", repo, issue, by)

    def reopen_as(self, repo_name: str, number: int, *, by: str) -> None:
        with self._lock:
            repo, issue = self.repo(repo_name), self.repo(repo_name).issues[number]
            if issue.state == "open":
                return
            issue.state, issue.state_reason = "open", "reopened"
            issue.closed_at, issue.closed_by = None, None
            issue.updated_at = self.clock()
            self._emit("issues", "reopened", repo, issue, by)

    def comment_as(self, repo_name: str, number: int, text: str, *, by: str) -> None:
        with self._lock:
            repo, issue = self.repo(repo_name), self.repo(repo_name).issues[number]
            now = self.clock()
            comment = Comment(self._next_id(), text, by, now, now)
            issue.comments.append(comment)
            issue.updated_at = now
            self._emit(
                "issue_comment",
                "created",
                repo,
                issue,
                by,
                comment=self.comment_json(repo, issue, comment),
            )

    def label_as(self, repo_name: str, number: int, label: str, *, by: str) -> None:
        with self._lock:
            repo, issue = self.repo(repo_name), self.repo(repo_name).issues[number]
            before = list(issue.labels)
            issue.labels = self._label_names(repo, [*issue.labels, label])
            issue.updated_at = self.clock()
            self._emit_label_changes(repo, issue, before, by)

    # ----------------------------------------------------------------------------- faults
    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 502,
        method: str | None = None,
        path: str | None = None,
        message: str = "Server Error",
    ) -> None:
        """The next n matching requests get a 5xx (or any status) with a GitHub error body."""
        body = {"message": message, "documentation_url": DOCS, "status": str(status)}
        self.add_fault(Fault(n, status, body, {}, method, path))

    def rate_limit_next(
        self,
        n: int = 1,
        *,
        status: int = 403,
        reset_in: float = 60.0,
        retry_after: int | None = None,
        secondary: bool = False,
        method: str | None = None,
        path: str | None = None,
    ) -> int:
        """The next n matching requests are refused as rate-limited; returns the reset epoch."""
        reset = int(time.time() + reset_in)
        if secondary:
            message = (
                "You have exceeded a secondary rate limit. Please wait a few minutes before "
                "you try again."
            )
            doc = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
        else:
            message = f"API rate limit exceeded for user ID {self._user_id(self.login)}."
            doc = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
        headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)}
        if retry_after is not None:
            headers["retry-after"] = str(retry_after)
        body = {"message": message, "documentation_url": doc}
        self.add_fault(Fault(n, status, body, headers, method, path))
        return reset

    # ----------------------------------------------------------------------------- serializers
    def _api(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _user_id(self, login: str) -> int:
        return 1 + sum(ord(c) for c in login) * 7919 % 10_000_000

    def user_json(self, login: str) -> dict[str, Any]:
        uid = self._user_id(login)
        url = self._api(f"/users/{login}")
        return {
            "login": login,
            "id": uid,
            "node_id": _node_id("User", uid),
            "avatar_url": f"{self.origin}/avatars/u/{uid}",
            "gravatar_id": "",
            "url": url,
            "html_url": f"{self.origin}/{login}",
            "followers_url": f"{url}/followers",
            "following_url": f"{url}/following{{/other_user}}",
            "gists_url": f"{url}/gists{{/gist_id}}",
            "starred_url": f"{url}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{url}/subscriptions",
            "organizations_url": f"{url}/orgs",
            "repos_url": f"{url}/repos",
            "events_url": f"{url}/events{{/privacy}}",
            "received_events_url": f"{url}/received_events",
            "type": "Bot" if login.endswith("-bot") else "User",
            "user_view_type": "public",
            "site_admin": False,
        }

    def label_json(self, repo: Repo, label: Label) -> dict[str, Any]:
        return {
            "id": label.id,
            "node_id": _node_id("Label", label.id),
            "url": self._api(f"/repos/{repo.full_name}/labels/{quote(label.name, safe='')}"),
            "name": label.name,
            "description": label.description,
            "color": label.color,
            "default": label.default,
        }

    def issue_json(self, repo: Repo, issue: Issue) -> dict[str, Any]:
        url = self._api(f"/repos/{repo.full_name}/issues/{issue.number}")
        labels = [self.label_json(repo, repo.labels[name.lower()]) for name in issue.labels]
        assignees = [self.user_json(login) for login in issue.assignees]
        return {
            "url": url,
            "repository_url": self._api(f"/repos/{repo.full_name}"),
            "labels_url": f"{url}/labels{{/name}}",
            "comments_url": f"{url}/comments",
            "events_url": f"{url}/events",
            "html_url": f"{self.origin}/{repo.full_name}/issues/{issue.number}",
            "timeline_url": f"{url}/timeline",
            "id": issue.id,
            "node_id": _node_id("Issue", issue.id),
            "number": issue.number,
            "title": issue.title,
            "user": self.user_json(issue.user),
            "labels": labels,
            "state": issue.state,
            "state_reason": issue.state_reason,
            "locked": False,
            "active_lock_reason": None,
            "assignee": assignees[0] if assignees else None,
            "assignees": assignees,
            "milestone": None,
            "comments": len(issue.comments),
            "created_at": _ts(issue.created_at),
            "updated_at": _ts(issue.updated_at),
            "closed_at": _ts(issue.closed_at),
            "closed_by": self.user_json(issue.closed_by) if issue.closed_by else None,
            "author_association": "OWNER" if issue.user == repo.owner else "CONTRIBUTOR",
            "body": issue.body,
            "performed_via_github_app": None,
        }

    def comment_json(self, repo: Repo, issue: Issue, comment: Comment) -> dict[str, Any]:
        return {
            "url": self._api(f"/repos/{repo.full_name}/issues/comments/{comment.id}"),
            "html_url": (
                f"{self.origin}/{repo.full_name}/issues/{issue.number}#issuecomment-{comment.id}"
            ),
            "issue_url": self._api(f"/repos/{repo.full_name}/issues/{issue.number}"),
            "id": comment.id,
            "node_id": _node_id("IssueComment", comment.id),
            "user": self.user_json(comment.user),
            "created_at": _ts(comment.created_at),
            "updated_at": _ts(comment.updated_at),
            "body": comment.body,
            "author_association": "CONTRIBUTOR",
            "performed_via_github_app": None,
        }

    def repo_json(self, repo: Repo) -> dict[str, Any]:
        api = self._api(f"/repos/{repo.full_name}")
        html = f"{self.origin}/{repo.full_name}"
        templated = {
            "archive_url": "/{archive_format}{/ref}",
            "assignees_url": "/assignees{/user}",
            "blobs_url": "/git/blobs{/sha}",
            "branches_url": "/branches{/branch}",
            "collaborators_url": "/collaborators{/collaborator}",
            "comments_url": "/comments{/number}",
            "commits_url": "/commits{/sha}",
            "compare_url": "/compare/{base}...{head}",
            "contents_url": "/contents/{+path}",
            "contributors_url": "/contributors",
            "deployments_url": "/deployments",
            "downloads_url": "/downloads",
            "events_url": "/events",
            "forks_url": "/forks",
            "git_commits_url": "/git/commits{/sha}",
            "git_refs_url": "/git/refs{/sha}",
            "git_tags_url": "/git/tags{/sha}",
            "hooks_url": "/hooks",
            "issue_comment_url": "/issues/comments{/number}",
            "issue_events_url": "/issues/events{/number}",
            "issues_url": "/issues{/number}",
            "keys_url": "/keys{/key_id}",
            "labels_url": "/labels{/name}",
            "languages_url": "/languages",
            "merges_url": "/merges",
            "milestones_url": "/milestones{/number}",
            "notifications_url": "/notifications{?since,all,participating}",
            "pulls_url": "/pulls{/number}",
            "releases_url": "/releases{/id}",
            "stargazers_url": "/stargazers",
            "statuses_url": "/statuses/{sha}",
            "subscribers_url": "/subscribers",
            "subscription_url": "/subscription",
            "tags_url": "/tags",
            "teams_url": "/teams",
            "trees_url": "/git/trees{/sha}",
        }
        open_count = sum(1 for i in repo.issues.values() if i.state == "open")
        body: dict[str, Any] = {key: api + suffix for key, suffix in templated.items()}
        body.update(
            {
                "id": repo.id,
                "node_id": _node_id("Repository", repo.id),
                "name": repo.name,
                "full_name": repo.full_name,
                "owner": self.user_json(repo.owner),
                "private": True,
                "html_url": html,
                "description": None,
                "fork": False,
                "url": api,
                "clone_url": f"{html}.git",
                "git_url": f"git://127.0.0.1/{repo.full_name}.git",
                "ssh_url": f"git@127.0.0.1:{repo.full_name}.git",
                "svn_url": html,
                "mirror_url": None,
                "homepage": None,
                "language": None,
                "size": 0,
                "default_branch": "main",
                "forks": 0,
                "forks_count": 0,
                "stargazers_count": 0,
                "watchers": 0,
                "watchers_count": 0,
                "open_issues": open_count,
                "open_issues_count": open_count,
                "has_issues": True,
                "has_projects": False,
                "has_wiki": False,
                "has_pages": False,
                "has_discussions": False,
                "archived": False,
                "disabled": False,
                "visibility": "private",
                "license": None,
                "pushed_at": _ts(repo.created_at),
                "created_at": _ts(repo.created_at),
                "updated_at": _ts(repo.created_at),
                "network_count": 0,
                "subscribers_count": 0,
                "permissions": {
                    "admin": False,
                    "maintain": False,
                    "push": True,
                    "triage": True,
                    "pull": True,
                },
            }
        )
        return body

    def rate_limit_json(self) -> dict[str, Any]:
        core = {
            "limit": self.rate_limit,
            "remaining": max(self.rate_limit - self.rate_used, 0),
            "reset": self.rate_reset,
            "used": self.rate_used,
        }
        search = {"limit": 30, "remaining": 30, "reset": int(time.time()) + 60, "used": 0}
        return {"resources": {"core": core, "search": search}, "rate": core}

    # ----------------------------------------------------------------------------- routes
    def _route_table(self) -> list[tuple[str, str, Handler]]:
        r = "/repos/{owner}/{repo}"
        i = r + "/issues/{issue_number}"
        return [
            ("GET", "/rate_limit", self._get_rate_limit),
            ("GET", "/user", self._get_user),
            ("GET", r, self._get_repo),
            ("GET", r + "/issues", self._list_issues),
            ("POST", r + "/issues", self._create_issue),
            ("GET", i, self._get_issue),
            ("PATCH", i, self._edit_issue),
            ("GET", i + "/comments", self._list_comments),
            ("POST", i + "/comments", self._create_comment),
            ("GET", i + "/labels", self._list_issue_labels),
            ("POST", i + "/labels", self._add_labels),
            ("PUT", i + "/labels", self._set_labels),
            ("DELETE", i + "/labels/{name}", self._remove_label),
            ("GET", r + "/labels", self._list_repo_labels),
            ("POST", r + "/labels", self._create_repo_label),
        ]

    def _find_repo(self, req: _Request) -> Repo:
        repo = self.repos.get(req.repo_name.lower())
        if repo is None:
            raise ApiError(404, "Not Found", doc=f"{DOCS}/repos/repos#get-a-repository")
        return repo

    def _find_issue(self, req: _Request) -> tuple[Repo, Issue]:
        repo = self._find_repo(req)
        issue = repo.issues.get(int(req.params["issue_number"]))
        if issue is None:
            raise ApiError(404, "Not Found", doc=f"{DOCS}/issues/issues#get-an-issue")
        return repo, issue

    def _ensure_label(self, repo: Repo, name: str) -> str:
        label = repo.labels.get(name.lower())
        if label is None:
            label = Label(id=self._next_id(), name=name)
            repo.labels[name.lower()] = label
        return label.name

    def _label_names(self, repo: Repo, value: Any, resource: str = "Issue") -> list[str]:
        if isinstance(value, dict) and "labels" in value:
            value = value["labels"]
        if not isinstance(value, list):
            raise _invalid(resource, "labels", "invalid", "labels must be an array")
        names: list[str] = []
        for item in value:
            name = item.get("name") if isinstance(item, dict) else item
            if not isinstance(name, str) or not name.strip():
                raise _invalid(resource, "labels", "invalid", f"invalid label: {item!r}")
            name = self._ensure_label(repo, name.strip())
            if name.lower() not in (n.lower() for n in names):
                names.append(name)
        return names

    def _assignees(self, body: dict[str, Any]) -> list[str] | None:
        if "assignees" in body:
            value = body["assignees"]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise _invalid("Issue", "assignees", "invalid", "assignees must be logins")
            return list(dict.fromkeys(value))
        if "assignee" in body:
            value = body["assignee"]
            if value is None:
                return []
            if not isinstance(value, str):
                raise _invalid("Issue", "assignee", "invalid", "assignee must be a login")
            return [value]
        return None

    def _get_rate_limit(self, req: _Request) -> Reply:
        return Reply(200, self.rate_limit_json())

    def _get_user(self, req: _Request) -> Reply:
        user = self.user_json(req.login)
        user.update(
            {
                "name": None,
                "company": None,
                "blog": "",
                "location": None,
                "email": None,
                "hireable": None,
                "bio": None,
                "public_repos": 0,
                "public_gists": 0,
                "followers": 0,
                "following": 0,
                "created_at": "2020-01-01T00:00:00Z",
                "updated_at": "2020-01-01T00:00:00Z",
            }
        )
        return Reply(200, user)

    def _get_repo(self, req: _Request) -> Reply:
        return Reply(200, self.repo_json(self._find_repo(req)))

    def _create_issue(self, req: _Request) -> Reply:
        repo = self._find_repo(req)
        body = _object_body(req.body)
        title = body.get("title")
        if title is None or (isinstance(title, str) and not title.strip()):
            raise _invalid("Issue", "title", "missing_field")
        if not isinstance(title, str | int):
            raise _invalid("Issue", "title", "invalid")
        text = body.get("body")
        if text is not None and not isinstance(text, str):
            raise _invalid("Issue", "body", "invalid")
        labels = self._label_names(repo, body.get("labels", []))
        now = self.clock()
        issue = Issue(
            id=self._next_id(),
            number=max(repo.issues, default=0) + 1,
            title=str(title),
            body=text,
            user=req.login,
            created_at=now,
            updated_at=now,
            labels=labels,
            assignees=self._assignees(body) or [],
        )
        repo.issues[issue.number] = issue
        self._emit("issues", "opened", repo, issue, req.login)
        location = self._api(f"/repos/{repo.full_name}/issues/{issue.number}")
        return Reply(201, self.issue_json(repo, issue), {"location": location})

    def _get_issue(self, req: _Request) -> Reply:
        repo, issue = self._find_issue(req)
        return Reply(200, self.issue_json(repo, issue))

    def _edit_issue(self, req: _Request) -> Reply:
        repo, issue = self._find_issue(req)
        body = _object_body(req.body)
        before = (issue.title, issue.body, list(issue.labels), issue.state)
        if "title" in body:
            if not isinstance(body["title"], str) or not body["title"].strip():
                raise _invalid("Issue", "title", "invalid")
            issue.title = body["title"]
        if "body" in body:
            if body["body"] is not None and not isinstance(body["body"], str):
                raise _invalid("Issue", "body", "invalid")
            issue.body = body["body"]
        if "labels" in body:
            issue.labels = self._label_names(repo, body["labels"])
        assignees = self._assignees(body)
        if assignees is not None:
            issue.assignees = assignees
        reason = body.get("state_reason")
        if reason not in _STATE_REASONS:
            raise _invalid("Issue", "state_reason", "invalid", f"invalid state_reason: {reason}")
        if "state" in body:
            state = body["state"]
            if state not in ("open", "closed"):
                raise _invalid("Issue", "state", "invalid", f"invalid state: {state!r}")
            if state == "closed" and issue.state != "closed":
                issue.state = "closed"
                issue.closed_at = self.clock()
                issue.closed_by = req.login
                issue.state_reason = reason or "completed"
            elif state == "open" and issue.state != "open":
                issue.state = "open"
                issue.closed_at = None
                issue.closed_by = None
                issue.state_reason = "reopened"
            elif reason is not None:
                issue.state_reason = reason
        issue.updated_at = self.clock()
        title, text, labels, state = before
        changes: dict[str, Any] = {}
        if issue.title != title:
            changes["title"] = {"from": title}
        if issue.body != text:
            changes["body"] = {"from": text or ""}
        if changes:
            self._emit("issues", "edited", repo, issue, req.login, changes=changes)
        self._emit_label_changes(repo, issue, labels, req.login)
        if issue.state != state:
            action = "closed" if issue.state == "closed" else "reopened"
            self._emit("issues", action, repo, issue, req.login)
        return Reply(200, self.issue_json(repo, issue))

    def _list_issues(self, req: _Request) -> Reply:
        repo = self._find_repo(req)
        q = req.query
        state = q.get("state", "open")
        if state not in _STATES:
            raise _invalid("Issue", "state", "invalid", f"invalid state: {state}")
        wanted = [name.strip().lower() for name in q.get("labels", "").split(",") if name.strip()]
        since = _parse_since(q.get("since"))
        sort = q.get("sort", "created")
        if sort not in ("created", "updated", "comments"):
            raise _invalid("Issue", "sort", "invalid", f"invalid sort: {sort}")
        direction = q.get("direction", "desc")
        if direction not in ("asc", "desc"):
            raise _invalid("Issue", "direction", "invalid", f"invalid direction: {direction}")
        issues = [
            issue
            for issue in repo.issues.values()
            if (state == "all" or issue.state == state)
            and all(name in {label.lower() for label in issue.labels} for name in wanted)
            and (since is None or issue.updated_at >= since)
            and ("assignee" not in q or q["assignee"] in issue.assignees)
        ]

        def key(issue: Issue) -> tuple[Any, int]:
            if sort == "updated":
                return (issue.updated_at, issue.number)
            if sort == "comments":
                return (len(issue.comments), issue.number)
            return (issue.created_at, issue.number)

        issues.sort(key=key, reverse=direction == "desc")
        page, headers = self._page(req, issues)
        return Reply(200, [self.issue_json(repo, issue) for issue in page], headers)

    def _page(self, req: _Request, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        """One page of `items` and the RFC 5988 Link header GitHub sends with it."""
        try:
            per_page = min(max(int(req.query.get("per_page", "30")), 1), 100)
            page = max(int(req.query.get("page", "1")), 1)
        except ValueError as exc:
            raise _invalid("Issue", "page", "invalid", "page and per_page are numbers") from exc
        last = max((len(items) + per_page - 1) // per_page, 1)
        chunk = items[(page - 1) * per_page : page * per_page]

        def link(number: int) -> str:
            query = {**req.query, "per_page": str(per_page), "page": str(number)}
            return f"{self.origin}{self.prefix}{req.path}?{urlencode(query, safe=',:')}"

        rels: list[str] = []
        if page < last:
            rels += [f'<{link(page + 1)}>; rel="next"', f'<{link(last)}>; rel="last"']
        if page > 1:
            rels = [f'<{link(page - 1)}>; rel="prev"', *rels, f'<{link(1)}>; rel="first"']
        return chunk, ({"link": ", ".join(rels)} if rels else {})

    def _list_comments(self, req: _Request) -> Reply:
        repo, issue = self._find_issue(req)
        since = _parse_since(req.query.get("since"))
        comments = [c for c in issue.comments if since is None or c.updated_at >= since]
        page, headers = self._page(req, comments)
        return Reply(200, [self.comment_json(repo, issue, c) for c in page], headers)

    def _create_comment(self, req: _Request) -> Reply:
        repo, issue = self._find_issue(req)
        body = _object_body(req.body)
        text = body.get("body")
        if not isinstance(text, str) or not text.strip():
            raise _invalid("IssueComment", "body", "missing_field")
        now = self.clock()
        comment = Comment(self._next_id(), text, req.login, now, now)
        issue.comments.append(comment)
        issue.updated_at = now
        comment_json = self.comment_json(repo, issue, comment)
        self._emit("issue_comment", "created", repo, issue, req.login, comment=comment_json)
        location = self._api(f"/repos/{repo.full_name}/issues/comments/{comment.id}")
        return Reply(201, self.comment_json(repo, issue, comment), {"location": location})

    def _issue_labels(self, repo: Repo, issue: Issue) -> list[dict[str, Any]]:
        return [self.label_json(repo, repo.labels[name.lower()]) for name in issue.labels]

    def _list_issue_labels(self, req: _Request) -> Reply:
        repo, issue = self._find_issue(req)
        page, headers = self._page(req, self._issue_labels(repo, issue))
        return Reply(200, page, headers)

    def _add_labels(self, req: _Request) -> Reply:
        repo, issue = self._find_issue(req)
        added = self._label_names(repo, req.body)
        if not added:
            raise _invalid("Label", "labels", "missing_field")
        present = {name.lower() for name in issue.labels}
        before = list(issue.labels)
        issue.labels += [name for name in added if name.lower() not in present]
        issue.updated_at = self.clock()
        self._emit_label_changes(repo, issue, before, req.login)
        return Reply(200, self._issue_labels(repo, issue))

    def _set_labels(self, req: _Request) -> Reply:
        repo, issue = self._find_issue(req)
        before = list(issue.labels)
        issue.labels = self._label_names(repo, req.body)
        issue.updated_at = self.clock()
        self._emit_label_changes(repo, issue, before, req.login)
        return Reply(200, self._issue_labels(repo, issue))

    def _remove_label(self, req: _Request) -> Reply:
        repo, issue = self._find_issue(req)
        name = unquote(req.params["name"]).lower()
        if name not in {label.lower() for label in issue.labels}:
            raise ApiError(404, "Label does not exist", doc=f"{DOCS}/issues/labels")
        before = list(issue.labels)
        issue.labels = [label for label in issue.labels if label.lower() != name]
        issue.updated_at = self.clock()
        self._emit_label_changes(repo, issue, before, req.login)
        return Reply(200, self._issue_labels(repo, issue))

    def _list_repo_labels(self, req: _Request) -> Reply:
        repo = self._find_repo(req)
        labels = sorted(repo.labels.values(), key=lambda label: label.name.lower())
        page, headers = self._page(req, [self.label_json(repo, label) for label in labels])
        return Reply(200, page, headers)

    def _create_repo_label(self, req: _Request) -> Reply:
        repo = self._find_repo(req)
        body = _object_body(req.body)
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _invalid("Label", "name", "missing_field")
        if name.lower() in repo.labels:
            raise _invalid("Label", "name", "already_exists")
        color = str(body.get("color", "ededed")).lstrip("#")
        if not re.fullmatch(r"[0-9a-fA-F]{6}", color):
            raise _invalid("Label", "color", "invalid")
        label = Label(self._next_id(), name, color, body.get("description"))
        repo.labels[name.lower()] = label
        return Reply(201, self.label_json(repo, label))

    # ----------------------------------------------------------------------------- dispatch
    def _rate_headers(self, resource: str) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(self.rate_limit),
            "x-ratelimit-remaining": str(max(self.rate_limit - self.rate_used, 0)),
            "x-ratelimit-reset": str(self.rate_reset),
            "x-ratelimit-used": str(self.rate_used),
            "x-ratelimit-resource": resource,
        }

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes
    ) -> tuple[Reply, str | None]:
        """Answer one request (called from the HTTP handler; usable directly in unit tests)."""
        arrived = time.time()
        split = urlsplit(raw_path)
        path = split.path
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        if self.prefix and path.startswith(self.prefix + "/"):
            path = path[len(self.prefix) :]
        template, handler, params, path_known = self.route(method, path)
        self.count(method, template, path)
        with self._lock:
            if arrived >= self.rate_reset:  # a new hour: the primary limit starts over
                self.rate_used, self.rate_reset = 0, int(arrived) + 3600
            if path != "/rate_limit":
                self.rate_used += 1
        self.pause(method, path, template)
        resource = "core"
        fault = self.take_fault(method, path, template)
        if fault is not None:
            reply = Reply(fault.status, dict(fault.body), dict(fault.headers))
        else:
            reply = self._dispatch(
                method, path, query, params, headers, raw_body, handler, template
            )
        if not path_known and reply.status == 404:
            template = None
        base = {
            "content-type": "application/json; charset=utf-8",
            "x-github-api-version-selected": API_VERSION,
            "x-github-media-type": "github.v3; format=json",
            "x-github-request-id": f"EMU:{self._next_id():X}",
            "x-oauth-scopes": "repo",
            "x-accepted-oauth-scopes": "repo",
            **self._rate_headers(resource),
        }
        base.update(reply.headers)
        reply.headers = base
        self.record(method, path, template, reply.status, arrived)
        self.check_contract(method, template, path, reply)
        return reply, template

    def _dispatch(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        params: dict[str, str],
        headers: dict[str, str],
        raw_body: bytes,
        handler: Handler | None,
        template: str | None,
    ) -> Reply:
        try:
            login = self._authenticate(headers)
            if self.rate_used > self.rate_limit and time.time() < self.rate_reset:
                raise ApiError(
                    403,
                    f"API rate limit exceeded for user ID {self._user_id(login)}.",
                    doc="https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
                )
            if handler is None:
                raise ApiError(404, "Not Found", doc=DOCS)
            body: Json = None
            if raw_body:
                try:
                    body = json.loads(raw_body)
                except ValueError as exc:
                    raise ApiError(400, "Problems parsing JSON", doc=DOCS) from exc
            self.check_request_body(method, template, body)
            request = _Request(method, path, query, params, body, login)
            with self._lock:
                return handler(request)
        except ApiError as error:
            return Reply(error.status, error.body, error.headers)

    def _authenticate(self, headers: dict[str, str]) -> str:
        if self.token is None:
            return self.login
        value = headers.get("authorization", "")
        scheme, _, credential = value.partition(" ")
        if scheme.lower() not in ("token", "bearer") or credential != self.token:
            raise ApiError(401, "Bad credentials", doc=DOCS)
        return self.login


def _no_reactions(url: str) -> dict[str, Any]:
    counts = ("+1", "-1", "laugh", "hooray", "confused", "heart", "rocket", "eyes")
    return {"url": f"{url}/reactions", "total_count": 0, **dict.fromkeys(counts, 0)}


def _invalid(resource: str, field_name: str, code: str, message: str | None = None) -> ApiError:
    error: dict[str, Any] = {"resource": resource, "field": field_name, "code": code}
    if message:
        error["message"] = message
    return ApiError(422, "Validation Failed", doc=DOCS, errors=[error])


def _object_body(body: Json) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "Problems parsing JSON", doc=DOCS)
    return body


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _invalid("Issue", "since", "invalid", f"invalid since: {value}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


__all__ = [
    "ApiError",
    "Fault",
    "GitHubEmulator",
    "Issue",
    "Label",
    "RecordedRequest",
    "Reply",
    "Repo",
]


@contextmanager
def github_serving(*repos: str, **options: Any) -> Iterator[GitHubEmulator]:
    """An emulator (GitHubEmulator's `options`) holding `repos` until the block ends; every
    call made to it in the block must have kept to the contract."""
    emulator = GitHubEmulator(**options).start()
    for repo in repos:
        emulator.add_repo(repo)
    try:
        yield emulator
        assert emulator.contract_errors == []
    finally:
        emulator.stop()

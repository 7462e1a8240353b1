"""Which tracker adapter serves a routing target: local, github:owner/repo or jira:PROJECT."""

from __future__ import annotations

import threading

from domain.routing import RoutingError, load_routing
from integrations.github import PREFIX as GITHUB_PREFIX
from integrations.github import GitHubTracker, repository_of
from integrations.jira import PREFIX as JIRA_PREFIX
from integrations.jira import JiraTracker, project_of
from integrations.local import TARGET as LOCAL_TARGET
from integrations.local import LocalTracker
from integrations.tracker import Tracker, TrackerError
from settings import ENV_PREFIX, Settings
from store import StoreError, configured_store

# Seconds one GitHub HTTP call may take: an ensure_ticket attempt makes two calls and must
# finish inside the ticket activities' 20s start-to-close timeout
# (workflows/action_item.py TRACKER_TIMEOUT).
GITHUB_TIMEOUT = 8
# The same for Jira: a look-up and a create (or a read and a transition) per attempt.
JIRA_TIMEOUT = 8

# What each adapter needs; named in the error while it is not configured.
_NOT_CONFIGURED = {
    "github": f"{ENV_PREFIX}GITHUB_TOKEN (and {ENV_PREFIX}GITHUB_WEBHOOK_SECRET for webhooks)",
    "jira": (
        f"{ENV_PREFIX}JIRA_URL with {ENV_PREFIX}JIRA_EMAIL and {ENV_PREFIX}JIRA_API_TOKEN "
        f"(Jira Cloud) or {ENV_PREFIX}JIRA_PAT (Jira Data Center), and "
        f"{ENV_PREFIX}JIRA_WEBHOOK_SECRET for webhooks"
    ),
}


class TrackerRegistry:
    """Adapters are built on first use and shared: activities call from many threads."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._local: LocalTracker | None = None
        self._github: GitHubTracker | None = None
        self._jira: JiraTracker | None = None
        self._lock = threading.Lock()

    def for_target(self, target: str) -> Tracker:
        if target == LOCAL_TARGET:
            return self._local_tracker()
        if target.startswith(GITHUB_PREFIX) and self._settings.github_token is not None:
            repository_of(target)  # a malformed target fails here, naming the expected form
            return self._github_tracker()
        if target.startswith(JIRA_PREFIX) and self._settings.jira_flavor is not None:
            project_of(target)  # a malformed target fails here, naming the expected form
            return self._jira_tracker()
        kind, separator, where = target.partition(":")
        if separator and where and kind in _NOT_CONFIGURED:
            raise TrackerError(
                f"the {kind} tracker is not configured yet (target {target!r}); it needs "
                f"{_NOT_CONFIGURED[kind]}. Route the team to 'local' until then",
                retryable=False,
            )
        raise TrackerError(
            f"unknown tracker target {target!r}; expected local, github:owner/repo or jira:PROJECT",
            retryable=False,
        )

    def _github_tracker(self) -> GitHubTracker:
        token = self._settings.github_token
        assert token is not None
        with self._lock:
            if self._github is None:
                self._github = GitHubTracker(
                    token, self._settings.github_base_url, timeout=GITHUB_TIMEOUT
                )
            return self._github

    def _jira_tracker(self) -> JiraTracker:
        settings = self._settings
        assert settings.jira_url is not None and settings.jira_flavor is not None
        with self._lock:
            if self._jira is None:
                try:
                    routing = load_routing(settings.routing_file)
                except RoutingError as error:
                    raise TrackerError(str(error), retryable=False) from None
                api = settings.effective_api_url.rstrip("/")
                self._jira = JiraTracker(
                    settings.jira_url,
                    flavor=settings.jira_flavor,
                    email=settings.jira_email,
                    api_token=settings.jira_api_token,
                    pat=settings.jira_pat,
                    timeout=JIRA_TIMEOUT,
                    projects=routing.jira,
                    people=routing.jira_people(),
                    incident_url=lambda key: f"{api}/api/incidents/{key}",
                )
            return self._jira

    def _local_tracker(self) -> LocalTracker:
        with self._lock:
            if self._local is None:
                try:
                    self._local = LocalTracker(configured_store(self._settings))
                except StoreError as error:
                    raise TrackerError(
                        f"the local tracker's database is unusable: {error}",
                        retryable=error.retryable,
                    ) from None
            return self._local

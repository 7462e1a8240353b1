"""Which tracker adapter serves a routing target: local, github:owner/repo or jira:PROJECT."""

from __future__ import annotations

import threading

from integrations.github import PREFIX as GITHUB_PREFIX
from integrations.github import GitHubTracker, repository_of
from integrations.local import TARGET as LOCAL_TARGET
from integrations.local import LocalTracker
from integrations.tracker import Tracker, TrackerError
from settings import ENV_PREFIX, Settings

# Seconds one GitHub HTTP call may take: an ensure_ticket attempt makes two calls and must
# finish inside the ticket activities' 20s start-to-close timeout
# (workflows/action_item.py TRACKER_TIMEOUT).
GITHUB_TIMEOUT = 8

# What each adapter needs; named in the error while it is not configured (or not built yet).
_NOT_CONFIGURED = {
    "github": f"{ENV_PREFIX}GITHUB_TOKEN (and {ENV_PREFIX}GITHUB_WEBHOOK_SECRET for webhooks)",
    "jira": (
        f"{ENV_PREFIX}JIRA_URL, {ENV_PREFIX}JIRA_USER and {ENV_PREFIX}JIRA_TOKEN "
        f"(and {ENV_PREFIX}JIRA_WEBHOOK_SECRET for webhooks)"
    ),
}


class TrackerRegistry:
    """Adapters are built on first use and shared: activities call from many threads."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._local: LocalTracker | None = None
        self._github: GitHubTracker | None = None
        self._lock = threading.Lock()

    def for_target(self, target: str) -> Tracker:
        if target == LOCAL_TARGET:
            return self._local_tracker()
        if target.startswith(GITHUB_PREFIX) and self._settings.github_token is not None:
            repository_of(target)  # a malformed target fails here, naming the expected form
            return self._github_tracker()
        kind, separator, where = target.partition(":")
        if separator and where and kind in _NOT_CONFIGURED:
            raise TrackerError(
                f"the {kind} tracker is not configured yet (target {target!r}); "
                f"it will need {_NOT_CONFIGURED[kind]}. Route the team to 'local' until then",
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

    def _local_tracker(self) -> LocalTracker:
        with self._lock:
            if self._local is None:
                self._local = LocalTracker.in_home(self._settings.home)
            return self._local

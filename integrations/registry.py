"""Which tracker adapter serves a routing target: local, github:owner/repo or jira:PROJECT."""

from __future__ import annotations

import threading

from integrations.local import TARGET as LOCAL_TARGET
from integrations.local import LocalTracker
from integrations.tracker import Tracker, TrackerError
from settings import ENV_PREFIX, Settings

# What each adapter still to come will need; named in the error until it exists.
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
        self._lock = threading.Lock()

    def for_target(self, target: str) -> Tracker:
        if target == LOCAL_TARGET:
            return self._local_tracker()
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

    def _local_tracker(self) -> LocalTracker:
        with self._lock:
            if self._local is None:
                self._local = LocalTracker.in_home(self._settings.home)
            return self._local

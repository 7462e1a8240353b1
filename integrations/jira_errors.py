"""How a failed Jira call becomes a `TrackerError`, and the pause a rate limit imposes.

Refusals a retry cannot fix (400, 401, 403, 404 and other 4xx) are non-retryable and say what
to fix: the project, the field (named as the routing file names it) or the permission, with
Jira's own `errorMessages` and `errors` passed through. 429 and 5xx are retryable and carry
Jira's `Retry-After` when it sends one; timeouts and connection errors are retryable.

The messages never include `str(JIRAError)`: the library puts the request's headers, the
credentials among them, into it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from jira.exceptions import JIRAError

from integrations.jira_text import Flavor
from integrations.tracker import TrackerError
from settings import ENV_PREFIX

_V = f"{ENV_PREFIX}JIRA_"
# What each field of a refused request is called where a person fixes it.
_FIELD_HINTS = {
    "project": "the jira:PROJECT target in the routing file",
    "issuetype": "issue_type in the routing file ([jira.PROJECT] or the team), which must be "
    "one of the project's issue types",
    "priority": "priorities in the routing file's [jira.PROJECT] table, which must name the "
    "project's priorities (and Priority must be on the create screen)",
    "components": "components of the team in the routing file, which must exist in the project",
    "assignee": "the team's assignee in the routing file (a Cloud account id or a Data Center "
    "username that may be assigned issues in the project)",
    "duedate": "the project's screens: add the Due date field to the create and edit screens",
    "labels": "the project's screens: add the Labels field to the create and edit screens",
    "resolution": "the transition's screen: the resolution field",
}


@dataclass(frozen=True)
class Call:
    """What a Jira call was for, to name it in an error."""

    project: str
    action: str  # "creating the action item's issue"
    permission: str  # the Jira project permission it needs, e.g. "Create Issues"
    issue: str | None = None  # the issue key, for actions on one issue


def retry_after(error: JIRAError) -> float | None:
    """Jira's Retry-After in seconds (Jira sends seconds), if the response has one."""
    response = error.response
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


def jira_problems(error: JIRAError) -> tuple[list[str], dict[str, str]]:
    """Jira's `errorMessages` and `errors` (field -> message) from a refused call."""
    response = error.response
    data: Any = None
    if response is not None:
        try:
            data = response.json()
        except ValueError:
            data = None
    if not isinstance(data, Mapping):
        return ([error.text] if error.text else []), {}
    messages = [str(m) for m in data.get("errorMessages") or [] if m]
    if not messages and isinstance(data.get("message"), str):
        messages = [data["message"]]
    fields = data.get("errors")
    per_field = {str(k): str(v) for k, v in fields.items()} if isinstance(fields, Mapping) else {}
    return messages, per_field


def _jira_said(messages: list[str], fields: Mapping[str, str]) -> str:
    said = [*messages, *(f"{name}: {message}" for name, message in fields.items())]
    return "; ".join(said) if said else "no message"


def classify(error: JIRAError, call: Call, *, server: str, flavor: Flavor) -> TrackerError:
    status = error.status_code or 0
    messages, fields = jira_problems(error)
    said = _jira_said(messages, fields)
    where = f"while {call.action} in Jira project {call.project}"
    if status == 401:
        credentials = (
            f"{_V}EMAIL and {_V}API_TOKEN (an API token of that Atlassian account)"
            if flavor == "cloud"
            else f"{_V}PAT (a personal access token of the Jira user)"
        )
        return TrackerError(
            f"Jira at {server} refused the credentials (401: {said}) {where}: set {credentials}",
            retryable=False,
        )
    if status == 403:
        return TrackerError(
            f"Jira refused {call.action} in project {call.project} (403: {said}): the "
            f"account needs the project permission '{call.permission}' in {call.project}",
            retryable=False,
        )
    if status == 404:
        if call.issue is not None:
            return TrackerError(
                f"Jira issue {call.issue} was not found (404: {said}) {where}: it was deleted "
                f"or moved, or the account lacks 'Browse Projects' in {call.project}",
                retryable=False,
            )
        return TrackerError(
            f"Jira project {call.project} was not found (404: {said}) {where}: check the target "
            f"jira:{call.project} in the routing file and that the account can browse it",
            retryable=False,
        )
    if status == 429:
        wait = retry_after(error)
        when = f"in {wait:.0f}s (Retry-After)" if wait is not None else "later"
        return TrackerError(
            f"Jira rate limit reached (429: {said}) {where}; will retry {when}",
            retryable=True,
            retry_after=timedelta(seconds=wait) if wait is not None else None,
        )
    if status >= 500:
        wait = retry_after(error)
        return TrackerError(
            f"Jira failed (HTTP {status}: {said}) {where}; will retry",
            retryable=True,
            retry_after=timedelta(seconds=wait) if wait is not None else None,
        )
    if status == 0:  # the library's own complaint about an answer, not Jira's status
        return TrackerError(
            f"Jira answered unexpectedly ({error.text or 'no message'}) {where}", retryable=True
        )
    fix = [_FIELD_HINTS[name] for name in fields if name in _FIELD_HINTS]
    if any("field 'project'" in message for message in messages):  # JQL naming no project
        fix.append(
            f"the target jira:{call.project} in the routing file (a project key the "
            "account can browse)"
        )
    hint = f"; check {'; and '.join(fix)}" if fix else ""
    return TrackerError(
        f"Jira rejected {call.action} in project {call.project} (HTTP {status}: {said}){hint}",
        retryable=False,
    )

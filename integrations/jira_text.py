"""What afteraction writes into Jira: descriptions, labels, mentions and comment markers.

Jira Cloud's REST API v2 (the one the `jira` library speaks) and Data Center both take wiki
markup strings, so everything here is plain text with a little markup.

Mentions: the workflows write people as `@name`, where name is what the routing file lists for
the team. For Jira teams those are Cloud account ids (`557058:f58131cb-...`) or, on Data
Center, usernames. `mention_people` turns `@name` into Jira's mention markup, `[~accountid:ID]`
on Cloud and `[~username]` on Data Center, when the name is one the routing file gives a Jira
team, or (Cloud) when it has the form of an account id. Any other `@name` (e.g. the team's
name when an item has no assignee) stays text, so no comment mentions a stranger.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal

from integrations import ticket_markers

Flavor = Literal["cloud", "dc"]

COMMENT_MARKER_PREFIX = ticket_markers.COMMENT_MARKER_PREFIX
# The workflows label escalations `escalated:<rung>`; Jira teams see `escalated-<rung>`.
ESCALATED_PREFIX = "escalated:"
JIRA_ESCALATED_PREFIX = "escalated-"

# Cloud account ids: 24 hex digits (older accounts) or "<number>:<uuid>".
_ACCOUNT_ID = re.compile(r"^(?:[0-9a-f]{24}|[0-9]+:[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12})$")
_MENTION = re.compile(r"(?<![\w\[~])@(?P<name>[\w.:\-]*[\w])")
_COMMENT_MARKER = re.compile(
    rf"{re.escape(COMMENT_MARKER_PREFIX)}(?P<key>\S+?)(?=\{{color\}}|\s|$)"
)
# The workflow's body names the due moment; Jira's own due date field carries it instead
# (an extension updates that field, and a line in the description would go stale).
_DUE_LINE = re.compile(r"^Due: .*\n?", re.MULTILINE)


def is_account_id(name: str) -> bool:
    return bool(_ACCOUNT_ID.match(name))


def mention(person: str, flavor: Flavor) -> str:
    person = person.lstrip("@")
    return f"[~accountid:{person}]" if flavor == "cloud" else f"[~{person}]"


def mention_people(text: str, flavor: Flavor, people: Iterable[str]) -> str:
    known = {person.lstrip("@") for person in people}

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if name in known or (flavor == "cloud" and is_account_id(name)):
            return mention(name, flavor)
        return match[0]

    return _MENTION.sub(replace, text)


def jira_label(label: str) -> str:
    """A label as Jira takes it: no spaces; escalation labels in Jira's `escalated-<rung>`."""
    if label.startswith(ESCALATED_PREFIX):
        label = JIRA_ESCALATED_PREFIX + label.removeprefix(ESCALATED_PREFIX)
    return re.sub(r"\s+", "_", label.strip())


def unique(labels: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    kept: list[str] = []
    for label in labels:
        if label and label not in seen:
            seen.add(label)
            kept.append(label)
    return kept


def comment_marker(idempotency_key: str) -> str:
    """The grey last line of every comment afteraction writes, so a retry skips it."""
    return f"{{color:#97a0af}}{COMMENT_MARKER_PREFIX}{idempotency_key}{{color}}"


def comment_keys(body: str | None) -> set[str]:
    return {m["key"] for m in _COMMENT_MARKER.finditer(body or "")}


def comment_body(text: str, idempotency_key: str, flavor: Flavor, people: Iterable[str]) -> str:
    return f"{mention_people(text.rstrip(), flavor, people)}\n\n{comment_marker(idempotency_key)}"


def description(
    body: str,
    idempotency_key: str,
    *,
    incident_url: str | None,
    flavor: Flavor,
    people: Iterable[str],
) -> str:
    """The ticket's description: the workflow's text (incident, team, kind, success criteria,
    SLO link) without its due line, a link to the incident, and the item's marker."""
    lines = [mention_people(_DUE_LINE.sub("", body).rstrip(), flavor, people), ""]
    if incident_url is not None:
        incident = incident_key(idempotency_key)
        lines.append(f"Incident: [{incident}|{incident_url}]")
    lines.append(f"{{color:#97a0af}}{ticket_markers.MARKER_PREFIX}{idempotency_key}{{color}}")
    return "\n".join(lines)


def incident_key(idempotency_key: str) -> str:
    """'incident/INC-1/action/2' -> 'INC-1' (the caller checked the key's form)."""
    return idempotency_key.split("/")[1]


def due_date(due_at: datetime) -> str:
    """Jira's due date is a day: the UTC day the item is due."""
    moment = due_at.replace(tzinfo=UTC) if due_at.tzinfo is None else due_at.astimezone(UTC)
    return f"{moment:%Y-%m-%d}"


def due_at(duedate: str | None) -> datetime | None:
    """A Jira due date ('2026-12-15') as that day's start in UTC."""
    if not duedate:
        return None
    return datetime.strptime(duedate[:10], "%Y-%m-%d").replace(tzinfo=UTC)


def jira_time(value: str) -> datetime:
    """Jira's timestamps ('2026-11-27T17:42:00.000+0000') as aware datetimes."""
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")

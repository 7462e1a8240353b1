"""Tracker webhooks: signature checks and real payloads parsed into TrackerEvent.

Signatures (verified over the raw body, before any parsing, in constant time):

* GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`;
* Jira Cloud admin webhooks: `X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, body)>`.

What is routed (everything else is an IgnoredDelivery):

* GitHub `issues` with action closed, reopened, edited or labeled, and `issue_comment` created
  (not on a pull request), on an afteraction ticket: the issue body carries the marker or the
  issue has the `afteraction-key:` label (integrations.ticket_markers). The status is the
  issue's `state` after the event. `ping` is an IgnoredDelivery with `ping=True`.
* Jira `jira:issue_updated` whose changelog changes the status (or resolution), the due date or
  the assignee, and `comment_created`. The status is the issue's status category after the
  event (`done` is closed, any other category open). Event names: `closed` (now in the done
  category), `reopened` (out of done: the resolution was cleared), `status_changed` (another
  move), `due_date_changed`, `assigned`, `commented`. The item is found from the labels or the
  description: a plain string (Data Center, REST v2 shape) or an Atlassian Document Format
  document (Cloud, v3 shape), whose text is collected recursively. A Jira `comment_created`
  carries a reduced issue (no labels, no description), so it is routed only when the comment
  itself carries the marker; otherwise it yields an event with `workflow_id=None`.

A body that is not JSON, or JSON of a shape these trackers do not send, raises
MalformedPayload with the reason.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from pydantic import ValidationError

from domain.action_item import TicketStatus
from domain.identity import Actor, ActorKind
from domain.webhook_events import IgnoredDelivery, Tracker, TrackerEvent
from integrations.ticket_markers import (
    is_own_comment,
    is_own_label,
    key_from_labels,
    key_from_text,
)

GITHUB_SIGNATURE = "X-Hub-Signature-256"
JIRA_SIGNATURE = "X-Hub-Signature"
GITHUB_EVENT = "X-GitHub-Event"
GITHUB_DELIVERY = "X-GitHub-Delivery"
JIRA_DELIVERY = "X-Atlassian-Webhook-Identifier"
SIGNATURE_PREFIX = "sha256="

GITHUB_ISSUE_ACTIONS = frozenset({"closed", "reopened", "edited", "labeled"})
JIRA_STATUS_FIELDS = frozenset({"status", "resolution"})
JIRA_EVENTS_BY_FIELD = {"duedate": "due_date_changed", "assignee": "assigned"}

Parsed = TrackerEvent | IgnoredDelivery


class BadSignature(Exception):
    """A delivery whose signature is missing or does not match the secret."""


class MalformedPayload(ValueError):
    """A body that is not JSON, or not of a shape the tracker sends; the message says why."""


# ---- signatures ------------------------------------------------------------------------


def signature(secret: str, body: bytes) -> str:
    """The header value a sender with this secret puts on this body: `sha256=<hex>`."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify(secret: str, body: bytes, header_value: str | None, *, header: str) -> None:
    """BadSignature unless `header_value` is `sha256=` + the body's HMAC-SHA256 with the
    secret; compared in constant time."""
    if not header_value:
        raise BadSignature(f"the {header} header is missing")
    value = header_value.strip()
    if not value.startswith(SIGNATURE_PREFIX):
        raise BadSignature(f"the {header} header does not start with {SIGNATURE_PREFIX}")
    expected = signature(secret, body)
    if not hmac.compare_digest(expected.encode("ascii"), value.lower().encode("utf-8")):
        raise BadSignature(f"the {header} header does not match the body and the secret")


def verify_github(secret: str, body: bytes, header_value: str | None) -> None:
    verify(secret, body, header_value, header=GITHUB_SIGNATURE)


def verify_jira(secret: str, body: bytes, header_value: str | None) -> None:
    verify(secret, body, header_value, header=JIRA_SIGNATURE)


def body_delivery_id(body: bytes) -> str:
    """A delivery id for a sender that gives none: the same body is the same delivery."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


# ---- shared helpers --------------------------------------------------------------------


def _json_object(body: bytes, content_type: str | None = None) -> dict[str, Any]:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        try:
            form = parse_qs(body.decode("utf-8"), strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            raise MalformedPayload("the form body cannot be decoded") from None
        if "payload" not in form:
            raise MalformedPayload("the form body has no payload field")
        body = form["payload"][0].encode("utf-8")
    try:
        data = json.loads(body)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise MalformedPayload(f"the body is not valid JSON: {error.msg} ({where})") from None
    except UnicodeDecodeError:
        raise MalformedPayload("the body is not UTF-8 text") from None
    except RecursionError:
        raise MalformedPayload("the body is nested too deeply to read") from None
    if not isinstance(data, dict):
        raise MalformedPayload(f"expected a JSON object, got {type(data).__name__}")
    return data


def _object(data: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value = data.get(name)
    if not isinstance(value, dict):
        raise MalformedPayload(f"{where}{name}: expected an object")
    return value


def _text(data: dict[str, Any], name: str, where: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise MalformedPayload(f"{where}{name}: expected a non-empty string")
    return value


def _time(value: Any) -> datetime | None:
    if isinstance(value, str):
        for parse in (
            lambda text: datetime.fromisoformat(text.replace("Z", "+00:00")),
            lambda text: datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z"),
        ):
            try:
                parsed = parse(value)
            except ValueError:
                continue
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _event(**fields: Any) -> TrackerEvent:
    """The event, or MalformedPayload when the delivery's values are past their caps (a ticket
    key, an event name or a delivery id longer than any tracker sends)."""
    try:
        return TrackerEvent(**fields)
    except ValidationError as error:
        problem = error.errors()[0]
        field = ".".join(str(part) for part in problem["loc"])
        raise MalformedPayload(f"{field}: {problem['msg']}") from None


def _tracker_user(tracker: str, user: Any, subject: str, name: str) -> Actor | None:
    """The tracker's user who made the change, as the signed delivery names them."""
    if not isinstance(user, dict):
        return None
    login, display = user.get(subject), user.get(name) or user.get(subject)
    if not isinstance(login, str) or not login or not isinstance(display, str):
        return None
    return Actor(
        kind=ActorKind.TRACKER, subject=login[:255], display_name=display[:255], via=tracker
    )


def _label_names(labels: Any) -> list[str]:
    """GitHub labels are objects with a name (or plain names); Jira labels are strings."""
    names: list[str] = []
    for label in labels if isinstance(labels, list) else []:
        if isinstance(label, str):
            names.append(label)
        elif isinstance(label, dict) and isinstance(label.get("name"), str):
            names.append(label["name"])
    return names


def _workflow_id(labels: Iterable[str], *texts: str | None) -> str | None:
    found = key_from_labels(labels)
    for text in texts:
        found = found or key_from_text(text)
    return found


# ---- GitHub ----------------------------------------------------------------------------


def parse_github(
    event: str | None, body: bytes, delivery_id: str | None, content_type: str | None = None
) -> Parsed:
    """A GitHub delivery (the X-GitHub-Event header, the raw body, X-GitHub-Delivery)."""
    data = _json_object(body, content_type)
    delivery = delivery_id or body_delivery_id(body)
    if not event:
        raise MalformedPayload(f"the {GITHUB_EVENT} header is missing")
    if event == "ping":
        return IgnoredDelivery(tracker="github", reason="ping", ping=True)
    if event not in ("issues", "issue_comment"):
        return IgnoredDelivery(tracker="github", reason=f"{event} events are not acted on")
    action = _text(data, "action", "")
    issue = _object(data, "issue", "")
    number = issue.get("number")
    if not isinstance(number, int):
        raise MalformedPayload("issue.number: expected an integer")
    state = _text(issue, "state", "issue.")
    if state not in ("open", "closed"):
        raise MalformedPayload(f"issue.state: expected open or closed, got {state!r}")
    repository = data.get("repository")
    repo = repository.get("full_name") if isinstance(repository, dict) else None
    ticket = f"{repo}#{number}" if isinstance(repo, str) else f"#{number}"
    if event == "issue_comment":
        if action != "created":
            reason = f"issue_comment {action} is not acted on"
            return IgnoredDelivery(tracker="github", reason=reason)
        if issue.get("pull_request"):
            return IgnoredDelivery(tracker="github", reason="a comment on a pull request")
        comment = _object(data, "comment", "")
        text = comment.get("body")
        activity = not is_own_comment(text if isinstance(text, str) else None)
        name, at = "commented", _time(comment.get("created_at"))
    else:
        if action not in GITHUB_ISSUE_ACTIONS:
            return IgnoredDelivery(tracker="github", reason=f"issues {action} is not acted on")
        label = data.get("label")
        activity = not (
            action == "labeled" and isinstance(label, dict) and is_own_label(str(label.get("name")))
        )
        name, at = action, _time(issue.get("updated_at"))
    body_text = issue.get("body")
    workflow_id = _workflow_id(
        _label_names(issue.get("labels")), body_text if isinstance(body_text, str) else None
    )
    if workflow_id is None:
        return IgnoredDelivery(tracker="github", reason=f"{ticket} is not an afteraction ticket")
    return _event(
        tracker="github",
        event=name,
        ticket_key=ticket,
        status=TicketStatus.CLOSED if state == "closed" else TicketStatus.OPEN,
        workflow_id=workflow_id,
        delivery_id=delivery,
        at=at or datetime.now(UTC),
        activity=activity,
        actor=_tracker_user("github", data.get("sender"), "login", "login"),
    )


# ---- Jira ------------------------------------------------------------------------------


_ADF_BLOCKS = ("paragraph", "heading", "codeBlock")


def adf_text(node: Any) -> str:
    """The text of an Atlassian Document Format node and its children, blocks on new lines.

    Walked with a stack, not by recursion: a signed delivery may still nest without end.
    """
    parts: list[str] = []
    stack: list[Any] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            parts.append(item)
        elif isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            text = item.get("text")
            if isinstance(text, str):
                parts.append(text)
            # The block's line break comes after its content: pushed first, popped last.
            if item.get("type") in _ADF_BLOCKS:
                stack.append("\n")
            stack.append(item.get("content", []))
    return "".join(parts)


def _jira_status(issue: dict[str, Any]) -> TicketStatus | None:
    fields = issue.get("fields")
    status = fields.get("status") if isinstance(fields, dict) else None
    category = status.get("statusCategory") if isinstance(status, dict) else None
    key = category.get("key") if isinstance(category, dict) else None
    if not isinstance(key, str):
        return None
    return TicketStatus.CLOSED if key == "done" else TicketStatus.OPEN


def _jira_event(changelog: Any, status: TicketStatus | None) -> str | None:
    """The event a changelog amounts to, or None when it changes nothing we follow."""
    items = changelog.get("items") if isinstance(changelog, dict) else None
    fields: dict[str, dict[str, Any]] = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            field = item.get("fieldId") or item.get("field")
            if isinstance(field, str):
                fields[field.lower()] = item
    if fields.keys() & JIRA_STATUS_FIELDS:
        if status is TicketStatus.CLOSED:
            return "closed"
        resolution = fields.get("resolution")
        if resolution is not None and resolution.get("to") in (None, ""):
            return "reopened"
        return "status_changed"
    for field, name in JIRA_EVENTS_BY_FIELD.items():
        if field in fields:
            return name
    return None


def parse_jira(body: bytes, delivery_id: str | None, content_type: str | None = None) -> Parsed:
    """A Jira delivery (the raw body and X-Atlassian-Webhook-Identifier, when sent)."""
    data = _json_object(body, content_type)
    delivery = delivery_id or body_delivery_id(body)
    kind = _text(data, "webhookEvent", "")
    if kind not in ("jira:issue_updated", "comment_created"):
        return IgnoredDelivery(tracker="jira", reason=f"{kind} events are not acted on")
    at = _jira_time(data.get("timestamp"))
    issue = data.get("issue")
    comment_text: str | None = None
    if kind == "comment_created":
        comment = _object(data, "comment", "")
        comment_text = adf_text(comment.get("body"))
        if issue is None:  # Jira Server's comment_created carries no issue
            return IgnoredDelivery(tracker="jira", reason="the comment names no issue")
    if not isinstance(issue, dict):
        raise MalformedPayload("issue: expected an object")
    ticket = _text(issue, "key", "issue.")
    status = _jira_status(issue)
    if kind == "comment_created":
        event: str | None = "commented"
    else:
        event = _jira_event(data.get("changelog"), status)
        if event is None:
            return IgnoredDelivery(
                tracker="jira", reason=f"{ticket}: no status, due date or assignee change"
            )
    fields = issue.get("fields")
    fields = fields if isinstance(fields, dict) else {}
    description = adf_text(fields.get("description"))
    workflow_id = _workflow_id(_label_names(fields.get("labels")), description, comment_text)
    if workflow_id is None and kind != "comment_created":
        return IgnoredDelivery(tracker="jira", reason=f"{ticket} is not an afteraction ticket")
    assert event is not None
    return _event(
        tracker="jira",
        event=event,
        ticket_key=ticket,
        status=status,
        workflow_id=workflow_id,
        delivery_id=delivery,
        at=at,
        activity=not is_own_comment(comment_text),
        actor=_tracker_user("jira", data.get("user"), "accountId", "displayName")
        or _tracker_user("jira", data.get("user"), "name", "displayName"),
    )


def _jira_time(timestamp: Any) -> datetime:
    """The delivery's time (milliseconds since the epoch), or now when it has none or none
    that a clock can show."""
    if isinstance(timestamp, int | float) and not isinstance(timestamp, bool):
        try:
            return datetime.fromtimestamp(timestamp / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            pass
    return datetime.now(UTC)


def parse(
    tracker: Tracker,
    body: bytes,
    headers: dict[str, str],
) -> Parsed:
    """Either tracker's delivery from its raw body and its (lower-cased) headers."""
    content_type = headers.get("content-type")
    if tracker == "github":
        return parse_github(
            headers.get(GITHUB_EVENT.lower()),
            body,
            headers.get(GITHUB_DELIVERY.lower()),
            content_type,
        )
    return parse_jira(body, headers.get(JIRA_DELIVERY.lower()), content_type)

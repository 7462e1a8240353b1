"""The Jira tracker: action items as issues in `jira:PROJECT`, through the `jira` library.

Jira Cloud (email + API token, basic auth) and Jira Data Center (personal access token) are
both served, over REST API v2 (descriptions and comments are wiki-markup strings). A ticket's
key is the issue key (`PAY-12`). The issue carries its item's idempotency key twice
(integrations/ticket_markers.py): the `afteraction-key:KEY-N` label and a marker line in the
description. Its other fields are native: issue type, priority (mapped from P1-P4 per project),
components, labels (`afteraction`, kind, severity), `duedate` and the assignee. Per-project
settings come from the routing file's `[jira.KEY]` tables (domain/routing.py).

Calls are counted: constructing the client makes none (`get_server_info=False`), the
library's own retries are off (`max_retries=0`: retrying is the activity's job, and each
attempt starts with its look-up), project/issue type/priority are sent as objects so
`create_issue` looks nothing up, and nothing is re-read after a create (`prefetch=False`).
Per item: ensure is a JQL look-up plus the create (2 calls; 1 when found); a comment is one
call on its first attempt (a retry reads the comments first: 2); an update is the edit plus
the library's re-read (2); close and reopen read the issue with its transitions and move it
(2; 1 when it is already there). `changed_since` is one paged JQL search per project,
whatever the number of open items.

Exactly-once creation. Jira has no idempotent create, so `ensure` searches for the key's label
first. Jira's search index can lag a moment behind a create, so:

* when a create's outcome is unknown (timeout, connection reset, 5xx after the POST went out),
  the error asks the retry to wait `AMBIGUOUS_CREATE_RETRY_AFTER`, longer than the index lag,
  so the retried look-up sees the issue if it was created;
* a worker that dies mid-create is retried by the server only after the ticket activities'
  20 s start-to-close timeout (workflows/action_item.py TRACKER_TIMEOUT), which is also longer
  than the usual lag.

What remains: an index lagging more than those waits (an overloaded or re-indexing Jira)
lets the retry create a second issue. The reconciler's run covers that window: it sees a
changed ticket carrying an open item's key that is not the item's own ticket (the
AfteractionTicketKey search attribute) and calls `close_duplicate`, which closes it as a
duplicate linked to the item's ticket (and takes the key off it, so its webhooks no
longer speak for the item). So no duplicate outlives a reconcile run.

Rate limits: a 429 (or a 503 with Retry-After) makes the tracker refuse every call to that
Jira until the time Jira named, without calling (integrations/jira_errors.py).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import requests
from jira import JIRA
from jira.exceptions import JIRAError
from jira.resources import Issue
from pydantic import SecretStr

from domain.action_item import Priority, TicketRef, TicketStatus
from domain.routing import JIRA_PREFIX, JiraProjectEntry
from integrations import jira_text, ticket_markers
from integrations.jira_errors import Call, classify, jira_problems, retry_after
from integrations.jira_text import Flavor
from integrations.rate_limits import RateLimitGate
from integrations.tracker import Ticket, TicketChange, TicketDraft, TrackerError

PREFIX = JIRA_PREFIX
TICKET_LABEL = "afteraction"
PAGE_SIZE = 100  # issues per search page (Jira Cloud's most with fields)
SUMMARY_LIMIT = 255
# Jira's search index usually shows a new issue within a second or two, and seldom later
# than ~10 s on a busy site. A create whose outcome is unknown is retried after this, so the
# retry's look-up finds the issue if the create went through.
AMBIGUOUS_CREATE_RETRY_AFTER = timedelta(seconds=30)
# The fields afteraction reads; all are system fields whose id is their JQL name.
FIELDS = (
    "summary",
    "status",
    "resolution",
    "labels",
    "assignee",
    "duedate",
    "updated",
    "created",
    "description",
)
# The resolution of an issue closed because its item's risk was accepted.
WONT_DO = "Won't Do"

Category = Literal["done", "new"]
_PROJECT = re.compile(r"^[A-Z][A-Z0-9_]+$")
_ISSUE_KEY = re.compile(r"^(?P<project>[A-Z][A-Z0-9_]+)-(?P<number>[1-9][0-9]*)$")
_CATEGORY_NAMES = {"new": "to do", "indeterminate": "in progress", "done": "done"}


def project_of(target: str) -> str:
    """'jira:PAY' -> 'PAY' (non-retryable TrackerError for anything else)."""
    project = target.removeprefix(PREFIX) if target.startswith(PREFIX) else ""
    if not _PROJECT.match(project):
        raise TrackerError(
            f"{target!r} is not a Jira tracker target; expected jira:PROJECT with the project's "
            "key (e.g. jira:PAY in the routing file)",
            retryable=False,
        )
    return project


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _issue_number(key: str) -> int:
    match = _ISSUE_KEY.match(key)
    return int(match["number"]) if match else 0


class JiraTracker:
    """A `Tracker` over one Jira site for any number of `jira:PROJECT` targets. Safe to share
    between threads.

    Args:
        server: the site's base URL.
        flavor: "cloud" (basic auth with email and API token) or "dc" (bearer PAT).
        projects: the routing file's `[jira.KEY]` tables; a project without one uses defaults.
        people: the names the routing file gives Jira teams, turned into mentions.
        incident_url: makes the incident link written into descriptions, from the incident key.
        ambiguous_create_retry_after: how long a retry waits after a create whose outcome is
            unknown (see the module's docstring).
    """

    def __init__(
        self,
        server: str,
        *,
        flavor: Flavor,
        email: str | None = None,
        api_token: SecretStr | None = None,
        pat: SecretStr | None = None,
        timeout: float = 8,
        projects: Mapping[str, JiraProjectEntry] | None = None,
        people: Iterable[str] = (),
        incident_url: Callable[[str], str] | None = None,
        ambiguous_create_retry_after: timedelta = AMBIGUOUS_CREATE_RETRY_AFTER,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.server = server.rstrip("/")
        self.flavor: Flavor = flavor
        auth: dict[str, Any]
        if flavor == "cloud":
            if not email or api_token is None:
                raise ValueError("Jira Cloud needs an email and an API token")
            auth = {"basic_auth": (email, api_token.get_secret_value())}
        else:
            if pat is None:
                raise ValueError("Jira Data Center needs a personal access token")
            auth = {"token_auth": pat.get_secret_value()}
        self._jira = JIRA(
            server=self.server,
            options={"check_update": False},
            get_server_info=False,  # no call at construction
            max_retries=0,  # a retried POST could create twice; the activity retries instead
            timeout=timeout,
            default_batch_sizes={Issue: PAGE_SIZE},
            **auth,
        )
        if flavor == "cloud":
            # Without server info the library cannot tell Cloud, whose search is search/jql.
            self._jira.deploymentType = "Cloud"
        # The library maps JQL field names to ids once (GET /field) before its first search;
        # every field read here is a system field whose id is its name, so that call is saved.
        self._jira._fields_cache_value = {name: name for name in (*FIELDS, "comment")}
        self._projects = dict(projects or {})
        self._people = frozenset(person.lstrip("@") for person in people)
        self._incident_url = incident_url
        self._ambiguous_wait = ambiguous_create_retry_after
        # max_wait=0: a pause is never slept in the attempt; Temporal retries when it ends.
        self._gate = RateLimitGate(clock=monotonic, max_wait=0.0, what=f"Jira at {self.server}")
        self._lock = threading.Lock()

    def shutdown(self) -> None:
        """Close the HTTP connections (the tracker is unusable afterwards)."""
        self._jira.close()

    # The Tracker protocol.

    def ensure_ticket(self, target: str, draft: TicketDraft, *, may_exist: bool = True) -> Ticket:
        return self.ensure(target, draft, may_exist=may_exist)[0]

    def get(self, target: str, key: str) -> Ticket:
        project = self._locate(target, key)
        with self._call(Call(project, f"reading {key}", "Browse Projects", key)):
            issue = self._jira.issue(key, fields=",".join(FIELDS))
        return self._ticket(target, issue.raw)

    def update(self, target: str, key: str, change: TicketChange) -> Ticket:
        project = self._locate(target, key)
        fields: dict[str, Any] = {}
        if change.due_at is not None:
            fields["duedate"] = jira_text.due_date(change.due_at)
        if change.assignee is not None:
            fields["assignee"] = self._user(change.assignee)
        labels = jira_text.unique(jira_text.jira_label(label) for label in change.add_labels)
        if not fields and not labels and not change.close_as_not_planned:
            return self.get(target, key)
        raw: dict[str, Any] | None = None
        if fields or labels:
            # "add" leaves a label that is already there alone: idempotent, no read first.
            edits = {"labels": [{"add": label} for label in labels]} if labels else {}
            with self._call(Call(project, f"updating {key}", "Edit Issues", key)):
                issue = self._issue_resource(key)
                issue.update(fields=fields, update=edits)  # PUT, then the library re-reads it
            raw = issue.raw
        if change.close_as_not_planned:
            raw = self._decline(project, key)
        assert raw is not None
        return self._ticket(target, raw)

    def _decline(self, project: str, key: str) -> dict[str, Any]:
        """Close the issue as won't do: the done transition with the resolution Won't Do where
        its screen has the field (else Jira's default resolution). Idempotent: an issue already
        done is left alone."""
        call = Call(project, f"closing {key} as won't do", "Transition Issues", key)
        with self._call(call):
            issue = self._jira.issue(key, fields=",".join(FIELDS), expand="transitions")
        override = self._project(project).done_transition
        return self._transition(call, issue.raw, "done", override, resolution=WONT_DO)

    def comment(
        self, target: str, key: str, text: str, *, idempotency_key: str, may_exist: bool = True
    ) -> None:
        """One call on a first attempt; a retry first reads the comments for the marker."""
        project = self._locate(target, key)
        with self._call(Call(project, f"commenting on {key}", "Add Comments", key)):
            if may_exist and any(
                idempotency_key in jira_text.comment_keys(comment.body)
                for comment in self._jira.comments(key)
            ):
                return
            self._jira.add_comment(
                key, jira_text.comment_body(text, idempotency_key, self.flavor, self._people)
            )

    def close(self, target: str, key: str) -> Ticket:
        project = self._locate(target, key)
        override = self._project(project).done_transition
        return self._move(target, project, key, "done", override)

    def reopen(self, target: str, key: str) -> Ticket:
        project = self._locate(target, key)
        override = self._project(project).reopen_transition
        return self._move(target, project, key, "new", override)

    def changed_since(self, target: str, since: datetime) -> list[Ticket]:
        """Afteraction tickets of the project updated at or after `since` (naive means UTC):
        one JQL search, paged. The bound is in epoch milliseconds, which JQL reads in UTC
        whatever the account's time zone (a "YYYY-MM-DD HH:MM" bound would be read in it)."""
        project = project_of(target)
        since = _utc(since)
        millis = int(since.timestamp() * 1000)
        jql = (
            f"project = {project} AND labels = {TICKET_LABEL} AND updated >= {millis} "
            "ORDER BY created ASC"
        )
        with self._call(Call(project, "listing changed issues", "Browse Projects")):
            found = self._search(jql, max_results=0)
        tickets = [self._ticket(target, raw) for raw in found]
        return [t for t in tickets if t.idempotency_key is not None and t.updated_at >= since]

    # Beyond the protocol.

    def ensure(
        self, target: str, draft: TicketDraft, *, may_exist: bool = True
    ) -> tuple[Ticket, bool]:
        """`ensure_ticket`, also saying whether this call created the issue. With
        `may_exist=False` (a first attempt: nothing can have created it) the look-up is
        skipped; a create whose outcome is unknown is retried, and that retry looks up."""
        project = project_of(target)
        try:
            label = ticket_markers.label_for(draft.idempotency_key)
        except ValueError as error:
            raise TrackerError(str(error), retryable=False) from None
        found = []
        if may_exist:
            lookup = Call(project, "looking up the action item's issue", "Browse Projects")
            with self._call(lookup):
                found = self._search(
                    f'project = {project} AND labels = "{label}" ORDER BY created ASC',
                    max_results=10,
                )
        if found:
            first = min(found, key=lambda raw: (raw["fields"].get("created") or "", raw["id"]))
            return self._ticket(target, first), False
        fields = self._new_issue_fields(project, draft, label)
        create = Call(project, "creating the action item's issue", "Create Issues")
        with self._call(create, outcome_unknown_waits=True):
            created = self._jira.create_issue(fields=fields, prefetch=False)
        ticket = Ticket(
            ref=self._ref(target, created.key),
            title=fields["summary"],
            status=TicketStatus.OPEN,
            labels=fields["labels"],
            assignee=draft.assignee.lstrip("@") if draft.assignee else None,
            due_at=jira_text.due_at(fields["duedate"]),
            idempotency_key=draft.idempotency_key,
            updated_at=datetime.now(UTC),
        )
        return ticket, True

    def close_duplicate(self, target: str, duplicate_key: str, original_key: str) -> None:
        """Close `duplicate_key` as a duplicate of `original_key` (both carry one item's key):
        the item's key comes off it (label and marker, so it no longer speaks for the item),
        a remote link and a comment point to the original, and it moves to a done status,
        with the resolution Duplicate where the transition's screen has the field. Idempotent."""
        project = self._locate(target, duplicate_key)
        self._locate(target, original_key)
        marker_key = f"duplicate-of/{original_key}"
        original_url = self._ref(target, original_key).url
        assert original_url is not None
        call = Call(
            project, f"closing {duplicate_key} as a duplicate", "Edit Issues", duplicate_key
        )
        with self._call(call):
            issue = self._jira.issue(
                duplicate_key, fields=",".join((*FIELDS, "comment")), expand="transitions"
            )
            raw = issue.raw
            fields = raw["fields"]
            labels = [str(label) for label in fields.get("labels") or []]
            keyed = [label for label in labels if ticket_markers.key_from_labels([label])]
            text = fields.get("description") or ""
            if keyed or ticket_markers.key_from_text(text):
                unmarked = text.replace(
                    ticket_markers.MARKER_PREFIX, f"afteraction:duplicate-of={original_key} was:"
                )
                issue.update(
                    fields={"description": unmarked},
                    update={"labels": [{"remove": label} for label in keyed]},
                )
                raw = {**issue.raw, "transitions": raw.get("transitions", [])}
            comments = (fields.get("comment") or {}).get("comments") or []
            if not any(marker_key in jira_text.comment_keys(c.get("body")) for c in comments):
                links = self._jira.remote_links(duplicate_key)
                if not any(getattr(link.object, "url", None) == original_url for link in links):
                    self._jira.add_simple_link(
                        duplicate_key,
                        {"url": original_url, "title": f"Duplicate of {original_key}"},
                    )
                self._jira.add_comment(
                    duplicate_key,
                    jira_text.comment_body(
                        f"Duplicate of {original_key}: afteraction created this issue twice for "
                        f"one action item and follows {original_key}; closing this one.",
                        marker_key,
                        self.flavor,
                        (),
                    ),
                )
        override = self._project(project).done_transition
        self._transition(call, raw, "done", override, resolution="Duplicate")

    # Internals.

    def _project(self, key: str) -> JiraProjectEntry:
        return self._projects.get(key) or JiraProjectEntry()

    def _locate(self, target: str, key: str) -> str:
        project = project_of(target)
        match = _ISSUE_KEY.match(key.strip())
        if match is None or match["project"] != project:
            raise TrackerError(
                f"{key!r} is not an issue of Jira project {project}; expected {project}-N",
                retryable=False,
            )
        return project

    def _ref(self, target: str, key: str) -> TicketRef:
        return TicketRef(target=target, key=key, url=f"{self.server}/browse/{key}")

    def _user(self, person: str) -> dict[str, str]:
        person = person.lstrip("@")
        return {"accountId": person} if self.flavor == "cloud" else {"name": person}

    def _new_issue_fields(self, project: str, draft: TicketDraft, label: str) -> dict[str, Any]:
        settings = self._project(project)
        incident = jira_text.incident_key(draft.idempotency_key)
        fields: dict[str, Any] = {
            "project": {"key": project},
            "issuetype": {"name": draft.issue_type or settings.issue_type},
            "summary": " ".join(draft.title.split())[:SUMMARY_LIMIT],
            "description": jira_text.description(
                draft.body,
                draft.idempotency_key,
                incident_url=self._incident_url(incident) if self._incident_url else None,
                flavor=self.flavor,
                people=self._people,
            ),
            "labels": jira_text.unique(
                [*(jira_text.jira_label(name) for name in draft.labels), label]
            ),
            "duedate": jira_text.due_date(draft.due_at),
        }
        if draft.priority:
            try:
                fields["priority"] = {"name": settings.priorities[Priority(draft.priority)]}
            except ValueError:
                fields["priority"] = {"name": draft.priority}
        if draft.components:
            fields["components"] = [{"name": name} for name in draft.components]
        if draft.assignee:
            fields["assignee"] = self._user(draft.assignee)
        return fields

    def _search(self, jql: str, *, max_results: int) -> list[dict[str, Any]]:
        """Issues (raw JSON) matching `jql`: `max_results` of them, or every page for 0."""
        if self.flavor == "cloud":
            found = self._jira.enhanced_search_issues(
                jql, maxResults=max_results, fields=list(FIELDS)
            )
        else:
            found = self._jira.search_issues(jql, maxResults=max_results, fields=list(FIELDS))
        assert not isinstance(found, dict)  # json_result is off
        return [issue.raw for issue in found]

    def _issue_resource(self, key: str) -> Issue:
        """An issue resource that has not been read (its edit is then one PUT and a re-read)."""
        url = self._jira._get_url(f"issue/{key}")
        return Issue(self._jira._options, self._jira._session, raw={"self": url, "key": key})

    def _move(
        self, target: str, project: str, key: str, category: Category, override: str | None
    ) -> Ticket:
        verb = "closing" if category == "done" else "reopening"
        call = Call(project, f"{verb} {key}", "Transition Issues", key)
        with self._call(call):
            issue = self._jira.issue(key, fields=",".join(FIELDS), expand="transitions")
        raw = self._transition(call, issue.raw, category, override)
        return self._ticket(target, raw)

    def _transition(
        self,
        call: Call,
        raw: dict[str, Any],
        category: Category,
        override: str | None,
        *,
        resolution: str | None = None,
    ) -> dict[str, Any]:
        """Move the issue (raw JSON read with its transitions) to a status of `category`,
        unless it is there already (for "new": unless it is not done). The raw JSON after."""
        status = raw["fields"].get("status") or {}
        current = (status.get("statusCategory") or {}).get("key")
        if (current == "done") == (category == "done"):
            return raw
        transitions: list[dict[str, Any]] = raw.get("transitions") or []
        chosen = _choose(transitions, category, override)
        if chosen is None:
            raise TrackerError(
                _no_transition(call, status, transitions, category, override), retryable=False
            )
        issue, transition = call.issue or raw["key"], str(chosen["id"])
        with self._call(call):
            if resolution is None:
                self._jira.transition_issue(issue, transition, fields={})
            else:
                # Whether the transition's screen has the resolution field shows only when it is
                # refused: then the move goes on without it (Jira sets its default resolution).
                try:
                    self._jira.transition_issue(
                        issue, transition, fields={"resolution": {"name": resolution}}
                    )
                except JIRAError as error:
                    if error.status_code != 400 or "resolution" not in jira_problems(error)[1]:
                        raise
                    self._jira.transition_issue(issue, transition, fields={})
        return {**raw, "fields": {**raw["fields"], "status": chosen.get("to") or status}}

    def _ticket(self, target: str, raw: Mapping[str, Any]) -> Ticket:
        fields = raw["fields"]
        labels = [str(label) for label in fields.get("labels") or []]
        status = fields.get("status") or {}
        category = (status.get("statusCategory") or {}).get("key")
        assignee = fields.get("assignee") or {}
        updated = fields.get("updated")
        return Ticket(
            ref=self._ref(target, raw["key"]),
            title=fields.get("summary") or "",
            status=TicketStatus.CLOSED if category == "done" else TicketStatus.OPEN,
            labels=labels,
            assignee=assignee.get("accountId") if self.flavor == "cloud" else assignee.get("name"),
            due_at=jira_text.due_at(fields.get("duedate")),
            idempotency_key=(
                ticket_markers.key_from_labels(labels)
                or ticket_markers.key_from_text(fields.get("description"))
            ),
            updated_at=jira_text.jira_time(updated) if updated else datetime.now(UTC),
            resolution=(fields.get("resolution") or {}).get("name") if category == "done" else None,
        )

    @contextlib.contextmanager
    def _call(self, call: Call, *, outcome_unknown_waits: bool = False) -> Iterator[None]:
        """Refuse while a rate limit's pause lasts; turn every failure into a TrackerError.
        With `outcome_unknown_waits` (a create), a failure after the request went out asks the
        retry to wait past the search index's lag."""
        self._gate.pass_through()
        try:
            yield
        except TrackerError:
            raise
        except JIRAError as error:
            wait = retry_after(error)
            if wait is not None and error.status_code in (429, 503):
                self._gate.pause(wait)
            failure = classify(error, call, server=self.server, flavor=self.flavor)
            status = error.status_code or 0
            if outcome_unknown_waits and status >= 500:
                raise self._outcome_unknown(call, f"HTTP {status}", wait) from None
            raise failure from None
        except requests.exceptions.RequestException as error:
            if outcome_unknown_waits:
                raise self._outcome_unknown(call, type(error).__name__, None) from None
            raise TrackerError(
                f"Jira at {self.server} did not answer while {call.action} in project "
                f"{call.project} ({type(error).__name__}); will retry",
                retryable=True,
            ) from None

    def _outcome_unknown(self, call: Call, what: str, wait: float | None) -> TrackerError:
        delay = max(self._ambiguous_wait, timedelta(seconds=wait or 0))
        return TrackerError(
            f"Jira at {self.server} failed ({what}) while {call.action} in project "
            f"{call.project}; the issue may have been created, so the retry looks it up after "
            f"{delay.total_seconds():.0f}s, once Jira's search index shows it",
            retryable=True,
            retry_after=delay,
        )


def _choose(
    transitions: list[dict[str, Any]], category: Category, override: str | None
) -> dict[str, Any] | None:
    if override is not None:
        wanted = override.casefold()
        for transition in transitions:
            target = (transition.get("to") or {}).get("name") or ""
            if wanted in (str(transition.get("name", "")).casefold(), target.casefold()):
                return transition
        return None
    for transition in transitions:
        to = transition.get("to") or {}
        if (to.get("statusCategory") or {}).get("key") == category:
            return transition
    return None


def _no_transition(
    call: Call,
    status: Mapping[str, Any],
    transitions: list[dict[str, Any]],
    category: Category,
    override: str | None,
) -> str:
    def describe(transition: Mapping[str, Any]) -> str:
        to = transition.get("to") or {}
        kind = _CATEGORY_NAMES.get((to.get("statusCategory") or {}).get("key", ""), "?")
        return f"'{transition.get('name')}' -> {to.get('name')} ({kind})"

    available = ", ".join(describe(t) for t in transitions) or "none"
    setting = "done_transition" if category == "done" else "reopen_transition"
    where = f"{call.issue} in Jira project {call.project} (status '{status.get('name')}')"
    if override is not None:
        return (
            f"{where} has no transition named '{override}' ({setting} in the routing file's "
            f"[jira.{call.project}] table); available: {available}"
        )
    return (
        f"{where} has no transition to a {_CATEGORY_NAMES[category]} status; available: "
        f"{available}. Set {setting} in the routing file's [jira.{call.project}] table or add "
        "such a transition to the project's workflow"
    )

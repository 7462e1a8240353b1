"""An in-memory Jira REST API (issues subset) that the real `jira` client talks to over HTTP.

    emulator = JiraEmulator(flavor="cloud").start()
    emulator.add_project("OPS")
    jira = JIRA(server=emulator.url, basic_auth=("bot@example.com", "x"))  # Cloud
    jira = JIRA(server=emulator.url, token_auth="x")  # with flavor="dc" (Data Center PAT)

Every route is an operation of tests/contracts/jira/openapi-issues-subset.json, under REST API
v2 (what the library calls; both flavours) and v3 (Cloud only); every response is validated
against that description as it is sent (v2 with ADF fields relaxed to strings, see
tests.jira_contract): problems land in `emulator.contract_errors`, client bodies that break the
request schema in `request_errors`, statuses the description does not list in `undocumented`.

Flavours: **cloud** answers serverInfo with deploymentType "Cloud", wants HTTP Basic
email:api_token, names users by `accountId`, serves `search/jql` (nextPageToken paging) and
answers the removed `search` with 410. **dc** (Data Center) answers deploymentType "Server",
wants `Authorization: Bearer <PAT>`, names users by username (`name`), serves `search`
(startAt/maxResults/total) and has no `search/jql` (404) and no v3.

JQL: the subset in `Jql` (project, labels, key, updated; AND; ORDER BY); anything else is
refused with Jira's 400 shape naming the clause. Dates in JQL are read in the user's time zone,
which here is UTC (`myself` says so).

What people do in Jira's UI (`transition_as`, `comment_as`, `edit_as`) is not counted as API
traffic and sends webhooks to `send_webhooks_to(url, secret)`, shaped like the recorded payloads
in tests/contracts/jira/webhooks/. Fault injection and counts work as in the GitHub emulator.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qs, quote, urlsplit

from tests.emulators._http import EmulatedService, Fault, RecordedRequest, Reply, compile_routes
from tests.emulators.webhook_sender import Delivery, WebhookSender
from tests.jira_contract import JiraContractChecker, jira_checker

Json = Any
Flavor = Literal["cloud", "dc"]
Category = Literal["new", "indeterminate", "done"]

# Outside the platform REST API (the Application Links plugin), so outside the contract: the
# library asks for it before add_remote_link and copes with any answer.
APPLINKS = "/rest/applinks/latest/listApplicationlinks"
NOT_AUTHENTICATED = "You are not authenticated. Authentication required to perform this operation."
ISSUE_NOT_FOUND = "Issue does not exist or you do not have permission to see it."
CANNOT_SET = "Field '{}' cannot be set. It is not on the appropriate screen, or unknown."

_CATEGORIES: dict[str, tuple[int, str, str]] = {
    "new": (2, "To Do", "blue-gray"),
    "indeterminate": (4, "In Progress", "yellow"),
    "done": (3, "Done", "green"),
}
PRIORITIES = ("Highest", "High", "Medium", "Low", "Lowest")  # ids 1..5
RESOLUTIONS = ("Done", "Won't Do", "Duplicate", "Cannot Reproduce")  # ids 10000..
_AVATAR_SIZES = ("48x48", "24x24", "16x16", "32x32")


def jira_time(moment: datetime | None) -> str | None:
    """Jira's timestamp form: 2026-11-27T09:00:00.000+0000."""
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def to_adf(text: str) -> dict[str, Any]:
    """A plain (v2) text as an Atlassian Document Format document, a paragraph per line."""
    paragraphs = [
        {"type": "paragraph", "content": [{"type": "text", "text": line}] if line else []}
        for line in text.split("\n")
    ]
    return {"type": "doc", "version": 1, "content": paragraphs}


def from_adf(node: Any) -> str:
    """The text of an ADF document (what v2 shows for a description written through v3).

    integrations.webhooks.adf_text does the same for the product; the emulator keeps its own so
    that it never shares a mistake with the code it tests."""
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return "".join(from_adf(child) for child in node)
    if not isinstance(node, dict):
        return ""
    text = node.get("text") if isinstance(node.get("text"), str) else ""
    inner = from_adf(node.get("content", []))
    return f"{text}{inner}" + ("\n" if node.get("type") == "paragraph" else "")


def _is_adf(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") == "doc"


class JiraError(Exception):
    """An answer in Jira's ErrorCollection shape: {"errorMessages": [...], "errors": {...}}."""

    def __init__(
        self,
        status: int,
        *messages: str,
        errors: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__("; ".join([*messages, *(errors or {}).values()]))
        self.status = status
        self.body: dict[str, Any] = {"errorMessages": list(messages), "errors": errors or {}}
        self.headers = headers or {}


# ----------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Status:
    name: str
    id: str
    category: Category


@dataclass(frozen=True)
class Transition:
    """A workflow transition; `sources` None is a global transition (from any status).
    `screen` lists the fields the transition's screen lets a request set (none by default)."""

    id: str
    name: str
    to: str
    sources: tuple[str, ...] | None = None
    screen: tuple[str, ...] = ()


@dataclass
class JiraWorkflow:
    """Statuses with their categories and the transitions between them (the first status is
    where a new issue starts)."""

    statuses: list[Status]
    transitions: list[Transition]

    def __post_init__(self) -> None:
        names = {status.name for status in self.statuses}
        for status in self.statuses:
            if status.category not in _CATEGORIES:
                raise ValueError(f"status {status.name!r}: category must be new/indeterminate/done")
        for transition in self.transitions:
            unknown = {transition.to, *(transition.sources or ())} - names
            if unknown:
                raise ValueError(f"transition {transition.name!r} names unknown {sorted(unknown)}")

    @classmethod
    def default(cls) -> JiraWorkflow:
        """To Do (new) -> In Progress (indeterminate) -> Done (done), and back."""
        return cls(
            statuses=[
                Status("To Do", "10000", "new"),
                Status("In Progress", "10001", "indeterminate"),
                Status("Done", "10002", "done"),
            ],
            transitions=[
                Transition("11", "Start", "In Progress", ("To Do",)),
                Transition("21", "Done", "Done", ("To Do", "In Progress")),
                Transition("31", "Stop", "To Do", ("In Progress",)),
                Transition("41", "Reopen", "To Do", ("Done",)),
            ],
        )

    @property
    def initial(self) -> Status:
        return self.statuses[0]

    def status(self, name: str) -> Status:
        for status in self.statuses:
            if status.name.lower() == name.lower():
                return status
        raise KeyError(f"no status {name!r} in this workflow")

    def available(self, current: Status) -> list[Transition]:
        return [
            t
            for t in self.transitions
            if (t.sources is None or current.name in t.sources) and t.to != current.name
        ]


@dataclass
class User:
    account_id: str
    display_name: str
    name: str
    email: str | None = None


@dataclass(frozen=True)
class IssueType:
    id: str
    name: str


@dataclass(frozen=True)
class Component:
    id: str
    name: str


@dataclass
class Project:
    id: str
    key: str
    name: str
    issue_types: list[IssueType]
    workflow: JiraWorkflow
    components: list[Component]
    lead: str
    next_number: int = 1


@dataclass
class Comment:
    id: str
    body: Any  # str, or an ADF document when written through v3
    author: str
    created: datetime
    updated: datetime


@dataclass
class RemoteLink:
    id: int
    global_id: str | None
    object: dict[str, Any]
    application: dict[str, Any] | None = None
    relationship: str | None = None


@dataclass
class ChangeItem:
    field: str
    from_: str | None
    from_string: str | None
    to: str | None
    to_string: str | None


@dataclass
class ChangeGroup:
    id: str
    author: str
    created: datetime
    items: list[ChangeItem]


@dataclass
class Issue:
    id: str
    key: str
    project: str
    summary: str
    description: Any  # str (v2) or an ADF document (v3)
    issuetype: str
    status: Status
    resolution: str | None
    labels: list[str]
    duedate: str | None
    priority: str
    components: list[str]
    assignee: str | None  # Cloud accountId / Data Center username
    reporter: str
    comments: list[Comment]
    remote_links: list[RemoteLink]
    created: datetime
    updated: datetime
    resolutiondate: datetime | None = None
    history: list[ChangeGroup] = field(default_factory=list)
    searchable_at: float = 0.0  # time.monotonic() from which search sees it (index lag)


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, list[str]]
    params: dict[str, str]
    body: Json
    user: User
    version: str  # "2" or "3"

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def int_arg(self, name: str, default: int) -> int:
        value = self.arg(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError as exc:
            raise JiraError(400, f"'{name}' must be a number, got '{value}'.") from exc

    def list_arg(self, name: str) -> list[str] | None:
        """A list parameter sent repeated (fields=a&fields=b) or comma separated."""
        values = self.query.get(name)
        if values is None:
            return None
        return [part.strip() for value in values for part in value.split(",") if part.strip()]


# ----------------------------------------------------------------------------- JQL


_TOKEN = re.compile(
    r"""\s*(?:(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<op>>=|<=|!=|=|>|<|~|!~)"""
    r"""|(?P<punct>[(),])|(?P<word>[^\s(),=!<>~"']+))"""
)
_JQL_DATE_FORMATS = ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d")
_KNOWN_FIELDS = {
    "project",
    "labels",
    "key",
    "issuekey",
    "updated",
    "created",
    "status",
    "statuscategory",
    "resolution",
    "assignee",
    "reporter",
    "duedate",
    "priority",
    "component",
    "summary",
    "description",
    "text",
    "issuetype",
    "type",
    "id",
    "issue",
}


@dataclass
class _Token:
    kind: str
    text: str
    value: str


@dataclass
class Clause:
    field: str
    op: str
    values: list[str]
    text: str


@dataclass
class Jql:
    """The JQL subset the emulator understands: clauses joined with AND, then ORDER BY.

    project = X | project in (X, Y); labels = "a" | labels in ("a", "b"); key = K |
    key in (K1, K2) (also issuekey); updated >=|>|<=|< "YYYY-MM-DD HH:MM" (also with slashes,
    or a date alone; read as UTC, minute precision) or epoch milliseconds;
    ORDER BY updated|created|key [ASC|DESC], ...
    """

    clauses: list[Clause]
    order: list[tuple[str, bool]]  # (field, descending)

    @classmethod
    def parse(cls, text: str) -> Jql:
        tokens = _tokenize(text)
        clauses: list[Clause] = []
        order: list[tuple[str, bool]] = []
        i = 0

        def word(at: int) -> str:
            return tokens[at].value.lower() if at < len(tokens) else ""

        while i < len(tokens):
            if word(i) == "order" and word(i + 1) == "by":
                i += 2
                while i < len(tokens):
                    name = word(i)
                    if name not in ("updated", "created", "key", "issuekey"):
                        raise JiraError(
                            400,
                            f"The emulator's JQL cannot order by '{tokens[i].value}' "
                            "(supported: updated, created, key).",
                        )
                    descending = False
                    i += 1
                    if word(i) in ("asc", "desc"):
                        descending = word(i) == "desc"
                        i += 1
                    order.append(("key" if name == "issuekey" else name, descending))
                    if i < len(tokens) and tokens[i].text == ",":
                        i += 1
                        continue
                    break
                if i < len(tokens):
                    raise JiraError(
                        400,
                        f"Error in the JQL Query: unexpected '{tokens[i].text}' after ORDER BY.",
                    )
                break
            if clauses:
                if word(i) != "and":
                    raise JiraError(
                        400,
                        f"The emulator's JQL joins clauses with AND only; '{tokens[i].text}' "
                        "is not supported.",
                    )
                i += 1
            clause, i = _clause(tokens, i, text)
            clauses.append(clause)
        return cls(clauses, order)

    @property
    def bounded(self) -> bool:
        return bool(self.clauses)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise JiraError(
                400, f"Error in the JQL Query: the character at position {position} is reserved."
            )
        position = match.end()
        if match["string"] is not None:
            raw = match["string"]
            value = re.sub(r"\\(.)", r"\1", raw[1:-1])
            tokens.append(_Token("string", raw, value))
        elif match["op"] is not None:
            tokens.append(_Token("op", match["op"], match["op"]))
        elif match["punct"] is not None:
            tokens.append(_Token("punct", match["punct"], match["punct"]))
        else:
            tokens.append(_Token("word", match["word"], match["word"]))
    return tokens


def _clause(tokens: list[_Token], i: int, text: str) -> tuple[Clause, int]:
    start = i
    if i >= len(tokens) or tokens[i].kind not in ("word", "string"):
        got = tokens[i].text if i < len(tokens) else "the end of the query"
        raise JiraError(400, f"Error in the JQL Query: expected a field name, got '{got}'.")
    name = tokens[i].value.lower()
    if name in ("not", "(") or tokens[i].text == "(":
        raise JiraError(400, f"The emulator's JQL does not support '{tokens[i].text}'.")
    i += 1
    if i >= len(tokens):
        raise JiraError(400, f"Error in the JQL Query: '{tokens[start].text}' needs an operator.")
    op = tokens[i].value.lower()
    if tokens[i].kind == "word" and op == "not" and i + 1 < len(tokens):
        op = "not " + tokens[i + 1].value.lower()
        i += 1
    i += 1
    values: list[str] = []
    if op in ("in", "not in"):
        if i >= len(tokens) or tokens[i].text != "(":
            raise JiraError(400, "Error in the JQL Query: expected '(' after IN.")
        i += 1
        while i < len(tokens) and tokens[i].text != ")":
            if tokens[i].text != ",":
                values.append(tokens[i].value)
            i += 1
        i += 1
    elif i < len(tokens):
        values.append(tokens[i].value)
        i += 1
    words = " ".join(token.text for token in tokens[start:i])
    supported = {
        "project": ("=", "in"),
        "labels": ("=", "in"),
        "key": ("=", "in"),
        "issuekey": ("=", "in"),
        "updated": (">=", ">", "<=", "<"),
    }
    if name not in _KNOWN_FIELDS and not name.startswith("cf["):
        raise JiraError(
            400,
            f"Field '{tokens[start].value}' does not exist or you do not have permission to view "
            "it.",
        )
    if name not in supported or op not in supported[name] or not values:
        raise JiraError(
            400,
            f"The emulator's JQL does not support the clause '{words}' (in: {text!r}).",
        )
    return Clause("key" if name == "issuekey" else name, op, values, words), i


def _jql_moment(value: str, clause: Clause) -> datetime:
    if re.fullmatch(r"\d{10,}", value):
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    for form in _JQL_DATE_FORMATS:
        try:
            return datetime.strptime(value, form).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise JiraError(
        400,
        f"Date value '{value}' for field '{clause.field}' is invalid. Valid formats include: "
        "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format "
        "e.g. '-5d', '4w 2d'.",
    )


# ----------------------------------------------------------------------------- the emulator


class JiraEmulator(EmulatedService):
    """Jira's issues REST API, in memory, over real HTTP on 127.0.0.1."""

    thread_name = "jira-emulator"

    def __init__(
        self,
        *,
        flavor: Flavor = "cloud",
        email: str = "bot@example.com",
        api_token: str = "x",
        pat: str = "x",
        clock: Callable[[], datetime] | None = None,
        index_lag: float = 0.0,
        contract: JiraContractChecker | None = None,
    ) -> None:
        super().__init__(contract if contract is not None else jira_checker())
        if flavor not in ("cloud", "dc"):
            raise ValueError("flavor is 'cloud' or 'dc'")
        self.flavor: Flavor = flavor
        self.server_header = "AtlassianEdge" if flavor == "cloud" else "Apache-Coyote/1.1"
        self.email = email
        self.api_token = api_token
        self.pat = pat
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.index_lag = index_lag
        self.users: dict[str, User] = {}  # by account id
        self.projects: dict[str, Project] = {}  # by key
        self._issues: dict[str, Issue] = {}  # by key
        self._issue_types: dict[str, IssueType] = {}  # by name
        self._components: dict[tuple[str, str], Component] = {}
        self._ids = 10000
        self.webhooks = WebhookSender(
            event_header=None,
            delivery_header=_ID_HEADER,
            signature_header="X-Hub-Signature",
            user_agent="Atlassian Webhook HTTP Client",
            synchronous=True,
        )
        self.api_webhooks = False  # also send webhooks for changes made through the API
        self.webhook_description_adf = False  # the recorded Cloud payloads carry wiki text
        local = email.split("@", 1)[0]
        self.bot = self.add_user(
            hashlib.sha1(email.encode()).hexdigest()[:24], "afteraction bot", name=local
        )
        self.bot.email = email
        versions = ("2", "3") if flavor == "cloud" else ("2",)
        table = [row for version in versions for row in self._route_table(version)]
        table.append(("GET", APPLINKS, self._applinks))
        self.routes = compile_routes(table, {})

    @property
    def url(self) -> str:
        """What to pass as JIRA(server=...)."""
        return self.origin

    # ----------------------------------------------------------------------------- state
    def _next_id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids

    def add_user(self, account_id: str, display_name: str, *, name: str | None = None) -> User:
        """A person; Cloud names them by `account_id`, Data Center by username `name`."""
        user = User(account_id, display_name, name or account_id)
        with self._lock:
            self.users[account_id] = user
        return user

    def _issue_type(self, name: str) -> IssueType:
        with self._lock:
            if name not in self._issue_types:
                self._issue_types[name] = IssueType(str(10001 + len(self._issue_types)), name)
            return self._issue_types[name]

    def add_project(
        self,
        key: str,
        *,
        name: str | None = None,
        issue_types: Sequence[str] = ("Task", "Bug"),
        workflow: JiraWorkflow | None = None,
        components: Sequence[str] = (),
    ) -> Project:
        if not re.fullmatch(r"[A-Z][A-Z0-9_]{1,9}", key):
            raise ValueError(f"{key!r} is not a Jira project key (e.g. OPS)")
        with self._lock:
            project = Project(
                id=str(self._next_id()),
                key=key,
                name=name or key.title(),
                issue_types=[self._issue_type(t) for t in issue_types],
                workflow=workflow or JiraWorkflow.default(),
                components=[],
                lead=self.bot.account_id,
            )
            for component in components:
                found = Component(str(self._next_id()), component)
                self._components[(key, component.lower())] = found
                project.components.append(found)
            self.projects[key] = project
            return project

    def issue(self, key: str) -> Issue:
        return self._issues[key.upper()]

    def issues(self, project: str) -> list[Issue]:
        return [issue for issue in self._issues.values() if issue.project == project]

    def _user_ref(self, user: User) -> str:
        return user.account_id if self.flavor == "cloud" else user.name

    def _user_by_ref(self, ref: str) -> User | None:
        for user in self.users.values():
            if ref == (user.account_id if self.flavor == "cloud" else user.name):
                return user
        return None

    def _person(self, ref: str) -> User:
        """The user a UI action is done by (a new one is added for an unknown name)."""
        return self._user_by_ref(ref) or self.add_user(ref, ref, name=ref)

    # ----------------------------------------------------------------------------- faults
    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 502,
        method: str | None = None,
        path: str | None = None,
        message: str = "Internal server error",
    ) -> None:
        """The next n matching requests get `status` with Jira's error body. `path` is a route
        template ("/rest/api/2/issue") or an fnmatch glob on the path."""
        body = {"errorMessages": [message], "errors": {}}
        self.add_fault(Fault(n, status, body, {}, method, path))

    def rate_limit_next(
        self,
        n: int = 1,
        *,
        retry_after: int = 5,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """The next n matching requests get 429 with Retry-After and the X-RateLimit-* headers
        this flavour sends (Cloud: Limit/Remaining/Reset/NearLimit and RateLimit-Reason; Data
        Center: Limit/Remaining/FillRate/Interval-Seconds)."""
        headers = {"retry-after": str(retry_after), "x-ratelimit-remaining": "0"}
        if self.flavor == "cloud":
            reset = datetime.now(UTC) + timedelta(seconds=retry_after)
            headers.update(
                {
                    "x-ratelimit-limit": "350",
                    "x-ratelimit-reset": reset.strftime("%Y-%m-%dT%H:%MZ"),
                    "x-ratelimit-nearlimit": "true",
                    "ratelimit-reason": "jira-burst-based",
                }
            )
        else:
            headers.update(
                {
                    "x-ratelimit-limit": "20",
                    "x-ratelimit-fillrate": "10",
                    "x-ratelimit-interval-seconds": "1",
                }
            )
        body = {"errorMessages": ["Rate limit exceeded."], "errors": {}}
        self.add_fault(Fault(n, 429, body, headers, method, path))

    # ----------------------------------------------------------------------------- serializers
    def _api(self, version: str, path: str) -> str:
        return f"{self.origin}/rest/api/{version}{path}"

    def _avatars(self, seed: str) -> dict[str, str]:
        digest = hashlib.md5(seed.encode()).hexdigest()
        return {size: f"{self.origin}/avatar/{digest}?s={size[:2]}" for size in _AVATAR_SIZES}

    def user_json(self, user: User, version: str = "2") -> dict[str, Any]:
        body: dict[str, Any] = {
            "self": self._api(version, f"/user?accountId={user.account_id}")
            if self.flavor == "cloud"
            else self._api(version, f"/user?username={quote(user.name)}"),
            "avatarUrls": self._avatars(user.account_id),
            "displayName": user.display_name,
            "active": True,
            "timeZone": "UTC",
        }
        if self.flavor == "cloud":
            body.update({"accountId": user.account_id, "accountType": "atlassian"})
        else:
            body.update({"name": user.name, "key": f"JIRAUSER{abs(hash(user.name)) % 100000}"})
        if user.email:
            body["emailAddress"] = user.email
        return body

    def _user_or_none(self, ref: str | None, version: str) -> dict[str, Any] | None:
        user = self._user_by_ref(ref) if ref else None
        return self.user_json(user, version) if user else None

    def status_json(self, status: Status, version: str) -> dict[str, Any]:
        category_id, category_name, color = _CATEGORIES[status.category]
        return {
            "self": self._api(version, f"/status/{status.id}"),
            "description": "",
            "iconUrl": f"{self.origin}/images/icons/statuses/generic.png",
            "name": status.name,
            "id": status.id,
            "statusCategory": {
                "self": self._api(version, f"/statuscategory/{category_id}"),
                "id": category_id,
                "key": status.category,
                "colorName": color,
                "name": category_name,
            },
        }

    def issue_type_json(self, issue_type: IssueType, version: str) -> dict[str, Any]:
        return {
            "self": self._api(version, f"/issuetype/{issue_type.id}"),
            "id": issue_type.id,
            "description": f"A {issue_type.name.lower()}.",
            "iconUrl": f"{self.origin}/images/icons/issuetypes/{issue_type.name.lower()}.svg",
            "name": issue_type.name,
            "subtask": False,
            "avatarId": 10300 + int(issue_type.id) % 100,
            "hierarchyLevel": 0,
        }

    def _project_ref_json(self, project: Project, version: str) -> dict[str, Any]:
        return {
            "self": self._api(version, f"/project/{project.id}"),
            "id": project.id,
            "key": project.key,
            "name": project.name,
            "projectTypeKey": "software",
            "avatarUrls": self._avatars(project.key),
        }

    def _component_json(self, project: Project, name: str, version: str) -> dict[str, Any]:
        component = self._components[(project.key, name.lower())]
        return {
            "self": self._api(version, f"/component/{component.id}"),
            "id": component.id,
            "name": component.name,
        }

    def project_json(self, project: Project, version: str) -> dict[str, Any]:
        body = self._project_ref_json(project, version)
        lead = self.users[project.lead]
        body.update(
            {
                "expand": "description,lead,issueTypes,url,projectKeys,permissions,insight",
                "description": "",
                "lead": self.user_json(lead, version),
                "components": [
                    self._component_json(project, c.name, version) for c in project.components
                ],
                "issueTypes": [self.issue_type_json(t, version) for t in project.issue_types],
                "assigneeType": "UNASSIGNED",
                "versions": [],
                "roles": {},
                "isPrivate": False,
                "properties": {},
                "simplified": False,
                "style": "classic",
            }
        )
        return body

    def _priority_json(self, name: str, version: str) -> dict[str, Any]:
        number = PRIORITIES.index(name) + 1
        return {
            "self": self._api(version, f"/priority/{number}"),
            "iconUrl": f"{self.origin}/images/icons/priorities/{name.lower()}.svg",
            "name": name,
            "id": str(number),
        }

    def _resolution_json(self, name: str | None, version: str) -> dict[str, Any] | None:
        if name is None:
            return None
        number = 10000 + RESOLUTIONS.index(name)
        return {
            "self": self._api(version, f"/resolution/{number}"),
            "id": str(number),
            "description": f"{name}.",
            "name": name,
        }

    def comment_json(self, issue: Issue, comment: Comment, version: str) -> dict[str, Any]:
        author = self._user_or_none(comment.author, version)
        body: dict[str, Any] = {
            "self": self._api(version, f"/issue/{issue.id}/comment/{comment.id}"),
            "id": comment.id,
            "author": author,
            "body": self._text(comment.body, version),
            "updateAuthor": author,
            "created": jira_time(comment.created),
            "updated": jira_time(comment.updated),
        }
        if self.flavor == "cloud":
            body["jsdPublic"] = True
        return body

    def _text(self, value: Any, version: str) -> Any:
        """A description/comment body as this API version shows it (v3 ADF, v2 a string)."""
        if value is None:
            return None
        if version == "3":
            return value if _is_adf(value) else to_adf(str(value))
        return from_adf(value).rstrip("\n") if _is_adf(value) else value

    def _comments_page(
        self, issue: Issue, version: str, start: int = 0, limit: int = 5000
    ) -> dict[str, Any]:
        page = issue.comments[start : start + limit]
        return {
            "comments": [self.comment_json(issue, c, version) for c in page],
            "maxResults": limit,
            "total": len(issue.comments),
            "startAt": start,
        }

    def fields_json(self, issue: Issue, version: str) -> dict[str, Any]:
        project = self.projects[issue.project]
        return {
            "summary": issue.summary,
            "description": self._text(issue.description, version),
            "issuetype": self.issue_type_json(self._issue_type(issue.issuetype), version),
            "project": self._project_ref_json(project, version),
            "status": self.status_json(issue.status, version),
            "resolution": self._resolution_json(issue.resolution, version),
            "resolutiondate": jira_time(issue.resolutiondate),
            "labels": list(issue.labels),
            "duedate": issue.duedate,
            "priority": self._priority_json(issue.priority, version),
            "components": [self._component_json(project, c, version) for c in issue.components],
            "assignee": self._user_or_none(issue.assignee, version),
            "reporter": self._user_or_none(issue.reporter, version),
            "creator": self._user_or_none(issue.reporter, version),
            "created": jira_time(issue.created),
            "updated": jira_time(issue.updated),
            "comment": {
                **self._comments_page(issue, version),
                "self": self._api(version, f"/issue/{issue.id}/comment"),
            },
            "watches": {
                "self": self._api(version, f"/issue/{issue.key}/watchers"),
                "watchCount": 1,
                "isWatching": True,
            },
        }

    def issue_json(
        self,
        issue: Issue,
        version: str,
        *,
        fields: list[str] | None = None,
        expand: str | None = None,
    ) -> dict[str, Any]:
        every = self.fields_json(issue, version)
        wanted = fields or ["*all"]
        include = {f for f in wanted if not f.startswith("-")}
        exclude = {f[1:] for f in wanted if f.startswith("-")}
        if include & {"*all", "*navigable"}:
            chosen = {k: v for k, v in every.items() if k not in exclude}
        else:
            chosen = {k: v for k, v in every.items() if k in include and k not in exclude}
        body: dict[str, Any] = {
            "expand": "renderedFields,names,schema,operations,editmeta,changelog,"
            "versionedRepresentations",
            "id": issue.id,
            "self": self._api(version, f"/issue/{issue.id}"),
            "key": issue.key,
            "fields": chosen,
        }
        expansions = {part.strip() for part in (expand or "").split(",") if part.strip()}
        if "names" in expansions:
            names = {f["id"]: f["name"] for f in self._field_list()}
            body["names"] = {k: names.get(k, k) for k in chosen}
        if "transitions" in expansions:
            body["transitions"] = self._transitions_json(issue, version)
        if "changelog" in expansions:
            body["changelog"] = self._changelog_json(issue, version)
        return body

    def _changelog_json(self, issue: Issue, version: str) -> dict[str, Any]:
        histories = []
        for group in issue.history:
            items = []
            for item in group.items:
                entry = {"field": item.field, "fieldtype": "jira", "fieldId": item.field}
                for name, value in (
                    ("from", item.from_),
                    ("fromString", item.from_string),
                    ("to", item.to),
                    ("toString", item.to_string),
                ):
                    if value is not None:  # the description types these as plain strings
                        entry[name] = value
                items.append(entry)
            histories.append(
                {
                    "id": group.id,
                    "author": self._user_or_none(group.author, version),
                    "created": jira_time(group.created),
                    "items": items,
                }
            )
        total = len(histories)
        return {"startAt": 0, "maxResults": total, "total": total, "histories": histories}

    def _transitions_json(self, issue: Issue, version: str) -> list[dict[str, Any]]:
        workflow = self.projects[issue.project].workflow
        return [
            {
                "id": t.id,
                "name": t.name,
                "to": self.status_json(workflow.status(t.to), version),
                "hasScreen": bool(t.screen),
                "isGlobal": t.sources is None,
                "isInitial": False,
                "isAvailable": True,
                "isConditional": False,
                "isLooped": False,
            }
            for t in workflow.available(issue.status)
        ]

    def _field_list(self) -> list[dict[str, Any]]:
        def system(
            ident: str, name: str, kind: str | None, clauses: list[str], items: str | None = None
        ) -> dict[str, Any]:
            body: dict[str, Any] = {
                "id": ident,
                "key": ident,
                "name": name,
                "custom": False,
                "orderable": kind is not None,
                "navigable": True,
                "searchable": True,
                "clauseNames": clauses,
            }
            if kind is not None:
                body["schema"] = {"type": kind, "system": ident}
                if items:
                    body["schema"]["items"] = items
            return body

        return [
            system("issuekey", "Key", None, ["id", "issue", "issuekey", "key"]),
            system("summary", "Summary", "string", ["summary"]),
            system("description", "Description", "string", ["description"]),
            system("issuetype", "Issue Type", "issuetype", ["issuetype", "type"]),
            system("project", "Project", "project", ["project"]),
            system("status", "Status", "status", ["status"]),
            system("resolution", "Resolution", "resolution", ["resolution"]),
            system("resolutiondate", "Resolved", "datetime", ["resolutiondate", "resolved"]),
            system("labels", "Labels", "array", ["labels"], "string"),
            system("duedate", "Due date", "date", ["due", "duedate"]),
            system("priority", "Priority", "priority", ["priority"]),
            system("components", "Components", "array", ["component"], "component"),
            system("assignee", "Assignee", "user", ["assignee"]),
            system("reporter", "Reporter", "user", ["reporter"]),
            system("creator", "Creator", "user", ["creator"]),
            system("created", "Created", "datetime", ["created", "createdDate"]),
            system("updated", "Updated", "datetime", ["updated", "updatedDate"]),
            system("comment", "Comment", "comments-page", ["comment"]),
            system("watches", "Watchers", "watches", ["watchers"]),
        ]

    # ----------------------------------------------------------------------------- routes
    def _route_table(self, version: str) -> list[tuple[str, str, Callable[[Any], Reply]]]:
        api = f"/rest/api/{version}"
        issue = api + "/issue/{issueIdOrKey}"
        return [
            ("GET", api + "/serverInfo", self._server_info),
            ("GET", api + "/myself", self._myself),
            ("GET", api + "/field", self._fields),
            ("GET", api + "/issuetype", self._issue_types_list),
            ("GET", api + "/project/{projectIdOrKey}", self._get_project),
            ("POST", api + "/issue", self._create_issue),
            ("GET", issue, self._get_issue),
            ("PUT", issue, self._edit_issue),
            ("GET", issue + "/transitions", self._get_transitions),
            ("POST", issue + "/transitions", self._do_transition),
            ("GET", issue + "/comment", self._list_comments),
            ("POST", issue + "/comment", self._add_comment),
            ("GET", issue + "/comment/{id}", self._get_comment),
            ("PUT", issue + "/comment/{id}", self._update_comment),
            ("GET", issue + "/remotelink", self._list_remote_links),
            ("POST", issue + "/remotelink", self._create_remote_link),
            ("GET", issue + "/remotelink/{linkId}", self._get_remote_link),
            ("PUT", issue + "/remotelink/{linkId}", self._update_remote_link),
            ("DELETE", issue + "/remotelink/{linkId}", self._delete_remote_link),
            ("GET", api + "/search", self._search),
            ("POST", api + "/search", self._search),
            ("GET", api + "/search/jql", self._search_jql),
            ("POST", api + "/search/jql", self._search_jql),
            ("POST", api + "/search/approximate-count", self._approximate_count),
        ]

    def _applinks(self, req: _Request) -> Reply:
        return Reply(200, {"list": []})

    def _server_info(self, req: _Request) -> Reply:
        now = jira_time(self.clock())
        if self.flavor == "cloud":
            version, numbers, kind, build = "1001.0.0-SNAPSHOT", [1001, 0, 0], "Cloud", 100282
        else:
            version, numbers, kind, build = "9.12.15", [9, 12, 15], "Server", 9120015
        return Reply(
            200,
            {
                "baseUrl": self.origin,
                "displayUrl": self.origin,
                "version": version,
                "versionNumbers": numbers,
                "deploymentType": kind,
                "buildNumber": build,
                "buildDate": "2026-11-20T00:00:00.000+0000",
                "serverTime": now,
                "scmInfo": "0" * 40,
                "serverTitle": "Jira",
                "serverTimeZone": "UTC",
            },
        )

    def _myself(self, req: _Request) -> Reply:
        body = self.user_json(req.user, req.version)
        body.update(
            {
                "locale": "en_US",
                "groups": {"size": 1, "items": []},
                "applicationRoles": {"size": 1, "items": []},
                "expand": "groups,applicationRoles",
            }
        )
        return Reply(200, body)

    def _fields(self, req: _Request) -> Reply:
        return Reply(200, self._field_list())

    def _issue_types_list(self, req: _Request) -> Reply:
        types = sorted(self._issue_types.values(), key=lambda t: int(t.id))
        return Reply(200, [self.issue_type_json(t, req.version) for t in types])

    def _find_project(self, ref: str) -> Project | None:
        for project in self.projects.values():
            if ref in (project.id, project.key) or ref.upper() == project.key:
                return project
        return None

    def _get_project(self, req: _Request) -> Reply:
        ref = req.params["projectIdOrKey"]
        project = self._find_project(ref)
        if project is None:
            raise JiraError(404, f"No project could be found with key '{ref}'.")
        return Reply(200, self.project_json(project, req.version))

    def _find_issue(self, req: _Request) -> Issue:
        ref = req.params["issueIdOrKey"]
        issue = self._issues.get(ref.upper())
        if issue is None:
            issue = next((i for i in self._issues.values() if i.id == ref), None)
        if issue is None:
            raise JiraError(404, ISSUE_NOT_FOUND)
        return issue

    # ----------------------------------------------------------------------------- fields
    def _user_field(self, name: str, value: Any) -> str | None:
        """The stored reference for a user field value, or JiraError (Cloud: accountId)."""
        if value is None:
            return None
        if not isinstance(value, dict):
            raise JiraError(400, errors={name: f"Specify the {name} as an object."})
        if self.flavor == "cloud":
            ref = value.get("accountId", value.get("id"))
            if ref is None and "name" in value:
                raise JiraError(
                    400,
                    errors={
                        name: "Jira Cloud identifies users by accountId; 'name' is not supported."
                    },
                )
        else:
            ref = value.get("name", value.get("key"))
        if not isinstance(ref, str) or self._user_by_ref(ref) is None:
            raise JiraError(400, errors={name: f"User '{ref}' does not exist."})
        return ref

    def _named(self, name: str, value: Any, choices: Sequence[str], ids: Sequence[str]) -> str:
        if isinstance(value, dict):
            if isinstance(value.get("name"), str):
                for choice in choices:
                    if choice.lower() == value["name"].lower():
                        return choice
            if value.get("id") is not None and str(value["id"]) in ids:
                return choices[list(ids).index(str(value["id"]))]
        label = value.get("name", value.get("id")) if isinstance(value, dict) else value
        title = name.capitalize()
        raise JiraError(400, errors={name: f"{title} name '{label}' is not valid"})

    def _apply_field(
        self, issue: Issue, project: Project, name: str, value: Any, version: str
    ) -> None:
        """Set one field from a request's `fields` (JiraError for a bad value)."""
        if name == "summary":
            if not isinstance(value, str) or not value.strip():
                raise JiraError(400, errors={"summary": "You must specify a summary of the issue."})
            if "\n" in value or "\r" in value:
                raise JiraError(
                    400,
                    errors={
                        "summary": "The summary is invalid because it contains newline characters."
                    },
                )
            if len(value) > 255:
                raise JiraError(
                    400, errors={"summary": "Summary must be less than 255 characters."}
                )
            issue.summary = value
        elif name == "description":
            if version == "3" and value is not None and not _is_adf(value):
                raise JiraError(
                    400, errors={"description": "Operation value must be an Atlassian Document."}
                )
            if version == "2" and value is not None and not isinstance(value, str):
                raise JiraError(400, errors={"description": "Operation value must be a string"})
            issue.description = value
        elif name == "labels":
            issue.labels = self._labels(value)
        elif name == "duedate":
            issue.duedate = self._date(value)
        elif name == "priority":
            ids = [str(n) for n in range(1, len(PRIORITIES) + 1)]
            issue.priority = self._named("priority", value, PRIORITIES, ids)
        elif name == "components":
            if not isinstance(value, list):
                raise JiraError(400, errors={"components": "Components must be a list."})
            chosen = [self._component(project, v) for v in value]
            issue.components = list(dict.fromkeys(chosen))
        elif name in ("assignee", "reporter"):
            ref = self._user_field(name, value)
            if name == "assignee":
                issue.assignee = ref
            elif ref is not None:
                issue.reporter = ref
        elif name == "issuetype":
            types = [t.name for t in project.issue_types]
            ids = [t.id for t in project.issue_types]
            if not isinstance(value, dict) or not (
                value.get("name") in types or str(value.get("id")) in ids
            ):
                raise JiraError(400, errors={"issuetype": "The issue type selected is invalid."})
            issue.issuetype = (
                value["name"] if value.get("name") in types else types[ids.index(str(value["id"]))]
            )
        else:
            raise JiraError(400, errors={name: CANNOT_SET.format(name)})

    def _component(self, project: Project, value: Any) -> str:
        for component in project.components:
            if isinstance(value, dict) and (
                value.get("name") == component.name or str(value.get("id")) == component.id
            ):
                return component.name
        label = value.get("name", value.get("id")) if isinstance(value, dict) else value
        raise JiraError(400, errors={"components": f"Component name '{label}' is not valid"})

    @staticmethod
    def _labels(value: Any) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise JiraError(400, errors={"labels": "Labels must be a list of strings."})
        for label in value:
            if not label or any(c.isspace() for c in label) or len(label) > 255:
                raise JiraError(
                    400, errors={"labels": f"The label '{label}' contains spaces which is invalid."}
                )
        return list(dict.fromkeys(value))

    @staticmethod
    def _date(value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, str):
            try:
                return datetime.strptime(value, "%Y-%m-%d").strftime("%Y-%m-%d")
            except ValueError:
                pass
        raise JiraError(400, errors={"duedate": f"Error parsing date string: {value}"})

    def _apply_fields(
        self, issue: Issue, project: Project, fields: Any, version: str, *, creating: bool
    ) -> None:
        if not isinstance(fields, dict):
            raise JiraError(400, "Field 'fields' must be an object.")
        errors: dict[str, str] = {}
        for name, value in fields.items():
            if creating and name in ("project",):
                continue
            try:
                self._apply_field(issue, project, name, value, version)
            except JiraError as error:
                errors.update(error.body["errors"])
        if errors:
            raise JiraError(400, errors=errors)

    def _apply_update(self, issue: Issue, project: Project, update: Any, req: _Request) -> None:
        """`update`: {field: [{"add"|"remove"|"set": value}, ...]} (labels, components,
        comment add, and set on any settable field)."""
        if not isinstance(update, dict):
            raise JiraError(400, "Field 'update' must be an object.")
        for name, operations in update.items():
            if not isinstance(operations, list) or not all(
                isinstance(op, dict) and len(op) == 1 for op in operations
            ):
                raise JiraError(
                    400,
                    f"Can not deserialize the operations for '{name}': expected a list of "
                    'objects such as {"add": ...}.',
                )
            for operation in operations:
                ((verb, value),) = operation.items()
                if name == "comment" and verb == "add" and isinstance(value, dict):
                    self._new_comment(issue, value.get("body"), req.user, req.version)
                elif name == "labels" and verb in ("add", "remove"):
                    current = list(issue.labels)
                    label = self._labels([value])[0]
                    if verb == "add" and label not in current:
                        current.append(label)
                    if verb == "remove" and label in current:
                        current.remove(label)
                    issue.labels = current
                elif name == "components" and verb in ("add", "remove"):
                    component = self._component(project, value)
                    current = [c for c in issue.components if c != component]
                    issue.components = [*current, component] if verb == "add" else current
                elif verb == "set":
                    self._apply_field(issue, project, name, value, req.version)
                else:
                    raise JiraError(400, errors={name: CANNOT_SET.format(name)})

    # ----------------------------------------------------------------------------- issues
    def _create_issue(self, req: _Request) -> Reply:
        body = _object_body(req.body)
        fields = body.get("fields")
        if not isinstance(fields, dict):
            raise JiraError(400, "Issue must have 'fields'.")
        ref = fields.get("project")
        project = None
        if isinstance(ref, dict):
            project = self._find_project(str(ref.get("id") or ref.get("key") or ""))
        if project is None:
            raise JiraError(400, errors={"project": "Specify a valid project ID or key"})
        errors: dict[str, str] = {}
        if "summary" not in fields:
            errors["summary"] = "You must specify a summary of the issue."
        if "issuetype" not in fields:
            errors["issuetype"] = "Specify an issue type"
        now = self.clock()
        with self._lock:
            issue = Issue(
                id=str(self._next_id()),
                key=f"{project.key}-{project.next_number}",
                project=project.key,
                summary="",
                description=None,
                issuetype=project.issue_types[0].name,
                status=project.workflow.initial,
                resolution=None,
                labels=[],
                duedate=None,
                priority="Medium",
                components=[],
                assignee=None,
                reporter=self._user_ref(req.user),
                comments=[],
                remote_links=[],
                created=now,
                updated=now,
                searchable_at=time.monotonic() + self.index_lag,
            )
            try:
                self._apply_fields(issue, project, fields, req.version, creating=True)
            except JiraError as error:
                errors.update(error.body["errors"])
            if errors:
                raise JiraError(400, errors=errors)
            if "update" in body:
                self._apply_update(issue, project, body["update"], req)
            project.next_number += 1
            self._issues[issue.key] = issue
        created = {
            "id": issue.id,
            "key": issue.key,
            "self": self._api(req.version, f"/issue/{issue.id}"),
        }
        return Reply(201, created)

    def _get_issue(self, req: _Request) -> Reply:
        issue = self._find_issue(req)
        body = self.issue_json(
            issue, req.version, fields=req.list_arg("fields"), expand=req.arg("expand")
        )
        return Reply(200, body)

    def _snapshot(self, issue: Issue) -> dict[str, tuple[str | None, str | None]]:
        """(value, display string) of the fields a changelog tracks."""
        project = self.projects[issue.project]
        assignee = self._user_by_ref(issue.assignee) if issue.assignee else None
        labels = " ".join(issue.labels) or None
        resolution_id = (
            str(10000 + RESOLUTIONS.index(issue.resolution)) if issue.resolution else None
        )
        return {
            "summary": (None, issue.summary),
            "description": (None, from_adf(issue.description) if issue.description else None),
            "status": (issue.status.id, issue.status.name),
            "resolution": (resolution_id, issue.resolution),
            "duedate": (issue.duedate, f"{issue.duedate} 00:00:00.0" if issue.duedate else None),
            "assignee": (issue.assignee, assignee.display_name if assignee else None),
            "labels": (None, labels),
            "priority": (str(PRIORITIES.index(issue.priority) + 1), issue.priority),
            "components": (None, ", ".join(issue.components) or None),
            "issuetype": (
                self._issue_type(issue.issuetype).id if project else None,
                issue.issuetype,
            ),
        }

    def _record_change(
        self, issue: Issue, before: dict[str, tuple[str | None, str | None]], author: User
    ) -> ChangeGroup | None:
        after = self._snapshot(issue)
        items = [
            ChangeItem(name, before[name][0], before[name][1], after[name][0], after[name][1])
            for name in after
            if after[name] != before[name]
        ]
        if not items:
            return None
        now = self.clock()
        group = ChangeGroup(str(self._next_id()), self._user_ref(author), now, items)
        issue.history.append(group)
        issue.updated = now
        return group

    def _edit_issue(self, req: _Request) -> Reply:
        issue = self._find_issue(req)
        project = self.projects[issue.project]
        body = _object_body(req.body)
        before = self._snapshot(issue)
        comments = len(issue.comments)
        trial = _copy_issue(issue)
        self._apply_fields(trial, project, body.get("fields", {}), req.version, creating=False)
        if "update" in body:
            self._apply_update(trial, project, body["update"], req)
        _restore(issue, trial)
        group = self._record_change(issue, before, req.user)
        if len(issue.comments) > comments:
            issue.updated = self.clock()
        if group is not None and self.api_webhooks:
            self._issue_updated(issue, group, req.user)
        if (req.arg("returnIssue") or "").lower() == "true":
            return Reply(200, self.issue_json(issue, req.version))
        return Reply(204)

    # ----------------------------------------------------------------------------- transitions
    def _get_transitions(self, req: _Request) -> Reply:
        issue = self._find_issue(req)
        transitions = self._transitions_json(issue, req.version)
        wanted = req.arg("transitionId")
        if wanted is not None:
            transitions = [t for t in transitions if t["id"] == wanted]
        if "transitions.fields" in (req.arg("expand") or ""):
            for transition in transitions:
                transition["fields"] = {}
        return Reply(200, {"expand": "transitions", "transitions": transitions})

    def _do_transition(self, req: _Request) -> Reply:
        issue = self._find_issue(req)
        body = _object_body(req.body)
        transition_ref = body.get("transition")
        ident = transition_ref.get("id") if isinstance(transition_ref, dict) else None
        if ident is None:
            raise JiraError(400, "Missing 'transition' identifier")
        workflow = self.projects[issue.project].workflow
        chosen = next((t for t in workflow.available(issue.status) if t.id == str(ident)), None)
        if chosen is None:
            raise JiraError(400, f"Transition id '{ident}' is not valid for this issue.")
        fields = body.get("fields") or {}
        resolution: str | None = None
        errors: dict[str, str] = {}
        for name, value in fields.items() if isinstance(fields, dict) else ():
            if name not in chosen.screen:
                errors[name] = CANNOT_SET.format(name)
            elif name == "resolution":
                ids = [str(10000 + n) for n in range(len(RESOLUTIONS))]
                try:
                    resolution = self._named("resolution", value, RESOLUTIONS, ids)
                except JiraError as error:
                    errors.update(error.body["errors"])
        if errors:
            raise JiraError(400, errors=errors)
        before = self._snapshot(issue)
        if "update" in body:
            trial = _copy_issue(issue)
            self._apply_update(trial, self.projects[issue.project], body["update"], req)
            _restore(issue, trial)
        for name, value in fields.items() if isinstance(fields, dict) else ():
            if name != "resolution":
                self._apply_field(issue, self.projects[issue.project], name, value, req.version)
        self._move(issue, workflow.status(chosen.to), resolution)
        group = self._record_change(issue, before, req.user)
        if group is not None and self.api_webhooks:
            self._issue_updated(issue, group, req.user)
        return Reply(204)

    def _move(self, issue: Issue, status: Status, resolution: str | None = None) -> None:
        issue.status = status
        if status.category == "done":
            if issue.resolution is None or resolution is not None:
                issue.resolution = resolution or "Done"
                issue.resolutiondate = self.clock()
        else:
            issue.resolution = None
            issue.resolutiondate = None

    # ----------------------------------------------------------------------------- comments
    @staticmethod
    def _comment_body(text: Any, version: str) -> Any:
        if version == "3":
            valid = _is_adf(text) and bool(from_adf(text).strip())
        else:
            valid = isinstance(text, str) and bool(text.strip())
        if not valid:
            raise JiraError(400, errors={"comment": "Comment body can not be empty!"})
        return text

    def _new_comment(self, issue: Issue, text: Any, author: User, version: str) -> Comment:
        self._comment_body(text, version)
        now = self.clock()
        comment = Comment(str(self._next_id()), text, self._user_ref(author), now, now)
        issue.comments.append(comment)
        issue.updated = now
        return comment

    def _list_comments(self, req: _Request) -> Reply:
        issue = self._find_issue(req)
        start = max(req.int_arg("startAt", 0), 0)
        limit = min(max(req.int_arg("maxResults", 100), 0), 5000)
        order = req.arg("orderBy", "created")
        if order not in ("created", "+created", "-created"):
            raise JiraError(400, f"orderBy must be created or -created, got '{order}'.")
        page = self._comments_page(issue, req.version, start, limit)
        if order == "-created":
            ordered = list(reversed(issue.comments))[start : start + limit]
            page["comments"] = [self.comment_json(issue, c, req.version) for c in ordered]
        return Reply(200, page)

    def _add_comment(self, req: _Request) -> Reply:
        issue = self._find_issue(req)
        body = _object_body(req.body)
        comment = self._new_comment(issue, body.get("body"), req.user, req.version)
        if self.api_webhooks:
            self._comment_created(issue, comment)
        return Reply(201, self.comment_json(issue, comment, req.version))

    def _find_comment(self, req: _Request) -> tuple[Issue, Comment]:
        issue = self._find_issue(req)
        for comment in issue.comments:
            if comment.id == req.params["id"]:
                return issue, comment
        raise JiraError(404, f"Can not find a comment for the id: {req.params['id']}.")

    def _get_comment(self, req: _Request) -> Reply:
        issue, comment = self._find_comment(req)
        return Reply(200, self.comment_json(issue, comment, req.version))

    def _update_comment(self, req: _Request) -> Reply:
        issue, comment = self._find_comment(req)
        body = _object_body(req.body)
        comment.body = self._comment_body(body.get("body"), req.version)
        comment.updated = self.clock()
        return Reply(200, self.comment_json(issue, comment, req.version))

    # ----------------------------------------------------------------------------- remote links
    def remote_link_json(self, issue: Issue, link: RemoteLink, version: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": link.id,
            "self": self._api(version, f"/issue/{issue.key}/remotelink/{link.id}"),
            "object": link.object,
        }
        if link.global_id is not None:
            body["globalId"] = link.global_id
        if link.application is not None:
            body["application"] = link.application
        if link.relationship is not None:
            body["relationship"] = link.relationship
        return body

    def _list_remote_links(self, req: _Request) -> Reply:
        issue = self._find_issue(req)
        global_id = req.arg("globalId")
        if global_id is not None:
            for link in issue.remote_links:
                if link.global_id == global_id:
                    return Reply(200, self.remote_link_json(issue, link, req.version))
            raise JiraError(404, f"No remote link with globalId '{global_id}'.")
        return Reply(
            200, [self.remote_link_json(issue, k, req.version) for k in issue.remote_links]
        )

    def _link_fields(self, body: dict[str, Any]) -> RemoteLink:
        target = body.get("object")
        errors: dict[str, str] = {}
        if not isinstance(target, dict):
            raise JiraError(400, errors={"object": "'object' is required."})
        for name in ("url", "title"):
            if not isinstance(target.get(name), str) or not target[name]:
                errors[name] = f"'{name}' is required."
        if errors:
            raise JiraError(400, errors=errors)
        application = body.get("application")
        relationship = body.get("relationship")
        global_id = body.get("globalId")
        return RemoteLink(
            0,
            global_id if isinstance(global_id, str) else None,
            target,
            application if isinstance(application, dict) else None,
            relationship if isinstance(relationship, str) else None,
        )

    def _create_remote_link(self, req: _Request) -> Reply:
        issue = self._find_issue(req)
        link = self._link_fields(_object_body(req.body))
        existing = next(
            (k for k in issue.remote_links if link.global_id and k.global_id == link.global_id),
            None,
        )
        status = 200 if existing is not None else 201
        if existing is not None:
            link.id = existing.id
            issue.remote_links[issue.remote_links.index(existing)] = link
        else:
            link.id = self._next_id()
            issue.remote_links.append(link)
        issue.updated = self.clock()
        self_url = self._api(req.version, f"/issue/{issue.key}/remotelink/{link.id}")
        return Reply(status, {"id": link.id, "self": self_url})

    def _find_link(self, req: _Request) -> tuple[Issue, RemoteLink]:
        issue = self._find_issue(req)
        for link in issue.remote_links:
            if str(link.id) == req.params["linkId"]:
                return issue, link
        raise JiraError(404, f"No remote link with id '{req.params['linkId']}'.")

    def _get_remote_link(self, req: _Request) -> Reply:
        issue, link = self._find_link(req)
        return Reply(200, self.remote_link_json(issue, link, req.version))

    def _update_remote_link(self, req: _Request) -> Reply:
        issue, link = self._find_link(req)
        replacement = self._link_fields(_object_body(req.body))
        replacement.id = link.id
        issue.remote_links[issue.remote_links.index(link)] = replacement
        return Reply(204)

    def _delete_remote_link(self, req: _Request) -> Reply:
        issue, link = self._find_link(req)
        issue.remote_links.remove(link)
        return Reply(204)

    # ----------------------------------------------------------------------------- search
    def _matches(self, issue: Issue, clause: Clause) -> bool:
        if clause.field == "project":
            return issue.project in {v.upper() for v in clause.values} or any(
                self.projects[issue.project].id == v for v in clause.values
            )
        if clause.field == "labels":
            return bool(set(issue.labels) & set(clause.values))
        if clause.field == "key":
            return issue.key in {v.upper() for v in clause.values} or issue.id in clause.values
        moment = _jql_moment(clause.values[0], clause)
        return {
            ">=": issue.updated >= moment,
            ">": issue.updated > moment,
            "<=": issue.updated <= moment,
            "<": issue.updated < moment,
        }[clause.op]

    def _run_jql(self, text: str, *, reconcile: Sequence[str] = ()) -> list[Issue]:
        query = Jql.parse(text)
        for clause in query.clauses:
            if clause.field == "project":
                for value in clause.values:
                    if self._find_project(value) is None:
                        raise JiraError(
                            400, f"The value '{value}' does not exist for the field 'project'."
                        )
            if clause.field == "updated":
                _jql_moment(clause.values[0], clause)
        now = time.monotonic()
        found = [
            issue
            for issue in self._issues.values()
            if (issue.searchable_at <= now or issue.id in reconcile)
            and all(self._matches(issue, clause) for clause in query.clauses)
        ]

        def key_order(issue: Issue) -> tuple[str, int]:
            project, _, number = issue.key.rpartition("-")
            return (project, int(number))

        found.sort(key=key_order)
        for name, descending in reversed(query.order):
            if name == "key":
                found.sort(key=key_order, reverse=descending)
            else:
                found.sort(key=lambda i, n=name: getattr(i, n), reverse=descending)  # type: ignore[misc]
        return found

    def _search_args(self, req: _Request) -> dict[str, Any]:
        """The search parameters from the query string (GET) or the JSON body (POST)."""
        if req.method == "GET":
            return {
                "jql": req.arg("jql", ""),
                "startAt": req.arg("startAt"),
                "maxResults": req.arg("maxResults"),
                "nextPageToken": req.arg("nextPageToken"),
                "fields": req.list_arg("fields"),
                "expand": req.arg("expand"),
                "reconcileIssues": req.list_arg("reconcileIssues") or [],
            }
        body = _object_body(req.body)
        fields = body.get("fields")
        expand = body.get("expand")
        return {
            "jql": body.get("jql") or "",
            "startAt": body.get("startAt"),
            "maxResults": body.get("maxResults"),
            "nextPageToken": body.get("nextPageToken"),
            "fields": [str(f) for f in fields] if isinstance(fields, list) else None,
            "expand": ",".join(expand) if isinstance(expand, list) else expand,
            "reconcileIssues": [str(i) for i in body.get("reconcileIssues") or []],
        }

    @staticmethod
    def _number(value: Any, name: str, default: int) -> int:
        if value is None or value == "":
            return default
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise JiraError(400, f"'{name}' must be a number, got '{value}'.") from exc

    def _search(self, req: _Request) -> Reply:
        """Data Center's search (startAt/maxResults/total); removed from Jira Cloud."""
        if self.flavor == "cloud":
            raise JiraError(
                410,
                "The requested API has been removed. Please migrate to the /rest/api/3/search/jql "
                "API. A full migration guideline is available at "
                "https://developer.atlassian.com/changelog/#CHANGE-2046",
            )
        args = self._search_args(req)
        start = max(self._number(args["startAt"], "startAt", 0), 0)
        limit = min(max(self._number(args["maxResults"], "maxResults", 50), 0), 1000)
        found = self._run_jql(args["jql"])
        page = found[start : start + limit]
        return Reply(
            200,
            {
                "expand": "schema,names",
                "startAt": start,
                "maxResults": limit,
                "total": len(found),
                "issues": [
                    self.issue_json(i, req.version, fields=args["fields"], expand=args["expand"])
                    for i in page
                ],
            },
        )

    def _page_token(self, jql: str, offset: int) -> str:
        raw = json.dumps({"q": hashlib.sha1(jql.encode()).hexdigest()[:12], "at": offset})
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def _token_offset(self, jql: str, token: str) -> int:
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            if data["q"] != hashlib.sha1(jql.encode()).hexdigest()[:12]:
                raise ValueError("another query")
            return int(data["at"])
        except (ValueError, KeyError, TypeError) as exc:
            raise JiraError(400, "The provided next page token is invalid or expired.") from exc

    def _search_jql(self, req: _Request) -> Reply:
        """Jira Cloud's enhanced search: nextPageToken paging, no total."""
        if self.flavor != "cloud":
            raise JiraError(404, "null for uri: " + req.path)
        args = self._search_args(req)
        query = Jql.parse(args["jql"])
        if not query.bounded:
            raise JiraError(
                400,
                "Unbounded JQL queries are not allowed here. Please add a search restriction to "
                "your query.",
            )
        limit = min(max(self._number(args["maxResults"], "maxResults", 50), 1), 100)
        token = args["nextPageToken"]
        offset = self._token_offset(args["jql"], token) if token else 0
        found = self._run_jql(args["jql"], reconcile=args["reconcileIssues"])
        page = found[offset : offset + limit]
        fields = args["fields"] or ["id"]
        issues = []
        for issue in page:
            if fields == ["id"]:
                issues.append({"id": issue.id})
            else:
                issues.append(
                    self.issue_json(issue, req.version, fields=fields, expand=args["expand"])
                )
        body: dict[str, Any] = {"issues": issues, "isLast": offset + limit >= len(found)}
        if not body["isLast"]:
            body["nextPageToken"] = self._page_token(args["jql"], offset + limit)
        return Reply(200, body)

    def _approximate_count(self, req: _Request) -> Reply:
        if self.flavor != "cloud":
            raise JiraError(404, "null for uri: " + req.path)
        body = _object_body(req.body)
        return Reply(200, {"count": len(self._run_jql(str(body.get("jql") or "")))})

    # ----------------------------------------------------------------------------- UI actions
    def transition_as(self, key: str, status_name: str, *, by: str) -> None:
        """Someone moves the issue to `status_name` through a transition the workflow offers
        from its current status (ValueError otherwise); the resolution follows the category."""
        with self._lock:
            issue = self.issue(key)
            user = self._person(by)
            workflow = self.projects[issue.project].workflow
            target = workflow.status(status_name)
            offered = workflow.available(issue.status)
            if not any(t.to == target.name for t in offered):
                names = ", ".join(f"{t.name} -> {t.to}" for t in offered) or "none"
                raise ValueError(
                    f"{key} is {issue.status.name}; no transition leads to {target.name} "
                    f"(offered: {names})"
                )
            before = self._snapshot(issue)
            self._move(issue, target)
            group = self._record_change(issue, before, user)
        if group is not None:
            self._issue_updated(issue, group, user)

    def comment_as(self, key: str, text: str, *, by: str) -> None:
        with self._lock:
            issue = self.issue(key)
            user = self._person(by)
            comment = self._new_comment(issue, text, user, "2")
        self._comment_created(issue, comment)

    def edit_as(
        self,
        key: str,
        *,
        by: str,
        duedate: str | None = None,
        assignee: str | None = None,
        labels: list[str] | None = None,
    ) -> None:
        """Someone edits the issue; None leaves a field as it is, "" clears the due date or
        the assignee."""
        with self._lock:
            issue = self.issue(key)
            user = self._person(by)
            before = self._snapshot(issue)
            if duedate is not None:
                issue.duedate = self._date(duedate or None)
            if assignee is not None:
                issue.assignee = self._user_ref(self._person(assignee)) if assignee else None
            if labels is not None:
                issue.labels = self._labels(labels)
            group = self._record_change(issue, before, user)
        if group is not None:
            self._issue_updated(issue, group, user)

    # ----------------------------------------------------------------------------- webhooks
    def send_webhooks_to(self, url: str, secret: str | None) -> None:
        """Deliver webhooks to `url`, signed with `secret` (X-Hub-Signature: sha256=<hex>, as
        Jira Cloud admin webhooks with a secret are), or unsigned when it is None (as Data
        Center sends them). A delivery is answered before the person's action returns."""
        self.webhooks.to(url, secret)

    def drop_next_webhooks(self, n: int = 1) -> None:
        """Lose the next n deliveries (recorded with status None and error 'dropped')."""
        self.webhooks.drop_next(n)

    @property
    def deliveries(self) -> list[Delivery]:
        return self.webhooks.deliveries

    def webhook_issue_json(self, issue: Issue) -> dict[str, Any]:
        body = self.issue_json(issue, "2")
        del body["expand"]  # the recorded payloads have neither
        body["fields"].pop("comment", None)
        if self.webhook_description_adf and issue.description is not None:
            body["fields"]["description"] = self._text(issue.description, "3")
        return body

    def _issue_updated(self, issue: Issue, group: ChangeGroup, user: User) -> None:
        fields = {item.field for item in group.items}
        if fields & {"status", "resolution"}:
            event_type = "issue_generic"
        elif fields == {"assignee"}:
            event_type = "issue_assigned"
        else:
            event_type = "issue_updated"
        payload = {
            "timestamp": int(group.created.timestamp() * 1000),
            "webhookEvent": "jira:issue_updated",
            "issue_event_type_name": event_type,
            "user": self.user_json(user),
            "issue": self.webhook_issue_json(issue),
            "changelog": {
                "id": group.id,
                "items": [
                    {
                        "field": item.field,
                        "fieldtype": "jira",
                        "fieldId": item.field,
                        "from": item.from_,
                        "fromString": item.from_string,
                        "to": item.to,
                        "toString": item.to_string,
                    }
                    for item in group.items
                ],
            },
        }
        self.webhooks.send("jira:issue_updated", payload)

    def _comment_created(self, issue: Issue, comment: Comment) -> None:
        payload: dict[str, Any] = {
            "timestamp": int(comment.created.timestamp() * 1000),
            "webhookEvent": "comment_created",
            "comment": self.comment_json(issue, comment, "2"),
        }
        if self.flavor == "cloud":  # Data Center's comment_created names no issue
            full = self.webhook_issue_json(issue)["fields"]
            reduced = ("summary", "issuetype", "project", "assignee", "priority", "status")
            payload["issue"] = {
                "id": issue.id,
                "self": self._api("2", f"/issue/{issue.id}"),
                "key": issue.key,
                "fields": {name: full[name] for name in reduced},
            }
        self.webhooks.send("comment_created", payload)

    def redeliver(self, delivery: Delivery) -> Delivery:
        """Send a delivery again, as Jira retries: same body, same identifier."""
        return self.webhooks.redeliver(delivery, **{"X-Atlassian-Webhook-Retry": "1"})

    # ----------------------------------------------------------------------------- dispatch
    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes
    ) -> tuple[Reply, str | None]:
        """Answer one request (called from the HTTP handler; usable directly in unit tests)."""
        split = urlsplit(raw_path)
        path = split.path
        query = parse_qs(split.query, keep_blank_values=True)
        template, handler, params, _ = self.route(method, path)
        self.count(method, template, path)
        self.pause(method, path, template)
        fault = self.take_fault(method, path, template)
        if fault is not None:
            reply = Reply(fault.status, json.loads(json.dumps(fault.body)), dict(fault.headers))
        else:
            reply = self._dispatch(
                method, path, query, params, headers, raw_body, handler, template
            )
        base = {
            "content-type": "application/json;charset=UTF-8",
            "x-arequestid": f"{self._next_id():x}",
        }
        base.update(reply.headers)
        reply.headers = base
        self.record(method, path, template, reply.status)
        if template == APPLINKS:
            with self._lock:
                self.undocumented.append(f"{method} {template} {reply.status}")
        else:
            self.check_contract(method, template, path, reply)
        return reply, template

    def _dispatch(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        params: dict[str, str],
        headers: dict[str, str],
        raw_body: bytes,
        handler: Callable[[Any], Reply] | None,
        template: str | None,
    ) -> Reply:
        try:
            user = self._authenticate(headers)
            if handler is None:
                raise JiraError(404, f"null for uri: {self.origin}{path}")
            body: Json = None
            if raw_body:
                try:
                    body = json.loads(raw_body)
                except ValueError as exc:
                    raise JiraError(400, "Unexpected character in the request body.") from exc
            if template != APPLINKS:
                self.check_request_body(method, template, body)
            version = "3" if path.startswith("/rest/api/3/") else "2"
            request = _Request(method, path, query, params, body, user, version)
            with self._lock:
                return handler(request)
        except JiraError as error:
            return Reply(error.status, error.body, error.headers)

    def _authenticate(self, headers: dict[str, str]) -> User:
        scheme, _, credential = headers.get("authorization", "").partition(" ")
        if self.flavor == "cloud" and scheme.lower() == "basic":
            expected = base64.b64encode(f"{self.email}:{self.api_token}".encode()).decode()
            if credential.strip() == expected:
                return self.bot
        if self.flavor == "dc" and scheme.lower() == "bearer" and credential.strip() == self.pat:
            return self.bot
        raise JiraError(
            401,
            NOT_AUTHENTICATED,
            headers={
                "www-authenticate": 'Basic realm="protected-area"'
                if self.flavor == "cloud"
                else "Bearer",
                "x-seraph-loginreason": "AUTHENTICATED_FAILED",
            },
        )


_ID_HEADER = "X-Atlassian-Webhook-Identifier"


def _object_body(body: Json) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise JiraError(400, "The request body must be a JSON object.")
    return body


def _copy_issue(issue: Issue) -> Issue:
    """A copy to apply a request to, so a refused request changes nothing."""
    return Issue(
        **{
            **issue.__dict__,
            "labels": list(issue.labels),
            "components": list(issue.components),
            "comments": list(issue.comments),
        }
    )


def _restore(issue: Issue, trial: Issue) -> None:
    for name, value in trial.__dict__.items():
        setattr(issue, name, value)


__all__ = [
    "Comment",
    "Issue",
    "JiraEmulator",
    "JiraError",
    "JiraWorkflow",
    "Jql",
    "Project",
    "RecordedRequest",
    "Reply",
    "Status",
    "Transition",
    "User",
]

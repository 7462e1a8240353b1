"""The Jira tracker adapter with the real `jira` client against the Jira emulator, both flavours.

One emulator per flavour serves the module; each test works in a project of its own, so tests
share no issues. Counts are read as differences around the calls under test.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from domain.action_item import TicketStatus
from domain.routing import JiraProjectEntry
from domain.tickets import TicketChange, TicketDraft
from integrations import ticket_markers
from integrations.jira import JiraTracker
from integrations.jira_text import Flavor
from integrations.tracker import TrackerError
from tests.emulators.jira import JiraEmulator, JiraWorkflow, Status, Transition
from tests.helpers import eventually_sync

SECRET = "atl-secret-do-not-leak"
ALICE = "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077"
LEAD = "5b10ac8d82e05b22cc7d4ef5"
DUE = datetime(2026, 12, 15, 17, 0, tzinfo=UTC)
KEY = "incident/INC-261127-7KQ2/action/2"
SEARCH = {"cloud": "GET /rest/api/2/search/jql", "dc": "GET /rest/api/2/search"}
CREATE = "POST /rest/api/2/issue"
ISSUE = "GET /rest/api/2/issue/{issueIdOrKey}"
TRANSITION = "POST /rest/api/2/issue/{issueIdOrKey}/transitions"
# The library sends a transition's id as a number ({"id": 21}); Jira takes it, the description
# types it as a string.
_LIBRARY_TRANSITION_ID = re.compile(r"transition/id: \d+ is not of type 'string'$")
_projects = (f"P{n}" for n in itertools.count(1))

SHIP = JiraWorkflow(
    statuses=[
        Status("Backlog", "20000", "new"),
        Status("Building", "20001", "indeterminate"),
        Status("Shipped", "20002", "done"),
    ],
    transitions=[
        Transition("101", "Build", "Building", ("Backlog",)),
        Transition("102", "Ship it", "Shipped", ("Backlog", "Building"), ("resolution",)),
        Transition("103", "Send back", "Backlog", ("Shipped",)),
    ],
)


@pytest.fixture(scope="module", params=["cloud", "dc"])
def emulator(request: pytest.FixtureRequest) -> Iterator[JiraEmulator]:
    flavor: Flavor = request.param
    emu = JiraEmulator(flavor=flavor, api_token=SECRET, pat=SECRET).start()
    emu.add_user(ALICE, "Alice", name="alice")
    emu.add_user(LEAD, "Lee Lead", name="lee")
    try:
        yield emu
        assert emu.contract_errors == []
        assert [e for e in emu.request_errors if not _LIBRARY_TRANSITION_ID.search(e)] == []
    finally:
        emu.stop()


@pytest.fixture
def flavor(emulator: JiraEmulator) -> Flavor:
    return emulator.flavor


@pytest.fixture
def project(emulator: JiraEmulator) -> str:
    key = next(_projects)
    emulator.add_project(key, components=["billing-api", "ledger"])
    return key


def person(flavor: Flavor, account_id: str) -> str:
    """How the routing file names someone: Cloud account id, Data Center username."""
    return account_id if flavor == "cloud" else {ALICE: "alice", LEAD: "lee"}[account_id]


def make_tracker(emulator: JiraEmulator, **options: object) -> JiraTracker:
    flavor = emulator.flavor
    settings: dict[str, object] = {
        "flavor": flavor,
        "email": emulator.email,
        "api_token": SecretStr(emulator.api_token),
        "pat": SecretStr(emulator.pat),
        "timeout": 5,
        "people": [person(flavor, ALICE), person(flavor, LEAD)],
        "incident_url": lambda key: f"https://afteraction.example/api/incidents/{key}",
    }
    settings.update(options)
    return JiraTracker(emulator.url, **settings)  # type: ignore[arg-type]


@pytest.fixture
def tracker(emulator: JiraEmulator) -> Iterator[JiraTracker]:
    jira = make_tracker(emulator)
    yield jira
    jira.shutdown()


def draft(flavor: Flavor, key: str = KEY, **overrides: object) -> TicketDraft:
    fields: dict[str, object] = {
        "idempotency_key": key,
        "title": "[INC-261127-7KQ2] Add a circuit breaker to the payments client",
        "body": "Action item INC-261127-7KQ2-2 from incident INC-261127-7KQ2: checkout down\n\n"
        "Owning team: payments\nKind: short term mitigation\nPriority: P2\n"
        "Due: 2026-12-15T17:00+00:00\n\nSuccess criteria:\np99 < 300 ms\n\n"
        "SLO: https://slo.example/checkout",
        "labels": ["afteraction", "short_term_mitigation", "sev2"],
        "assignee": person(flavor, ALICE),
        "due_at": DUE,
        "priority": "P2",
        "components": ["billing-api"],
    }
    fields.update(overrides)
    return TicketDraft.model_validate(fields)


class Calls:
    """The emulator's request counts made between `with` and its end."""

    def __init__(self, emulator: JiraEmulator) -> None:
        self._emulator = emulator
        self.made: Counter[str] = Counter()

    def __enter__(self) -> Calls:
        self._before = Counter(self._emulator.counts)
        return self

    def __exit__(self, *exc: object) -> None:
        self.made = Counter(self._emulator.counts) - self._before

    @property
    def total(self) -> int:
        return sum(self.made.values())


def refusal(error: pytest.ExceptionInfo[TrackerError]) -> str:
    message = str(error.value)
    assert SECRET not in message
    assert not error.value.retryable, message
    return message


# ------------------------------------------------------------------------------ creation


def test_ensure_creates_one_issue_with_every_field_and_finds_it_after(
    emulator: JiraEmulator, tracker: JiraTracker, project: str, flavor: Flavor
) -> None:
    target = f"jira:{project}"
    with Calls(emulator) as creating:
        first, created = tracker.ensure(target, draft(flavor))
    with Calls(emulator) as finding:
        again, created_again = tracker.ensure(target, draft(flavor))

    assert (created, created_again) == (True, False)
    assert creating.made == Counter({SEARCH[flavor]: 1, CREATE: 1})
    assert finding.made == Counter({SEARCH[flavor]: 1})
    assert again.ref == first.ref and again.ref.key == f"{project}-1"
    assert first.ref.url == f"{emulator.url}/browse/{project}-1"
    assert (first.idempotency_key, again.idempotency_key) == (KEY, KEY)
    assert first.status is again.status is TicketStatus.OPEN
    assert first.assignee == again.assignee == person(flavor, ALICE)
    assert first.due_at == again.due_at == datetime(2026, 12, 15, tzinfo=UTC)

    [issue] = emulator.issues(project)
    assert issue.summary == "[INC-261127-7KQ2] Add a circuit breaker to the payments client"
    assert issue.labels == [
        "afteraction",
        "short_term_mitigation",
        "sev2",
        "afteraction-key:INC-261127-7KQ2-2",
    ]
    assert issue.duedate == "2026-12-15"
    assert issue.priority == "High"
    assert issue.components == ["billing-api"]
    assert issue.assignee == person(flavor, ALICE)
    assert issue.issuetype == "Task"
    description = issue.description
    assert isinstance(description, str)
    assert ticket_markers.key_from_text(description) == KEY
    assert (
        "Incident: [INC-261127-7KQ2|https://afteraction.example/api/incidents/INC-261127-7KQ2]"
        in description
    )
    assert "Success criteria:\np99 < 300 ms" in description
    assert "SLO: https://slo.example/checkout" in description
    assert "Due:" not in description  # Jira's due date field carries it (and follows extensions)


def test_issue_type_and_priorities_come_from_the_team_and_the_project(
    emulator: JiraEmulator, project: str, flavor: Flavor
) -> None:
    settings = JiraProjectEntry.model_validate(
        {"issue_type": "Bug", "priorities": {"P1": "Highest", "P3": "Lowest"}}
    )
    jira = make_tracker(emulator, projects={project: settings})
    try:
        jira.ensure_ticket(f"jira:{project}", draft(flavor, priority="P3", assignee=None))
        jira.ensure_ticket(
            f"jira:{project}",
            draft(flavor, "incident/INC-261127-7KQ2/action/3", issue_type="Task", components=[]),
        )
    finally:
        jira.shutdown()
    first, second = emulator.issues(project)
    assert (first.issuetype, first.priority, first.assignee) == ("Bug", "Lowest", None)
    assert (second.issuetype, second.priority, second.components) == ("Task", "High", [])


def test_a_create_whose_answer_is_lost_waits_past_the_index_lag_and_makes_no_duplicate(
    flavor: Flavor,
) -> None:
    """Jira created the issue but the answer never came (timeout); its search index lags. The
    error asks the retry to wait longer than the lag, and the retry's look-up finds the issue."""
    with JiraEmulator(flavor=flavor, index_lag=0.6) as emu:
        emu.add_project("LAG", components=["billing-api"])
        emu.slow_next(1, 1.5, method="POST", path="/rest/api/2/issue")
        wait = timedelta(seconds=1)
        hasty = make_tracker(emu, timeout=0.5, people=(), ambiguous_create_retry_after=wait)
        steady = make_tracker(emu, people=())
        try:
            with pytest.raises(TrackerError) as error:
                hasty.ensure_ticket("jira:LAG", draft(flavor, assignee=None))
            assert error.value.retryable and error.value.retry_after == wait
            assert error.value.retry_after.total_seconds() > emu.index_lag
            assert "may have been created" in str(error.value)
            # Jira finishes the create the client gave up on.
            eventually_sync(lambda: emu.issues("LAG"), bool, timeout=5)
            # Just created, the search does not show it yet: what the wait is for.
            since = datetime(2020, 1, 1)
            assert steady.changed_since("jira:LAG", since) == []
            # Within the wait the error asks for, the index catches up and the search shows it.
            eventually_sync(
                lambda: steady.changed_since("jira:LAG", since),
                bool,
                timeout=wait.total_seconds(),
                interval=0.05,
            )
            ticket, created = steady.ensure("jira:LAG", draft(flavor, assignee=None))
        finally:
            hasty.shutdown()
            steady.shutdown()
        assert not created and ticket.ref.key == "LAG-1"
        assert [i.key for i in emu.issues("LAG")] == ["LAG-1"]
        assert emu.counts[CREATE] == 1


def test_a_5xx_on_create_is_an_unknown_outcome_and_a_5xx_before_it_is_a_plain_retry(
    emulator: JiraEmulator, tracker: JiraTracker, project: str, flavor: Flavor
) -> None:
    target = f"jira:{project}"
    emulator.fail_next(1, status=502, method="GET", path=SEARCH[flavor].split(" ")[1])
    with pytest.raises(TrackerError) as lookup:
        tracker.ensure_ticket(target, draft(flavor))
    assert lookup.value.retryable and lookup.value.retry_after is None
    assert "HTTP 502" in str(lookup.value) and project in str(lookup.value)
    emulator.fail_next(1, status=503, method="POST", path="/rest/api/2/issue")
    with pytest.raises(TrackerError) as create:
        tracker.ensure_ticket(target, draft(flavor))
    assert create.value.retryable
    assert create.value.retry_after is not None
    assert create.value.retry_after >= timedelta(seconds=30)
    assert tracker.ensure(target, draft(flavor))[1] is True  # the 503 created nothing here
    assert len(emulator.issues(project)) == 1


def test_a_timeout_on_a_read_is_retryable(flavor: Flavor) -> None:
    with JiraEmulator(flavor=flavor) as emu:
        emu.add_project("SLOW", components=["billing-api"])
        jira = make_tracker(emu, timeout=0.3, people=())
        try:
            ticket = jira.ensure_ticket("jira:SLOW", draft(flavor, assignee=None))
            emu.slow_next(1, 1.0, method="GET")
            with pytest.raises(TrackerError) as error:
                jira.get("jira:SLOW", ticket.ref.key)
        finally:
            jira.shutdown()
        assert error.value.retryable and "did not answer" in str(error.value)


# ------------------------------------------------------------------------------ after creation


def test_comments_mention_the_routing_files_people_and_are_idempotent(
    emulator: JiraEmulator, tracker: JiraTracker, project: str, flavor: Flavor
) -> None:
    target = f"jira:{project}"
    key = tracker.ensure_ticket(target, draft(flavor)).ref.key
    lead = person(flavor, LEAD)
    text = f"@{lead} @payments escalated to team lead: INC-261127-7KQ2-2 is overdue"
    with Calls(emulator) as first:
        tracker.comment(target, key, text, idempotency_key=f"{KEY}/escalation/1")
    with Calls(emulator) as again:
        tracker.comment(target, key, text, idempotency_key=f"{KEY}/escalation/1")
    tracker.comment(target, key, "reminder", idempotency_key=f"{KEY}/escalation/10")

    assert first.total == 2 and again.total == 1  # read + add; then the read finds it
    comments = emulator.issue(key).comments
    assert len(comments) == 2
    mention = f"[~accountid:{LEAD}]" if flavor == "cloud" else "[~lee]"
    body = comments[0].body
    assert body.startswith(f"{mention} @payments escalated to team lead")  # not a known person
    assert f"afteraction:comment={KEY}/escalation/1{{color}}" in body


def test_update_moves_the_due_date_adds_the_escalation_label_and_assigns(
    emulator: JiraEmulator, tracker: JiraTracker, project: str, flavor: Flavor
) -> None:
    target = f"jira:{project}"
    key = tracker.ensure_ticket(target, draft(flavor)).ref.key
    later = datetime(2027, 1, 10, 12, 30, tzinfo=UTC)
    with Calls(emulator) as calls:
        updated = tracker.update(
            target,
            key,
            TicketChange(
                due_at=later, add_labels=["escalated:team_lead"], assignee=person(flavor, LEAD)
            ),
        )
    assert calls.total == 2  # the edit and the library's re-read
    assert updated.due_at == datetime(2027, 1, 10, tzinfo=UTC)
    assert updated.assignee == person(flavor, LEAD)
    assert "escalated-team_lead" in updated.labels
    issue = emulator.issue(key)
    assert issue.duedate == "2027-01-10"
    assert issue.labels.count("escalated-team_lead") == 1
    assert "afteraction-key:INC-261127-7KQ2-2" in issue.labels
    # The same change again is harmless: "add" keeps one label.
    tracker.update(target, key, TicketChange(add_labels=["escalated:team_lead"]))
    assert emulator.issue(key).labels.count("escalated-team_lead") == 1
    assert tracker.get(target, key).labels == emulator.issue(key).labels


def test_close_and_reopen_by_status_category_on_the_default_workflow(
    emulator: JiraEmulator, tracker: JiraTracker, project: str, flavor: Flavor
) -> None:
    target = f"jira:{project}"
    key = tracker.ensure_ticket(target, draft(flavor)).ref.key
    emulator.transition_as(key, "In Progress", by="alice")
    with Calls(emulator) as closing:
        closed = tracker.close(target, key)
    assert closing.made == Counter({ISSUE: 1, TRANSITION: 1})
    assert closed.status is TicketStatus.CLOSED
    assert (emulator.issue(key).status.name, emulator.issue(key).resolution) == ("Done", "Done")
    with Calls(emulator) as again:
        assert tracker.close(target, key).status is TicketStatus.CLOSED
    assert again.made == Counter({ISSUE: 1})
    assert tracker.reopen(target, key).status is TicketStatus.OPEN
    assert emulator.issue(key).status.category == "new"
    with Calls(emulator) as reopened:
        tracker.reopen(target, key)
    assert reopened.made == Counter({ISSUE: 1})


def test_a_renamed_workflow_still_closes_and_reopens_by_category(
    emulator: JiraEmulator, tracker: JiraTracker
) -> None:
    project = next(_projects)
    emulator.add_project(project, workflow=SHIP, components=["billing-api"])
    target = f"jira:{project}"
    key = tracker.ensure_ticket(target, draft(emulator.flavor, assignee=None)).ref.key
    assert tracker.close(target, key).status is TicketStatus.CLOSED
    assert emulator.issue(key).status.name == "Shipped"
    assert tracker.reopen(target, key).status is TicketStatus.OPEN
    assert emulator.issue(key).status.name == "Backlog"


def test_a_project_override_names_the_transition(emulator: JiraEmulator) -> None:
    """Two done statuses: the override picks the one the team uses."""
    workflow = JiraWorkflow(
        statuses=[
            Status("Open", "30000", "new"),
            Status("Rejected", "30001", "done"),
            Status("Fixed", "30002", "done"),
        ],
        transitions=[
            Transition("201", "Reject", "Rejected", ("Open",)),
            Transition("202", "Fix", "Fixed", ("Open",)),
            Transition("203", "Reopen", "Open", ("Rejected", "Fixed")),
        ],
    )
    project = next(_projects)
    emulator.add_project(project, workflow=workflow, components=["billing-api"])
    settings = JiraProjectEntry(done_transition="fix")
    jira = make_tracker(emulator, projects={project: settings})
    try:
        key = jira.ensure_ticket(f"jira:{project}", draft(emulator.flavor, assignee=None)).ref.key
        jira.close(f"jira:{project}", key)
        jira.reopen(f"jira:{project}", key)
        wrong = make_tracker(emulator, projects={project: JiraProjectEntry(done_transition="Ship")})
        with pytest.raises(TrackerError) as error:
            wrong.close(f"jira:{project}", key)
        wrong.shutdown()
    finally:
        jira.shutdown()
    assert [g.items[0].to_string for g in emulator.issue(key).history] == ["Fixed", "Open"]
    message = refusal(error)
    assert f"{key} in Jira project {project}" in message
    assert "no transition named 'Ship' (done_transition" in message
    assert "'Reject' -> Rejected (done), 'Fix' -> Fixed (done)" in message


def test_no_transition_to_done_names_the_project_and_what_is_available(
    emulator: JiraEmulator, tracker: JiraTracker
) -> None:
    workflow = JiraWorkflow(
        statuses=[Status("New", "40000", "new"), Status("Triaged", "40001", "indeterminate")],
        transitions=[Transition("301", "Triage", "Triaged", ("New",))],
    )
    project = next(_projects)
    emulator.add_project(project, workflow=workflow, components=["billing-api"])
    key = tracker.ensure_ticket(f"jira:{project}", draft(emulator.flavor, assignee=None)).ref.key
    with Calls(emulator) as calls, pytest.raises(TrackerError) as error:
        tracker.close(f"jira:{project}", key)
    assert calls.made == Counter({ISSUE: 1})
    message = refusal(error)
    assert f"{key} in Jira project {project} (status 'New')" in message
    assert "no transition to a done status; available: 'Triage' -> Triaged (in progress)" in (
        message
    )
    assert f"done_transition in the routing file's [jira.{project}] table" in message


# ------------------------------------------------------------------------------ refusals


def test_refusals_name_what_to_fix_and_pass_jiras_errors_through(
    emulator: JiraEmulator, tracker: JiraTracker, project: str, flavor: Flavor
) -> None:
    target = f"jira:{project}"
    with pytest.raises(TrackerError) as bad_fields:
        tracker.ensure_ticket(
            target, draft(flavor, components=["nope"], issue_type="Epic", priority="P1")
        )
    message = refusal(bad_fields)
    assert f"creating the action item's issue in project {project} (HTTP 400" in message
    assert "components: Component name 'nope' is not valid" in message
    assert "issuetype: The issue type selected is invalid." in message
    assert "check issue_type in the routing file" in message
    assert "components of the team in the routing file" in message

    with pytest.raises(TrackerError) as missing_project:
        tracker.ensure_ticket("jira:NOPE", draft(flavor))
    message = refusal(missing_project)
    assert "The value 'NOPE' does not exist for the field 'project'." in message
    assert "check the target jira:NOPE in the routing file" in message

    with pytest.raises(TrackerError) as missing_issue:
        tracker.get(target, f"{project}-999")
    message = refusal(missing_issue)
    assert f"Jira issue {project}-999 was not found (404: Issue does not exist" in message

    wrong = make_tracker(emulator, api_token=SecretStr("wrong"), pat=SecretStr("wrong"))
    try:
        with pytest.raises(TrackerError) as unauthorized:
            wrong.ensure_ticket(target, draft(flavor))
    finally:
        wrong.shutdown()
    message = refusal(unauthorized)
    assert "refused the credentials (401: You are not authenticated" in message
    variables = (
        "AFTERACTION_JIRA_EMAIL and AFTERACTION_JIRA_API_TOKEN"
        if flavor == "cloud"
        else "AFTERACTION_JIRA_PAT"
    )
    assert variables in message

    key = tracker.ensure_ticket(target, draft(flavor)).ref.key
    emulator.fail_next(
        1,
        status=403,
        method="POST",
        path="/rest/api/2/issue/*/comment",
        message="You do not have the permission to comment on this issue.",
    )
    with pytest.raises(TrackerError) as forbidden:
        tracker.comment(target, key, "hello", idempotency_key="k/1")
    message = refusal(forbidden)
    assert "You do not have the permission to comment on this issue." in message
    assert f"needs the project permission 'Add Comments' in {project}" in message
    with pytest.raises(TrackerError, match="expected jira:PROJECT"):
        tracker.get("jira:pay", key)
    with pytest.raises(TrackerError, match=f"not an issue of Jira project {project}"):
        tracker.get(target, "OTHER-1")


def test_a_rate_limit_is_retried_after_retry_after_and_no_call_goes_out_before(
    flavor: Flavor,
) -> None:
    now = [1000.0]
    with JiraEmulator(flavor=flavor) as emu:
        emu.add_project("RATE", components=["billing-api"])
        jira = make_tracker(emu, people=(), monotonic=lambda: now[0])
        try:
            emu.rate_limit_next(1, retry_after=7)
            with pytest.raises(TrackerError) as limited:
                jira.ensure_ticket("jira:RATE", draft(flavor, assignee=None))
            assert limited.value.retryable
            assert limited.value.retry_after == timedelta(seconds=7)
            assert "Rate limit exceeded." in str(limited.value)
            made = sum(emu.counts.values())
            now[0] += 6.5
            with pytest.raises(TrackerError) as paused:
                jira.ensure_ticket("jira:RATE", draft(flavor, assignee=None))
            assert paused.value.retryable
            assert paused.value.retry_after == timedelta(seconds=0.5)
            assert sum(emu.counts.values()) == made  # refused without calling
            now[0] += 0.5
            ticket, created = jira.ensure("jira:RATE", draft(flavor, assignee=None))
        finally:
            jira.shutdown()
        assert created and ticket.ref.key == "RATE-1"
        assert emu.counts[CREATE] == 1 and len(emu.issues("RATE")) == 1


# ------------------------------------------------------------------------------ reconciling


def test_changed_since_pages_flat_and_reads_only_changes_past_the_watermark(
    flavor: Flavor,
) -> None:
    clock = [datetime(2026, 11, 27, 9, 0, tzinfo=UTC)]
    with JiraEmulator(flavor=flavor, clock=lambda: clock[0]) as emu:
        emu.add_project("MANY", components=["billing-api"])
        jira = make_tracker(emu, people=())
        try:
            for n in range(1, 251):
                jira.ensure_ticket(
                    "jira:MANY", draft(flavor, f"incident/INC-1-A/action/{n}", assignee=None)
                )
            clock[0] += timedelta(minutes=5)
            watermark = clock[0]
            for n in range(1, 11):
                jira.comment("jira:MANY", f"MANY-{n}", "nudge", idempotency_key=f"n/{n}")
            search = SEARCH[flavor]
            with Calls(emu) as few:
                ten = jira.changed_since("jira:MANY", watermark)
            with Calls(emu) as everything:
                every = jira.changed_since("jira:MANY", watermark - timedelta(hours=1))
            with Calls(emu) as nothing:
                none = jira.changed_since("jira:MANY", watermark + timedelta(seconds=1))
        finally:
            jira.shutdown()
    assert [t.ref.key for t in ten] == [f"MANY-{n}" for n in range(1, 11)]
    assert all(t.idempotency_key for t in ten)
    assert few.made == Counter({search: 1})
    assert len(every) == 250 and everything.made == Counter({search: 3})  # pages of 100
    assert none == [] and nothing.made == Counter({search: 1})


def test_close_duplicate_unkeys_links_comments_and_closes_once(
    emulator: JiraEmulator, tracker: JiraTracker
) -> None:
    project = next(_projects)
    emulator.add_project(project, workflow=SHIP, components=["billing-api"])
    target = f"jira:{project}"
    original = tracker.ensure_ticket(target, draft(emulator.flavor, assignee=None)).ref.key
    # A retry whose look-up the index did not serve yet created a second issue for the key.
    second = tracker.ensure_ticket(
        target, draft(emulator.flavor, "incident/INC-261127-7KQ2/action/9", assignee=None)
    ).ref.key
    emulator.edit_as(
        second, by="alice", labels=["afteraction", "afteraction-key:INC-261127-7KQ2-2"]
    )
    assert {t.idempotency_key for t in tracker.changed_since(target, datetime(2020, 1, 1))} == {KEY}

    tracker.close_duplicate(target, second, original)
    with Calls(emulator) as again:
        tracker.close_duplicate(target, second, original)

    assert again.made == Counter({ISSUE: 1})
    duplicate = emulator.issue(second)
    assert (duplicate.status.name, duplicate.resolution) == ("Shipped", "Duplicate")
    assert [link.object["url"] for link in duplicate.remote_links] == [
        f"{emulator.url}/browse/{original}"
    ]
    assert [c.body.splitlines()[0] for c in duplicate.comments] == [
        f"Duplicate of {original}: afteraction created this issue twice for one action item "
        f"and follows {original}; closing this one."
    ]
    assert ticket_markers.key_from_labels(duplicate.labels) is None
    assert ticket_markers.key_from_text(duplicate.description) is None
    assert emulator.issue(original).status.category == "new"
    # The item's key now names one issue: the original.
    found, created = tracker.ensure(target, draft(emulator.flavor, assignee=None))
    assert (found.ref.key, created) == (original, False)

"""Tracker webhooks: the ticket markers, signatures, every shared real payload parsed, and a
signed GitHub delivery moving a real action item through the real app on the dev server."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from temporalio.testing import WorkflowEnvironment

from app.http.api import create_app
from domain.action_item import ActionItem, TicketStatus, action_workflow_id
from domain.webhook_events import IgnoredDelivery, TrackerEvent
from integrations.ticket_markers import (
    GITHUB_LABEL_LIMIT,
    comment_marker,
    key_from_labels,
    key_from_text,
    label_for,
    marker,
)
from integrations.webhooks import (
    BadSignature,
    MalformedPayload,
    adf_text,
    parse_github,
    parse_jira,
    signature,
    verify_github,
    verify_jira,
)
from settings import Settings
from tests.emulators.github import GitHubEmulator
from tests.helpers import eventually
from tests.reviews import item_spec
from tests.test_api_reviews import Api, item, resolved_incident, review_json, running_api

CONTRACTS = Path(__file__).parent / "contracts"
GITHUB = CONTRACTS / "github" / "webhooks"
JIRA = CONTRACTS / "jira" / "webhooks"
KEY = "incident/INC-261127-7KQ2/action/2"
GITHUB_SECRET = "gh-secret"
JIRA_SECRET = "jira-secret"

incident_keys = st.from_regex(r"\A[A-Z][A-Z0-9]{0,5}-[A-Z0-9-]{1,20}\Z")
workflow_ids = st.builds(
    action_workflow_id, incident_keys, st.integers(min_value=1, max_value=10_000)
)


def payload(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_bytes())
    return data


def raw(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


def github_routed(name: str, key: str = KEY, *, by: str = "body") -> dict[str, Any]:
    """A shared GitHub example made into an afteraction ticket (by body marker or by label)."""
    data = copy.deepcopy(payload(GITHUB / name))
    if by == "body":
        data["issue"]["body"] = f"Cap the pool size.\n\n{marker(key)}\n"
    else:
        data["issue"]["labels"].append({"name": label_for(key), "color": "ededed"})
    return data


# ---- markers ---------------------------------------------------------------------------


def test_marker_and_label_round_trip() -> None:
    assert marker(KEY) == f"<!-- afteraction:key={KEY} -->"
    assert key_from_text(marker(KEY)) == KEY
    assert label_for(KEY) == "afteraction-key:INC-261127-7KQ2-2"
    assert key_from_labels(["afteraction", "bug", label_for(KEY)]) == KEY
    assert key_from_labels(["AfterAction-Key:inc-261127-7kq2-2"]) == KEY  # GitHub ignores case
    assert key_from_text("Plain Jira text: afteraction:key=" + KEY + ".") == KEY
    assert key_from_text(f"afteraction:key={KEY}3") == KEY + "3"  # item 23, not item 2
    assert key_from_text(None) is None and key_from_text("no marker") is None
    assert key_from_labels(["afteraction", "afteraction-key:", "afteraction-key:INC-1"]) is None


@pytest.mark.parametrize("bad", ["INC-1-2", "incident/inc-1/action/2", "incident/INC-1/action/0"])
def test_malformed_keys_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="idempotency key"):
        marker(bad)
    with pytest.raises(ValueError, match="idempotency key"):
        label_for(bad)


def test_a_label_past_githubs_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="50 characters"):
        label_for(action_workflow_id("INC-" + "A" * 40, 1))


@given(key=workflow_ids, before=st.text(), after=st.text())
def test_marker_is_found_in_any_surrounding_text(key: str, before: str, after: str) -> None:
    assert key_from_text(before + marker(key) + after) == key


@given(key=workflow_ids, others=st.lists(st.text().filter(lambda t: ":" not in t)))
def test_label_round_trips_among_other_labels(key: str, others: list[str]) -> None:
    label = label_for(key)
    assert " " not in label and len(label) <= GITHUB_LABEL_LIMIT
    assert key_from_labels([*others, label, *others]) == key


@given(text=st.text())
def test_text_without_a_marker_names_no_key(text: str) -> None:
    assert key_from_text(text.replace("afteraction:key=", "")) is None


# ---- signatures ------------------------------------------------------------------------


def test_githubs_documented_test_vector() -> None:
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert signature("It's a Secret to Everybody", b"Hello, World!") == expected


@pytest.mark.parametrize("verify", [verify_github, verify_jira])
def test_signature_checks(verify: Any) -> None:
    body = (GITHUB / "issues.closed.json").read_bytes()
    good = signature("s3cret", body)
    verify("s3cret", body, good)
    verify("s3cret", body, good.upper().replace("SHA256=", "sha256="))  # hex in any case
    with pytest.raises(BadSignature, match="missing"):
        verify("s3cret", body, None)
    with pytest.raises(BadSignature, match="missing"):
        verify("s3cret", body, "")
    with pytest.raises(BadSignature, match="does not match"):
        verify("other", body, good)
    with pytest.raises(BadSignature, match="does not match"):
        verify("s3cret", body + b" ", good)
    with pytest.raises(BadSignature, match="start with sha256="):
        verify("s3cret", body, good.replace("sha256=", "sha1="))
    with pytest.raises(BadSignature, match="start with sha256="):
        verify("s3cret", body, good.removeprefix("sha256="))


# ---- parsing the shared real payloads ----------------------------------------------------


@pytest.mark.parametrize("path", sorted(GITHUB.glob("*.json")), ids=lambda path: path.name)
def test_every_shared_github_payload_parses(path: Path) -> None:
    event = path.name.split(".")[0]
    parsed = parse_github(event, path.read_bytes(), "d-1")
    assert isinstance(parsed, IgnoredDelivery)  # none of them is an afteraction ticket
    assert parsed.ping == (event == "ping")


@pytest.mark.parametrize("path", sorted(JIRA.glob("*.json")), ids=lambda path: path.name)
def test_every_shared_jira_payload_parses(path: Path) -> None:
    parsed = parse_jira(path.read_bytes(), None)
    if isinstance(parsed, TrackerEvent):  # a comment: the reduced issue names no item
        assert (parsed.event, parsed.ticket_key, parsed.workflow_id) == (
            "commented",
            "TES-41",
            None,
        )
        assert parsed.delivery_id.startswith("sha256:")
    else:
        assert "no status, due date or assignee change" in parsed.reason


@pytest.mark.parametrize("by", ["body", "label"])
def test_routed_github_issue_events(by: str) -> None:
    closed = parse_github("issues", raw(github_routed("issues.closed.json", by=by)), "d-1")
    assert isinstance(closed, TrackerEvent)
    assert (closed.event, closed.status, closed.workflow_id) == ("closed", TicketStatus.CLOSED, KEY)
    assert closed.ticket_key == "danagain/stunning-computing-machine#6"
    assert closed.delivery_id == "d-1" and closed.at.year == 2024
    signal = closed.signal()
    assert signal.source == "webhook:github" and signal.delivery_id == "d-1"

    opened = github_routed("issues.opened.json", by=by)
    assert isinstance(parse_github("issues", raw(opened), "d-2"), IgnoredDelivery)  # we open it
    for action in ("reopened", "edited", "labeled"):
        opened["action"] = action
        routed = parse_github("issues", raw(opened), "d-3")
        assert isinstance(routed, TrackerEvent)
        assert (routed.event, routed.status) == (action, TicketStatus.OPEN)


def test_routed_github_comment_and_ignored_ones() -> None:
    data = github_routed("issues.opened.json")
    data["action"] = "created"
    data["comment"] = {"id": 1, "body": "done?", "created_at": "2026-11-27T10:00:00Z"}
    comment = parse_github("issue_comment", raw(data), None)
    assert isinstance(comment, TrackerEvent)
    assert comment.event == "commented" and comment.workflow_id == KEY
    assert comment.delivery_id.startswith("sha256:")  # no X-GitHub-Delivery: the body's hash
    data["action"] = "deleted"
    assert isinstance(parse_github("issue_comment", raw(data), None), IgnoredDelivery)
    data["action"] = "created"
    data["issue"]["pull_request"] = {"url": "https://example"}
    assert isinstance(parse_github("issue_comment", raw(data), None), IgnoredDelivery)
    assert isinstance(parse_github("push", b"{}", None), IgnoredDelivery)


def test_afteractions_own_comments_and_labels_are_routed_but_are_not_activity() -> None:
    data = github_routed("issues.opened.json")
    data["action"] = "created"
    data["comment"] = {
        "id": 2,
        "body": f"@alice escalated to owner\n\n{comment_marker('escalation/1')}",
        "created_at": "2026-11-27T10:00:00Z",
    }
    own = parse_github("issue_comment", raw(data), None)
    assert isinstance(own, TrackerEvent) and own.workflow_id == KEY
    assert not own.activity and not own.signal().activity
    labeled = github_routed("issues.opened.json")
    labeled["action"] = "labeled"
    for name in ("escalated:team_lead", "due:2026-12-15", "afteraction-key:INC-1-2"):
        labeled["label"] = {"name": name}
        parsed = parse_github("issues", raw(labeled), None)
        assert isinstance(parsed, TrackerEvent) and not parsed.activity
    labeled["label"] = {"name": "blocked"}  # a person's label is activity
    person = parse_github("issues", raw(labeled), None)
    assert isinstance(person, TrackerEvent) and person.activity

    jira = payload(JIRA / "comment_created.json")
    jira["comment"]["body"] = f"Reminder: due Friday.\n{comment_marker('reminder/1')}"
    parsed_jira = parse_jira(raw(jira), "w")
    assert isinstance(parsed_jira, TrackerEvent) and not parsed_jira.activity


@pytest.mark.parametrize(
    ("event", "body", "reason"),
    [
        ("issues", b"{not json", "not valid JSON"),
        ("issues", b"[1, 2]", "expected a JSON object"),
        ("issues", b'{"action": "closed"}', "issue: expected an object"),
        ("issues", b'{"action": "closed", "issue": {"state": "closed"}}', "issue.number"),
        ("issues", b'{"action": "closed", "issue": {"number": 1, "state": "x"}}', "issue.state"),
        (None, b"{}", "X-GitHub-Event"),
    ],
)
def test_malformed_github_deliveries(event: str | None, body: bytes, reason: str) -> None:
    with pytest.raises(MalformedPayload, match=reason):
        parse_github(event, body, None)


def test_github_form_encoded_delivery() -> None:
    body = urlencode({"payload": json.dumps(github_routed("issues.closed.json"))})
    parsed = parse_github("issues", body.encode(), "d", "application/x-www-form-urlencoded")
    assert isinstance(parsed, TrackerEvent) and parsed.workflow_id == KEY


def jira_status_change(to: str, *, category: str, shape: str, resolution: str | None) -> bytes:
    data = copy.deepcopy(payload(JIRA / "jira-issue_updated.edited.json"))
    fields = data["issue"]["fields"]
    fields["status"]["name"] = to
    fields["status"]["statusCategory"]["key"] = category
    if shape == "cloud":  # ADF, as the v3 API and Cloud's newer payloads carry it
        fields["description"] = {
            "type": "doc",
            "version": 1,
            "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": "Cap the pool."}]},
                {
                    "type": "paragraph",
                    "content": [
                        {"type": "text", "text": "afteraction:key="},
                        {"type": "text", "text": KEY, "marks": [{"type": "code"}]},
                    ],
                },
            ],
        }
    elif shape == "server":  # a plain string; the key is also in the labels
        fields["description"] = f"Cap the pool.\n{marker(KEY)}"
    else:
        fields["labels"].append(label_for(KEY))
    data["changelog"]["items"] = [
        {"field": "status", "fieldtype": "jira", "from": "1", "fromString": "x", "toString": to},
        {"field": "resolution", "fieldtype": "jira", "to": resolution, "toString": resolution},
    ]
    return raw(data)


@pytest.mark.parametrize("shape", ["cloud", "server", "labels"])
def test_routed_jira_status_changes(shape: str) -> None:
    done = parse_jira(jira_status_change("Done", category="done", shape=shape, resolution="1"), "w")
    assert isinstance(done, TrackerEvent)
    assert (done.event, done.status, done.workflow_id) == ("closed", TicketStatus.CLOSED, KEY)
    assert done.ticket_key == "TES-41" and done.delivery_id == "w" and done.at.year == 2019
    assert done.signal().source == "webhook:jira"
    back = parse_jira(jira_status_change("To Do", category="new", shape=shape, resolution=None), "")
    assert isinstance(back, TrackerEvent)
    assert (back.event, back.status, back.workflow_id) == ("reopened", TicketStatus.OPEN, KEY)


def test_jira_due_date_assignee_and_comment_events() -> None:
    data = payload(JIRA / "jira-issue_updated.edited.json")
    data["issue"]["fields"]["labels"].append(label_for(KEY))
    for field, event in (("duedate", "due_date_changed"), ("assignee", "assigned")):
        data["changelog"]["items"] = [{"field": field, "fieldtype": "jira", "to": "x"}]
        parsed = parse_jira(raw(data), "w")
        assert isinstance(parsed, TrackerEvent)
        assert (parsed.event, parsed.workflow_id, parsed.status) == (event, KEY, TicketStatus.OPEN)

    comment = payload(JIRA / "comment_created.json")
    comment["comment"]["body"] = f"Reminder: due Friday.\n{marker(KEY)}"
    parsed = parse_jira(raw(comment), "w")
    assert isinstance(parsed, TrackerEvent)
    assert (parsed.event, parsed.workflow_id) == ("commented", KEY)
    del comment["issue"]  # Jira Server's comment_created
    assert isinstance(parse_jira(raw(comment), "w"), IgnoredDelivery)
    assert isinstance(parse_jira(b'{"webhookEvent": "jira:issue_deleted"}', "w"), IgnoredDelivery)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "not valid JSON"),
        (b'"text"', "expected a JSON object"),
        (b"{}", "webhookEvent"),
        (b'{"webhookEvent": "jira:issue_updated"}', "issue: expected an object"),
        (b'{"webhookEvent": "jira:issue_updated", "issue": {}}', "issue.key"),
        (b'{"webhookEvent": "comment_created"}', "comment: expected an object"),
    ],
)
def test_malformed_jira_deliveries(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedPayload, match=reason):
        parse_jira(body, None)


def test_adf_text_is_collected_recursively() -> None:
    doc = {
        "type": "doc",
        "content": [
            {"type": "heading", "content": [{"type": "text", "text": "Title"}]},
            {"type": "bulletList", "content": [{"type": "listItem", "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": "deep"}]}
            ]}]},
        ],
    }  # fmt: skip
    assert adf_text(doc) == "Title\ndeep\n"
    assert adf_text(None) == "" and adf_text("plain") == "plain"


def test_deliveries_that_once_crashed_the_parser_are_malformed_or_read() -> None:
    # Nested past Python's recursion limit: a clear 400, not a RecursionError.
    deep = b'{"issue": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(MalformedPayload, match="nested too deeply"):
        parse_github("issues", deep, "d")
    with pytest.raises(MalformedPayload, match="nested too deeply"):
        parse_jira(deep, "d")
    # A description nested deeper than the recursion limit is still read, with a stack.
    node: dict[str, Any] = {"type": "text", "text": marker(KEY)}
    for _ in range(50_000):
        node = {"type": "paragraph", "content": [node]}
    assert key_from_text(adf_text(node)) == KEY
    data = payload(JIRA / "jira-issue_updated.edited.json")
    data["issue"]["fields"]["labels"].append(label_for(KEY))
    data["changelog"]["items"] = [{"field": "duedate", "fieldtype": "jira", "to": "x"}]
    data["timestamp"] = 10**30  # past any clock: the time of receipt instead
    parsed = parse_jira(raw(data), "w")
    assert isinstance(parsed, TrackerEvent) and parsed.at.year >= 2026
    with pytest.raises(MalformedPayload, match="delivery_id: String should have at most 500"):
        parse_jira(raw(data), "w" * 501)


# ---- the endpoints ---------------------------------------------------------------------


def github_headers(body: bytes, *, delivery: str, event: str = "issues") -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": signature(GITHUB_SECRET, body),
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/test",
    }


def unreachable(_: Settings) -> Any:
    raise AssertionError("these requests never reach Temporal")


@pytest.fixture
async def offline(tmp_path: Path) -> Any:
    settings = Settings(
        home=tmp_path,
        temporal_address="127.0.0.1:1",
        github_webhook_secret=GITHUB_SECRET,
        jira_webhook_secret=JIRA_SECRET,
    )
    app = create_app(settings, connector=unreachable)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://afteraction") as http:
        yield http


async def test_endpoints_refuse_ignore_and_pong_without_temporal(
    offline: httpx.AsyncClient,
) -> None:
    ping = (GITHUB / "ping.json").read_bytes()
    answer = await offline.post(
        "/webhooks/github", content=ping, headers=github_headers(ping, delivery="p", event="ping")
    )
    assert (answer.status_code, answer.json()) == (200, {"pong": True})

    opened = (GITHUB / "issues.opened.json").read_bytes()
    answer = await offline.post(
        "/webhooks/github", content=opened, headers=github_headers(opened, delivery="o")
    )
    assert answer.status_code == 204 and "not acted on" in answer.headers["x-afteraction-ignored"]

    closed = (GITHUB / "issues.closed.json").read_bytes()
    answer = await offline.post(
        "/webhooks/github", content=closed, headers=github_headers(closed, delivery="c")
    )
    assert answer.status_code == 204
    assert "not an afteraction ticket" in answer.headers["x-afteraction-ignored"]

    for headers in (
        {"X-GitHub-Event": "issues"},
        {**github_headers(closed, delivery="c"), "X-Hub-Signature-256": signature("x", closed)},
        {**github_headers(closed, delivery="c"), "X-Hub-Signature-256": "sha1=abc"},
    ):
        refused = await offline.post("/webhooks/github", content=closed, headers=headers)
        assert refused.status_code == 401, refused.text
        assert "X-Hub-Signature-256" in refused.json()["detail"]

    junk = b"{oops"
    answer = await offline.post(
        "/webhooks/github", content=junk, headers=github_headers(junk, delivery="j")
    )
    assert answer.status_code == 400 and "not valid JSON" in answer.json()["detail"]

    # (comment_created names only the issue's key: which item owns it is asked of Temporal,
    # see test_a_comment_naming_only_the_issue_key_finds_its_item.)
    for name in ("comment_created.json", "jira-issue_updated.edited.json"):
        body = (JIRA / name).read_bytes()
        jira = {"X-Hub-Signature": signature(JIRA_SECRET, body), "Content-Type": "application/json"}
        if name == "jira-issue_updated.edited.json":
            answer = await offline.post("/webhooks/jira", content=body, headers=jira)
            assert answer.status_code == 204, answer.text
        wrong = {"X-Hub-Signature": signature(GITHUB_SECRET, body)}
        assert (
            await offline.post("/webhooks/jira", content=body, headers=wrong)
        ).status_code == 401
        assert (await offline.post("/webhooks/jira", content=body)).status_code == 401
    answer = await offline.post(
        "/webhooks/jira", content=b"[]", headers={"X-Hub-Signature": signature(JIRA_SECRET, b"[]")}
    )
    assert answer.status_code == 400

    deep = b'{"issue": ' + b"[" * 200_000 + b"}"
    answer = await offline.post(
        "/webhooks/github", content=deep, headers=github_headers(deep, delivery="deep")
    )
    assert answer.status_code == 400
    assert (
        answer.json()["detail"]
        == "malformed github delivery: the body is nested too deeply to read"
    )


async def test_unconfigured_secrets_answer_503_naming_the_variable(tmp_path: Path) -> None:
    app = create_app(Settings(home=tmp_path), connector=unreachable)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://afteraction"
    ) as http:
        for tracker in ("github", "jira"):
            answer = await http.post(f"/webhooks/{tracker}", content=b"{}")
            assert answer.status_code == 503
            assert f"AFTERACTION_{tracker.upper()}_WEBHOOK_SECRET" in answer.json()["detail"]


async def item_now(api: Api, item_id: str) -> ActionItem:
    return ActionItem.model_validate(await api.ok("GET", f"/api/actions/{item_id}"))


async def test_signed_github_deliveries_move_a_real_action_item(
    dev_env: WorkflowEnvironment, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # The item's issue is #1 of the repository the shared real payloads come from.
    repo = "danagain/stunning-computing-machine"
    routing = tmp_path / "routing.toml"
    routing.write_text(f'[teams.payments]\ntracker = "github:{repo}"\n', encoding="utf-8")
    emulator = GitHubEmulator(token="ghp_test").start()
    request.addfinalizer(emulator.stop)
    emulator.add_repo(repo)
    secrets: dict[str, Any] = {
        "github_webhook_secret": GITHUB_SECRET,
        "jira_webhook_secret": JIRA_SECRET,
    }
    github: dict[str, Any] = {"github_token": "ghp_test", "github_base_url": emulator.base_url}
    async with running_api(dev_env, tmp_path, routing_file=routing, **secrets, **github) as api:
        key = await resolved_incident(api)
        review = review_json(item_spec("payments", "Cap the pool size"))
        await api.ok("POST", f"/api/incidents/{key}/review", json=review)
        item_id, workflow_id = f"{key}-1", action_workflow_id(key, 1)
        await item(api, item_id, "open")

        async def deliver(data: dict[str, Any], delivery: str, **headers: str) -> httpx.Response:
            data["issue"]["number"] = 1
            body = raw(data)  # (number 1: the item's issue)
            sent = {**github_headers(body, delivery=delivery), **headers}
            return await api.http.post("/webhooks/github", content=body, headers=sent)

        closed = github_routed("issues.closed.json", workflow_id, by="label")
        answer = await deliver(closed, "delivery-1")
        assert answer.status_code == 202, answer.text
        assert answer.json() == {
            "event": "closed",
            "ticket": "danagain/stunning-computing-machine#1",
            "workflow_id": workflow_id,
        }
        verifying = await item(api, item_id, "verifying")
        assert "delivery-1" in verifying.seen_deliveries
        assert verifying.closed_by is not None, "the tracker's user closed it"
        assert (verifying.closed_by.kind.value, verifying.closed_by.subject) == (
            "tracker",
            "danagain",
        )

        async def after(marker: str, state: str) -> ActionItem:
            """The item once a later, harmless delivery (a label on its issue, in the state
            the issue is in) has reached it: signals arrive in order, so everything sent
            before it has been applied (or ignored) by then."""
            labeled = github_routed("issues.closed.json", workflow_id)
            labeled["action"], labeled["issue"]["state"] = "labeled", state
            labeled["label"] = {"name": "triaged", "color": "ededed"}
            assert (await deliver(labeled, marker)).status_code == 202
            return await eventually(
                lambda: item_now(api, item_id), lambda found: marker in found.seen_deliveries
            )

        # The same delivery again (GitHub's "Redeliver"): accepted, and nothing changes.
        reopened = github_routed("issues.closed.json", workflow_id)
        reopened["action"], reopened["issue"]["state"] = "reopened", "open"
        assert (await deliver(reopened, "delivery-1")).status_code == 202
        again = await after("marker-1", "closed")
        assert again.state.value == "verifying"
        assert again.seen_deliveries == [*verifying.seen_deliveries, "marker-1"]

        # A forged signature: refused, and nothing changes.
        forged = await deliver(
            reopened, "delivery-2", **{"X-Hub-Signature-256": "sha256=" + "0" * 64}
        )
        assert forged.status_code == 401
        assert (await after("marker-2", "closed")).state.value == "verifying"

        answer = await deliver(reopened, "delivery-3")
        assert answer.status_code == 202 and answer.json()["event"] == "reopened"
        reopened_item = await item(api, item_id, "open")
        assert reopened_item.closed_at is None

        # A ticket naming an item that does not exist: accepted with a note, not a failure.
        missing = action_workflow_id(f"INC-T{uuid.uuid4().hex[:8].upper()}", 1)
        answer = await deliver(github_routed("issues.closed.json", missing), "delivery-4")
        assert answer.status_code == 202, answer.text
        assert answer.json()["workflow_id"] == missing
        assert "no running action item" in answer.json()["ignored"]

        # Another issue carrying this item's key (a duplicate): its close does not close it.
        duplicate = github_routed("issues.closed.json", workflow_id, by="label")
        duplicate["issue"]["number"] = 2
        body = raw(duplicate)
        sent = github_headers(body, delivery="delivery-5")
        assert (
            await api.http.post("/webhooks/github", content=body, headers=sent)
        ).status_code == 202
        assert (await after("marker-3", "open")).state.value == "open"

        # The issue is reopened a minute after it was closed; then the captured "closed"
        # delivery arrives again under a fresh delivery id (a replay, or a late delivery):
        # it is older than the reopen, so the item stays open.
        later = github_routed("issues.closed.json", workflow_id)
        later["action"], later["issue"]["state"] = "reopened", "open"
        later["issue"]["updated_at"] = "2024-03-16T01:38:20Z"
        assert (await deliver(later, "delivery-6")).status_code == 202
        assert (await deliver(closed, "delivery-7")).status_code == 202
        replayed = await eventually(
            lambda: item_now(api, item_id), lambda found: "delivery-7" in found.seen_deliveries
        )
        assert replayed.state.value == "open", "an older close does not undo a later reopen"
        assert replayed.ticket_status_at == datetime(2024, 3, 16, 1, 38, 20, tzinfo=UTC)

        # A close newer than the reopen still closes it.
        newer = github_routed("issues.closed.json", workflow_id)
        newer["issue"]["updated_at"] = "2024-03-16T01:39:20Z"
        assert (await deliver(newer, "delivery-8")).status_code == 202
        await item(api, item_id, "verifying")
    assert emulator.contract_errors == []

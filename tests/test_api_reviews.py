"""The review, action item and ticket operations of the HTTP API, against the session's dev
server: the real app (app.http.api.create_app) over httpx's ASGI transport, and a real worker on a
fresh task queue sharing the API's state folder (so both see the same local tracker)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from app.formats.review_files import dump_yaml
from app.http.api import create_app
from domain.action_item import ActionItem
from domain.identity import Role
from domain.policy import Policy
from domain.review import FocusedQuestions, ReviewRecord, Rubric
from domain.tickets import TicketDraft
from integrations.local import LocalTracker
from settings import Settings
from tests.auth import ADMIN, admin_headers, bearer, token_secret
from tests.helpers import eventually
from tests.policies import slow_policy
from tests.reviews import full_review, item_spec
from tests.stack import free_port
from worker import build_worker

TWO_ITEMS = (
    item_spec("payments", "Cap the pool size"),
    item_spec("platform", "Alert on pool saturation", kind="long_term_systemic"),
)


@dataclass
class Api:
    http: httpx.AsyncClient
    settings: Settings

    @property
    def tracker(self) -> LocalTracker:
        return LocalTracker.configured(self.settings)

    async def ok(self, method: str, url: str, status: int = 200, **kwargs: Any) -> Any:
        response = await self.http.request(method, url, **kwargs)
        assert response.status_code == status, response.text
        return response.json()


@contextlib.asynccontextmanager
async def running_api(
    dev_env: WorkflowEnvironment, home: Path, *, policy: Policy | None = None, **fields: Any
) -> AsyncIterator[Api]:
    settings = Settings(
        home=home,
        temporal_address=dev_env.client.service_client.config.target_host,
        task_queue=f"tq-{uuid.uuid4()}",
        policy_file=None,
        **{"routing_file": None, **fields},
    )
    async with build_worker(dev_env.client, settings):
        app = create_app(settings, policy=policy or slow_policy())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://afteraction",
            timeout=30,
            headers=admin_headers(settings),
        ) as http:
            yield Api(http=http, settings=settings)


@pytest.fixture
async def api(dev_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(dev_env, tmp_path) as running:
        yield running


async def resolved_incident(api: Api) -> str:
    created = await api.ok(
        "POST",
        "/api/incidents",
        201,
        json={"title": "Checkout errors", "severity": "SEV2", "services": ["checkout"]},
    )
    key = str(created["key"])
    await api.ok("POST", f"/api/incidents/{key}/acknowledge", json={"commander": "bob"})
    assert (await api.ok("POST", f"/api/incidents/{key}/resolve", json={}))["state"] == "resolved"
    return key


def review_json(*items: Any, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = full_review(*items, **fields).model_dump(mode="json")
    return data


async def reviewed_incident(api: Api) -> str:
    key = await resolved_incident(api)
    status = await api.ok("POST", f"/api/incidents/{key}/review", json=review_json(*TWO_ITEMS))
    assert status["state"] == "tracking"
    return key


async def tickets_of(api: Api, key: str, count: int) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = await api.ok("GET", "/api/tickets")
        return [row for row in rows if f"/{key}/" in (row["idempotency_key"] or "")]

    return await eventually(probe, lambda rows: len(rows) >= count)


async def item(api: Api, item_id: str, state: str) -> ActionItem:
    async def probe() -> ActionItem:
        return ActionItem.model_validate(await api.ok("GET", f"/api/actions/{item_id}"))

    return await eventually(probe, lambda found: found.state.value == state)


def paths(problems: list[str]) -> set[str]:
    return {problem.split(": ", 1)[0] for problem in problems}


async def test_schedule_template_and_yaml_review_listing_every_problem(api: Api) -> None:
    key = await resolved_incident(api)
    at = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    scheduled = await api.ok(
        "POST", f"/api/incidents/{key}/review/schedule", json={"at": at, "facilitator": "fran"}
    )
    assert scheduled["state"] == "in_review"

    template = await api.http.get(f"/api/incidents/{key}/review/template")
    assert template.status_code == 200
    assert template.headers["content-type"] == "text/yaml; charset=utf-8"
    assert key in template.text
    blank = yaml.safe_load(template.text)
    assert blank["facilitator"] == "fran"
    assert blank["blast_radius"]["services"] == ["checkout"]

    # Sent back unfilled, with one unknown field: every problem in one answer, each with a path.
    refused = await api.http.post(
        f"/api/incidents/{key}/review",
        content=template.text + "severity_score: 3\n",
        headers={"Content-Type": "application/yaml"},
    )
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert "cannot be accepted" in body["detail"]
    expected = {
        "executive_summary",
        "technical_appendix",
        *(f"questions.{name}.answer" for name in FocusedQuestions.model_fields),
        *(f"rubric.{name}" for name in Rubric.model_fields),
        "participants",
        "action_items",
        "severity_score",
    }
    assert expected <= paths(body["problems"]), body["problems"]
    assert not any(problem.startswith("request body") for problem in body["problems"])
    assert any("unknown field 'severity_score'" in problem for problem in body["problems"])

    broken = await api.http.post(
        f"/api/incidents/{key}/review",
        content="executive_summary: [unclosed\n",
        headers={"Content-Type": "text/yaml"},
    )
    assert broken.status_code == 422
    assert "not valid YAML" in broken.json()["problems"][0]

    filled = {**blank, **review_json(*TWO_ITEMS)}
    accepted = await api.ok(
        "POST",
        f"/api/incidents/{key}/review",
        content=dump_yaml(filled),
        headers={"Content-Type": "text/yaml; charset=utf-8"},
    )
    assert accepted["state"] == "tracking"
    tickets = await tickets_of(api, key, 2)
    assert sorted(ticket["title"] for ticket in tickets) == [
        f"[{key}] Alert on pool saturation",
        f"[{key}] Cap the pool size",
    ]


async def test_json_review_lists_shape_and_policy_problems_then_is_accepted(api: Api) -> None:
    key = await resolved_incident(api)
    url = f"/api/incidents/{key}/review"

    shape = review_json(*TWO_ITEMS, executive_summary="")
    shape["rubric"]["severity"] = "high"
    shape["participants"][0]["function"] = "chef"
    shape["excutive_summary"] = "a typo"
    refused = await api.http.post(url, json=shape)
    assert refused.status_code == 422, refused.text
    problems = refused.json()["problems"]
    assert paths(problems) == {
        "rubric.severity",
        "participants.0.function",
        "excutive_summary",
        "executive_summary",  # the policy's check of the fields that are well formed
    }, problems
    assert "excutive_summary: unknown field" in problems

    policy_only = review_json(facilitator=None, rubric={"severity": 9, "exposure": 2})
    refused = await api.http.post(url, json=policy_only)
    assert refused.status_code == 422
    assert sorted(refused.json()["problems"]) == [
        "action_items: a review needs at least one action item",
        "facilitator: a facilitator is required",
        "rubric.risk_migration: a score is required",
        "rubric.severity: must be from 1 to 5",
    ]

    not_json = await api.http.post(
        url, content=b'{"executive_summary": ', headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 422
    assert "not valid JSON" in not_json.json()["problems"][0]
    form = await api.http.post(url, content=b"x=1", headers={"Content-Type": "text/plain"})
    assert form.status_code == 415
    assert "application/yaml" in form.json()["detail"]

    accepted = await api.ok("POST", url, json=review_json(*TWO_ITEMS))
    assert accepted["state"] == "tracking"
    assert len(await tickets_of(api, key, 2)) == 2
    # The same review again (a retry) answers the state it reached, and starts nothing new.
    again = await api.ok("POST", url, json=review_json(*TWO_ITEMS))
    assert again["state"] == "tracking"
    assert len(await tickets_of(api, key, 2)) == 2
    # Another review is refused: the incident has its review.
    other = await api.http.post(url, json=review_json(*TWO_ITEMS[:1]))
    assert other.status_code == 409
    assert "cannot submit_review an incident that is tracking" in other.json()["detail"]


async def test_unknown_team_with_a_routing_file_names_the_team_and_the_file(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    routing = tmp_path / "routing.toml"
    routing.write_text('[teams.payments]\ntracker = "local"\nassignee = "alice"\n')
    async with running_api(dev_env, tmp_path / "home", routing_file=routing) as api:
        key = await resolved_incident(api)
        url = f"/api/incidents/{key}/review"

        as_json = await api.http.post(url, json=review_json(*TWO_ITEMS))
        assert as_json.status_code == 422, as_json.text
        body = as_json.json()
        [problem] = body["problems"]
        assert problem.startswith("action_items.1.owning_team: team 'platform' is not in")
        assert "'platform'" in body["detail"] and str(routing) in body["detail"]

        as_yaml = await api.http.post(
            url,
            content=dump_yaml(review_json(*TWO_ITEMS)),
            headers={"Content-Type": "application/yaml"},
        )
        assert as_yaml.status_code == 422
        assert as_yaml.json()["problems"] == body["problems"]
        incident = await api.ok("GET", f"/api/incidents/{key}")
        assert incident["state"] == "resolved" and incident["review"] is None

        await api.ok("POST", url, json=review_json(TWO_ITEMS[0]))
        [ticket] = await tickets_of(api, key, 1)
        assert ticket["assignee"] == "alice"  # the routing file's assignee for payments

        added = await api.http.post(
            f"/api/incidents/{key}/actions",
            json=item_spec("platform", "Alert on saturation").model_dump(mode="json"),
        )
        assert added.status_code == 422, added.text
        assert "'platform'" in added.json()["detail"] and str(routing) in added.json()["detail"]


async def test_review_as_json_and_as_markdown(api: Api) -> None:
    key = await resolved_incident(api)
    missing = await api.http.get(f"/api/incidents/{key}/review")
    assert missing.status_code == 404
    assert "no review yet" in missing.json()["detail"]
    assert f"/api/incidents/{key}/review/template" in missing.json()["detail"]
    unknown = await api.http.get("/api/incidents/INC-000000-NONE/review")
    assert unknown.status_code == 404 and "no incident" in unknown.json()["detail"]

    await api.ok("POST", f"/api/incidents/{key}/review", json=review_json(*TWO_ITEMS))
    as_json = await api.http.get(f"/api/incidents/{key}/review")
    assert as_json.status_code == 200
    assert as_json.headers["content-type"] == "application/json"
    record = ReviewRecord.model_validate(as_json.json())
    assert record.submitted_by == f"token:{ADMIN}"
    assert record.review == full_review(*TWO_ITEMS)

    markdown = await api.http.get(
        f"/api/incidents/{key}/review", headers={"Accept": "text/markdown"}
    )
    assert markdown.status_code == 200
    assert markdown.headers["content-type"] == "text/markdown; charset=utf-8"
    text = markdown.text
    assert text.startswith(f"# {key}: Checkout errors (SEV2)")
    assert 0 < text.index("## Executive summary") < text.index("## Technical appendix")
    assert "Cap the pool size" in text

    prefers_json = await api.http.get(
        f"/api/incidents/{key}/review",
        headers={"Accept": "application/json, text/markdown;q=0.5"},
    )
    assert prefers_json.headers["content-type"] == "application/json"


async def test_action_items_list_show_extend_close_verify_accept_and_the_incident_closes(
    api: Api,
) -> None:
    key = await reviewed_incident(api)
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    late = item_spec("payments", "Document the pool limits").model_dump(mode="json")
    refused_past = await api.http.post(
        f"/api/incidents/{key}/actions", json={**late, "due_at": past}
    )
    assert refused_past.status_code == 409
    assert "has passed" in refused_past.json()["detail"]
    soon = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    added = await api.ok(
        "POST",
        f"/api/incidents/{key}/actions",
        201,
        json={**late, "due_at": soon},
    )
    assert added["id"] == f"{key}-3"

    async def listed(**params: str) -> list[dict[str, Any]]:
        page = await api.ok("GET", "/api/actions", params={"incident": key, **params})
        assert (page["total"], page["next"]) == (len(page["items"]), None)
        rows: list[dict[str, Any]] = page["items"]
        return rows

    rows = await eventually(
        listed,
        lambda rows: (
            len(rows) == 3 and all(row["state"] == "open" for row in rows) and rows[0]["overdue"]
        ),
    )
    assert rows[0]["id"] == f"{key}-3"  # soonest due first
    assert [row["overdue"] for row in rows] == [True, False, False]
    assert [row["id"] for row in await listed(team="platform")] == [f"{key}-2"]
    assert [row["id"] for row in await listed(overdue="true")] == [f"{key}-3"]

    first = await item(api, f"{key}-1", "open")
    assert first.ticket is not None and first.spec.title == "Cap the pool size"
    for unknown in ("INC-000000-NONE-1", "nonsense"):
        response = await api.http.get(f"/api/actions/{unknown}")
        assert response.status_code == 404, response.text
    assert "not an action item id" in (await api.http.get("/api/actions/nonsense")).json()["detail"]
    gone = await api.http.post("/api/actions/INC-000000-NONE-1/accept", json={"rationale": "r"})
    assert gone.status_code == 404

    earlier = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    refused = await api.http.post(
        f"/api/actions/{key}-1/extend", json={"due_at": earlier, "reason": "vacation"}
    )
    assert refused.status_code == 409
    assert "later than the current one" in refused.json()["detail"]
    later = first.due_at + timedelta(days=7)
    extended = await api.ok(
        "POST",
        f"/api/actions/{key}-1/extend",
        json={"due_at": later.isoformat(), "reason": "waiting on the vendor"},
    )
    assert datetime.fromisoformat(extended["due_at"]) == later

    too_soon = await api.http.post(f"/api/actions/{key}-1/verify", json={"evidence": "dashboards"})
    assert too_soon.status_code == 409
    assert "close its ticket first" in too_soon.json()["detail"]

    closed = await api.ok("POST", f"/api/tickets/{first.ticket.key}/close", json={})
    assert closed["ticket"]["status"] == "closed"
    assert closed["workflow_id"] == f"incident/{key}/action/1"
    assert closed["told"] is True and closed["warning"] is None
    await item(api, f"{key}-1", "verifying")
    verified = await api.ok(
        "POST",
        f"/api/actions/{key}-1/verify",
        json={"evidence": "https://grafana/d/pool"},
    )
    assert verified["state"] == "done"

    for number in (2, 3):
        accepted = await api.ok(
            "POST",
            f"/api/actions/{key}-{number}/accept",
            json={"rationale": "covered by the pool rewrite"},
        )
        assert accepted["state"] == "accepted"
    twice = await api.http.post(f"/api/actions/{key}-2/accept", json={"rationale": "again"})
    assert twice.status_code == 409

    incident = await eventually(
        lambda: api.ok("GET", f"/api/incidents/{key}"), lambda i: i["state"] == "closed"
    )
    assert {i["state"] for i in incident["action_items"]} == {"done", "accepted"}


async def test_tickets_list_show_close_and_reopen(api: Api) -> None:
    by_hand = api.tracker.create("Rotate the certificate").ref.key
    closed = await api.ok("POST", f"/api/tickets/{by_hand}/close", json={})
    assert closed["ticket"]["status"] == "closed"
    assert closed["workflow_id"] is None and closed["told"] is False
    assert closed["warning"] is None
    listed = await api.ok("GET", "/api/tickets", params={"status": "closed"})
    assert [row["ref"]["key"] for row in listed] == [by_hand]
    assert await api.ok("GET", "/api/tickets", params={"status": "open"}) == []
    reopened = await api.ok("POST", f"/api/tickets/{by_hand}/reopen", json={})
    assert reopened["ticket"]["status"] == "open"
    shown = await api.ok("GET", f"/api/tickets/{by_hand}")
    assert shown["title"] == "Rotate the certificate" and shown["comments"] == []

    key = await reviewed_incident(api)
    # Items start together, so which of them gets the lower ticket number is not fixed.
    [first] = [
        row
        for row in await tickets_of(api, key, 2)
        if row["idempotency_key"] == f"incident/{key}/action/1"
    ]
    await item(api, f"{key}-1", "open")
    closed = await api.ok("POST", f"/api/tickets/{first['ref']['key']}/close", json={})
    assert closed["told"] is True
    await item(api, f"{key}-1", "verifying")
    reopened = await api.ok("POST", f"/api/tickets/{first['ref']['key']}/reopen", json={})
    assert reopened["told"] is True and reopened["ticket"]["status"] == "open"
    await item(api, f"{key}-1", "open")

    orphan = api.tracker.ensure_ticket(
        "local",
        TicketDraft(
            idempotency_key=f"incident/INC-GONE{uuid.uuid4().hex[:8].upper()}/action/1",
            title="An item whose workflow is gone",
            body="",
            due_at=datetime.now(UTC),
        ),
    )
    warned = await api.ok("POST", f"/api/tickets/{orphan.ref.key}/close", json={})
    assert warned["told"] is False and "no action item follows" in warned["warning"]

    unknown = await api.http.post("/api/tickets/LOCAL-999/close", json={})
    assert unknown.status_code == 404 and "no ticket" in unknown.json()["detail"]
    bad_status = await api.http.get("/api/tickets", params={"status": "pending"})
    assert bad_status.status_code == 422
    assert paths(bad_status.json()["problems"]) == {"query.status"}


async def test_review_commands_in_a_state_that_does_not_allow_them_answer_409(api: Api) -> None:
    created = await api.ok(
        "POST", "/api/incidents", 201, json={"title": "Login failing", "severity": "SEV3"}
    )
    key = created["key"]
    at = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    scheduled = await api.http.post(f"/api/incidents/{key}/review/schedule", json={"at": at})
    assert scheduled.status_code == 409
    assert "cannot schedule_review an incident that is declared" in scheduled.json()["detail"]
    submitted = await api.http.post(f"/api/incidents/{key}/review", json=review_json(*TWO_ITEMS))
    assert submitted.status_code == 409
    added = await api.http.post(
        f"/api/incidents/{key}/actions", json=item_spec("payments", "x").model_dump(mode="json")
    )
    assert added.status_code == 409
    assert "cannot add_action_item" in added.json()["detail"]
    for path in ("review/template", "review"):
        unknown = await api.http.get(f"/api/incidents/INC-000000-NONE/{path}")
        assert unknown.status_code == 404


async def test_invalid_bodies_list_every_problem_with_its_path(api: Api) -> None:
    response = await api.http.post(
        "/api/incidents/INC-000000-NONE/actions",
        json={"title": " ", "kind": "sometimes", "priority": "P2", "due_at": "2026-12-15T17:00"},
    )
    assert response.status_code == 422
    body = response.json()
    assert paths(body["problems"]) == {
        "title",
        "owning_team",
        "kind",
        "due_at",
        "success_criteria",
    }, body["problems"]
    assert "title: must not be empty" in body["problems"]
    assert isinstance(body["detail"], str) and "owning_team" in body["detail"]
    broken = await api.http.post(
        "/api/actions/INC-1-1/extend",
        content=b"{",
        headers={"Content-Type": "application/json"},
    )
    assert broken.status_code == 422
    assert "not valid JSON" in broken.json()["problems"][0]


async def test_openapi_lists_the_new_paths(api: Api) -> None:
    schema = await api.ok("GET", "/openapi.json")
    operations = {
        (method.upper(), path) for path, item in schema["paths"].items() for method in item
    }
    assert {
        ("POST", "/api/incidents/{key}/review/schedule"),
        ("GET", "/api/incidents/{key}/review/template"),
        ("POST", "/api/incidents/{key}/review"),
        ("GET", "/api/incidents/{key}/review"),
        ("POST", "/api/incidents/{key}/actions"),
        ("GET", "/api/actions"),
        ("GET", "/api/actions/{id}"),
        ("POST", "/api/actions/{id}/extend"),
        ("POST", "/api/actions/{id}/verify"),
        ("POST", "/api/actions/{id}/accept"),
        ("GET", "/api/tickets"),
        ("GET", "/api/tickets/{key}"),
        ("POST", "/api/tickets/{key}/close"),
        ("POST", "/api/tickets/{key}/reopen"),
    } <= operations
    submit = schema["paths"]["/api/incidents/{key}/review"]["post"]
    content = submit["requestBody"]["content"]
    assert set(content) == {"application/json", "application/yaml", "text/yaml"}
    assert content["application/json"]["schema"]["$ref"] == "#/components/schemas/Review"
    assert "Review" in schema["components"]["schemas"]
    shown = schema["paths"]["/api/incidents/{key}/review"]["get"]["responses"]["200"]["content"]
    assert {"application/json", "text/markdown"} <= set(shown)
    assert (
        "text/yaml"
        in (
            schema["paths"]["/api/incidents/{key}/review/template"]["get"]["responses"]["200"][
                "content"
            ]
        )
    )


async def test_the_actor_comes_from_the_credential_not_the_body(api: Api) -> None:
    responder = bearer(token_secret(api.settings, role=Role.RESPONDER, name="pager-bot"))
    approver = bearer(token_secret(api.settings, role=Role.APPROVER, name="vp-eng"))
    typed = await api.http.post(
        "/api/incidents",
        json={"title": "Search down", "severity": "SEV2", "declared_by": "vp-eng"},
        headers=responder,
    )
    assert typed.status_code == 422, "who is acting is not the caller's to type"
    assert "declared_by" in typed.json()["detail"]
    created = await api.http.post(
        "/api/incidents", json={"title": "Search down", "severity": "SEV2"}, headers=responder
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    incident = await api.ok("GET", f"/api/incidents/{key}")
    assert incident["declared_by"] == "token:pager-bot"
    pager_bot = {
        "kind": "token",
        "subject": "pager-bot",
        "display_name": "pager-bot",
        "via": "token pager-bot",
    }
    assert incident["declared_by_actor"] == pager_bot
    mitigated = await api.http.post(
        f"/api/incidents/{key}/mitigate", json={"note": "rolled back"}, headers=responder
    )
    assert mitigated.status_code == 200, mitigated.text
    timeline = (await api.ok("GET", f"/api/incidents/{key}"))["timeline"]
    assert timeline[-1]["author"] == "token:pager-bot"
    assert timeline[-1]["actor"] == pager_bot

    await api.ok("POST", f"/api/incidents/{key}/resolve", json={})
    await api.ok("POST", f"/api/incidents/{key}/review", json=review_json(*TWO_ITEMS))
    refused = await api.http.post(
        f"/api/actions/{key}-1/accept", json={"rationale": "not worth it"}, headers=responder
    )
    assert refused.status_code == 403
    typed_approver = await api.http.post(
        f"/api/actions/{key}-1/accept",
        json={"rationale": "not worth it", "approver": "vp-eng"},
        headers=responder,
    )
    assert typed_approver.status_code == 403, "the rule comes first"
    accepted = await api.http.post(
        f"/api/actions/{key}-1/accept", json={"rationale": "not worth it"}, headers=approver
    )
    assert accepted.status_code == 200, accepted.text
    item_state = await api.ok("GET", f"/api/actions/{key}-1")
    assert item_state["acceptance"]["approver"] == "token:vp-eng"
    assert item_state["acceptance"]["actor"]["subject"] == "vp-eng"
    assert item_state["acceptance"]["actor"]["kind"] == "token"
    review = (await api.ok("GET", f"/api/incidents/{key}"))["review"]
    assert review["submitted_by_actor"]["subject"] == ADMIN
    typed_actor = await api.http.post(
        f"/api/incidents/{key}/timeline",
        json={"text": "x", "actor": {"kind": "token", "subject": "vp", "display_name": "vp"}},
        headers=responder,
    )
    assert typed_actor.status_code == 422, "nor can a body carry an actor"


async def test_a_team_token_acts_only_on_its_teams_work(api: Api) -> None:
    key = await reviewed_incident(api)  # items: 1 payments, 2 platform
    payments = bearer(
        token_secret(api.settings, role=Role.REVIEWER, name="payments-bot", team="payments")
    )
    await item(api, f"{key}-1", "open")
    second = await item(api, f"{key}-2", "open")
    later = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    own = await api.http.post(
        f"/api/actions/{key}-1/extend",
        json={"due_at": later, "reason": "vendor"},
        headers=payments,
    )
    assert own.status_code == 200, own.text
    other = await api.http.post(
        f"/api/actions/{key}-2/extend",
        json={"due_at": later, "reason": "vendor"},
        headers=payments,
    )
    assert other.status_code == 403
    assert "owned by 'platform'" in other.json()["detail"]
    assert second.ticket is not None
    ticket = await api.http.post(
        f"/api/tickets/{second.ticket.key}/close", json={}, headers=payments
    )
    assert ticket.status_code == 403
    foreign = await api.http.post(
        "/api/incidents",
        json={"title": "Search down", "severity": "SEV3", "teams": ["search"]},
        headers=payments,
    )
    assert foreign.status_code == 403
    assert "does not list it among its teams" in foreign.json()["detail"]
    reads = await api.http.get(f"/api/actions/{key}-2", headers=payments)
    assert reads.status_code == 200, "reading is not scoped"


async def test_impossible_times_are_refused_with_what_was_given_and_what_is_allowed(
    api: Api,
) -> None:
    ahead = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    future_start = await api.http.post(
        "/api/incidents", json={"title": "Search down", "severity": "SEV3", "started_at": ahead}
    )
    assert future_start.status_code == 409
    assert "started_at" in future_start.json()["detail"]
    assert "is in the future" in future_start.json()["detail"]

    key = await resolved_incident(api)
    yesterday = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    scheduled = await api.http.post(f"/api/incidents/{key}/review/schedule", json={"at": yesterday})
    assert scheduled.status_code == 409
    assert "is in the past" in scheduled.json()["detail"]
    overdue_item = item_spec("payments", "Cap the pool size", due_at=yesterday)
    submitted = await api.http.post(f"/api/incidents/{key}/review", json=review_json(overdue_item))
    assert submitted.status_code == 409, submitted.text
    assert "action_items.0.due_at: " in submitted.json()["detail"]
    assert "has passed" in submitted.json()["detail"]


async def test_an_item_without_a_ticket_says_why_and_when_it_tries_again(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    routing = tmp_path / "routing.toml"
    routing.write_text('[teams.payments]\ntracker = "github:acme/checkout"\n', encoding="utf-8")
    unreachable_github: dict[str, Any] = {
        "github_token": "ghp_test",
        "github_base_url": f"http://127.0.0.1:{free_port()}",
        "routing_file": routing,
    }
    async with running_api(dev_env, tmp_path, **unreachable_github) as api:
        key = await resolved_incident(api)
        await api.ok(
            "POST",
            f"/api/incidents/{key}/review",
            json=review_json(item_spec("payments", "Cap the pool size")),
        )
        item = await eventually(
            lambda: api.ok("GET", f"/api/actions/{key}-1"),
            lambda found: (found.get("ticket_attempts") or {}).get("attempts", 0) >= 2,
            timeout=30,
        )
        assert item["state"] == "creating" and item["ticket"] is None
        tries = item["ticket_attempts"]
        assert tries["last_error"], tries
        assert datetime.fromisoformat(tries["next_attempt_at"]) > datetime.now(UTC) - timedelta(
            seconds=5
        )
        # Still trying on its own: retry-ticket has nothing to ask, and says why.
        retried = await api.ok("POST", f"/api/actions/{key}-1/retry-ticket", json={})
        assert retried["requested"] is False
        assert retried["detail"].startswith(
            f"nothing to retry: {key}-1 is creating its ticket now (try "
        ), retried

"""No request can freeze an incident: every input past its cap is refused with the limit, the
state a run hands over stays small, and the incident still escalates on time. And inputs that
once crashed the API answer 4xx with a message. The real app over httpx's ASGI transport, a real
worker and the session's dev server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from domain.deadlines import step_at
from domain.escalation import DeadlineKind, EscalationRecord
from domain.incident import Incident, workflow_id_for
from domain.limits import (
    CARRIED_TIMELINE_CHARS,
    NOTE_CHARS,
    REVIEW_ACTION_ITEMS,
    RUN_GROWTH_BYTES,
)
from domain.policy import Rung
from domain.severity import Severity
from tests.helpers import eventually
from tests.policies import fast_policy
from tests.reviews import item_spec
from tests.test_api_reviews import Api, resolved_incident, review_json, running_api

# Status updates every 3s and the review within 3s of resolution; nothing else falls due.
POLICY = fast_policy(
    acknowledge_within="1h", status_update_every="3s", resolve_within="1h", review_within="3s"
)
LADDER = POLICY.for_severity(Severity.SEV2).escalation
# What the API's body limit (AFTERACTION_API_MAX_BODY, 1 MiB by default) names when it refuses.
BODY_LIMIT = "larger than 1,048,576 bytes"
# How late a ladder step may fire on a busy two-core machine and still count as on time.
ON_TIME = timedelta(seconds=2)


@pytest.fixture
async def fast_api(dev_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(dev_env, tmp_path, policy=POLICY) as running:
        yield running


@pytest.fixture
async def api(dev_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(dev_env, tmp_path) as running:
        yield running


async def state(api: Api, key: str) -> Incident:
    return Incident.model_validate(await api.ok("GET", f"/api/incidents/{key}"))


def scheduled(record: EscalationRecord) -> datetime:
    return step_at(record.due_at, list(Rung).index(record.rung), LADDER)


async def escalated_on_time(api: Api, key: str, kind: DeadlineKind, rungs: int) -> None:
    """Wait for the first `rungs` steps of `kind`'s ladder; each fired when it was due."""
    incident = await eventually(
        lambda: state(api, key),
        lambda i: len([e for e in i.escalations if e.deadline is kind]) >= rungs,
        timeout=30,
    )
    records = [e for e in incident.escalations if e.deadline is kind][:rungs]
    assert [record.rung for record in records] == list(Rung)[:rungs]
    for record in records:
        late = record.at - scheduled(record)
        assert timedelta(0) <= late <= ON_TIME, (record, late)


async def runs_of(client: Client, key: str) -> list[str]:
    runs = []
    async for execution in client.list_workflows(f"WorkflowId = '{workflow_id_for(key)}'"):
        runs.append(execution.run_id)
    return runs


async def failed_tasks(client: Client, key: str, run_ids: list[str]) -> int:
    failed = 0
    for run_id in run_ids:
        handle = client.get_workflow_handle(workflow_id_for(key), run_id=run_id)
        async for event in handle.fetch_history_events():
            failed += event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    return failed


def too_large(answer: Any, limit: str) -> None:
    assert answer.status_code == 413, answer.text
    assert limit in answer.json()["detail"], answer.text


async def test_inputs_past_their_caps_are_refused_and_the_incident_still_escalates_on_time(
    fast_api: Api, dev_env: WorkflowEnvironment
) -> None:
    api = fast_api
    created = await api.ok(
        "POST", "/api/incidents", 201, json={"title": "Checkout errors", "severity": "SEV2"}
    )
    key = created["key"]
    first_run = (await dev_env.client.get_workflow_handle(workflow_id_for(key)).describe()).run_id
    await api.ok("POST", f"/api/incidents/{key}/acknowledge", json={"commander": "bob"})
    timeline = f"/api/incidents/{key}/timeline"

    # A 2.5 MB note, and two 1.5 MB notes at once: refused at the door, naming the limit.
    too_large(await api.http.post(timeline, json={"text": "x" * 2_500_000}), BODY_LIMIT)
    for answer in await asyncio.gather(
        *(api.http.post(timeline, json={"text": "y" * 1_500_000}) for _ in range(2))
    ):
        too_large(answer, BODY_LIMIT)
    refused = await api.http.post(timeline, json={"text": "z" * (NOTE_CHARS + 1)})
    assert refused.status_code == 422, refused.text
    assert refused.json()["problems"] == [
        "text: at most 10,000 characters, this has 10,001; shorten it, or link to a document "
        "for the rest"
    ]

    # Notes at the cap until the run has grown past what it may hold: it continues as new,
    # carrying only its latest events.
    sent = 0
    while sent < 2 * RUN_GROWTH_BYTES // NOTE_CHARS:
        await api.ok("POST", timeline, json={"text": f"{sent:05d} " + "n" * (NOTE_CHARS - 6)})
        sent += 1
        if sent % 20 == 0 and len(await runs_of(dev_env.client, key)) > 1:
            break
    runs = await eventually(lambda: runs_of(dev_env.client, key), lambda r: len(r) > 1)
    handover = dev_env.client.get_workflow_handle(workflow_id_for(key), run_id=first_run)
    assert (await handover.fetch_history()).events[-1].event_type is (
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    )
    incident = await state(api, key)
    notes = [event.text[:5] for event in incident.timeline if event.kind.value == "note"]
    assert notes == [f"{n:05d}" for n in range(sent - len(notes), sent)]
    # declared, acknowledged, the notes and any escalation: each event is listed or counted.
    listed = len(incident.timeline)
    assert incident.earlier_timeline_events + listed == 2 + sent + incident.escalation_count
    assert incident.earlier_timeline_events > 0

    # The last note was the last status update: the reminder fires on time.
    await escalated_on_time(api, key, DeadlineKind.STATUS_UPDATE, 1)

    await api.ok("POST", f"/api/incidents/{key}/resolve", json={})
    review = f"/api/incidents/{key}/review"
    # A 3 MB review; a review within every field's cap that is still too large for a command.
    too_large(await api.http.post(review, json={"executive_summary": "r" * 3_000_000}), BODY_LIMIT)
    narrative = [{"at": created["clock"]["declared_at"], "text": "w" * NOTE_CHARS}] * 40
    heavy = review_json(item_spec("payments", "Cap the pool"), timeline=narrative)
    too_large(await api.http.post(review, json=heavy), "256 KiB")
    # A YAML review of aliases, which would expand a thousandfold.
    bomb = "a: &a [" + ", ".join(["x" * 100] * 10) + "]\nb: &b [*a, *a, *a, *a, *a, *a]\n"
    refused = await api.http.post(
        review, content=bomb, headers={"Content-Type": "application/yaml"}
    )
    assert refused.status_code == 422, refused.text
    assert "anchors and aliases (&name, *name) are not accepted" in refused.json()["detail"]
    # Action items past their caps, one by one and in a review.
    item = {**item_spec("payments", "Cap").model_dump(mode="json"), "title": "t" * 201}
    refused = await api.http.post(f"/api/incidents/{key}/actions", json=item)
    assert refused.status_code == 422
    assert refused.json()["problems"][0].startswith("title: at most 200 characters")
    many = review_json(item_spec("payments", "Cap"))
    many["action_items"] = many["action_items"] * (REVIEW_ACTION_ITEMS + 1)
    refused = await api.http.post(review, json=many)
    assert refused.status_code == 422
    assert refused.json()["problems"] == [
        "action_items: at most 50 entries, this has 51; keep the ones that matter"
    ]

    # Still answering, still on time: the review deadline's ladder, then a review accepted.
    await escalated_on_time(api, key, DeadlineKind.REVIEW, 2)
    accepted = await api.ok("POST", review, json=review_json(item_spec("payments", "Cap")))
    assert accepted["state"] == "tracking"
    runs = await runs_of(dev_env.client, key)
    assert await failed_tasks(dev_env.client, key, runs) == 0
    # What the first run handed over is small, however much it held.
    started = await dev_env.client.get_workflow_handle(workflow_id_for(key)).fetch_history()
    handed = started.events[0].workflow_execution_started_event_attributes.input.payloads[0]
    assert len(handed.data) < CARRIED_TIMELINE_CHARS + 100_000


async def test_bodies_that_once_crashed_the_api_answer_4xx_with_a_message(api: Api) -> None:
    # Not UTF-8: the undocumented 400 becomes the README's 422.
    answer = await api.http.post(
        "/api/incidents",
        content='{"title": "caf\u00e9", "severity": "SEV2"}'.encode("latin-1"),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["problems"] == ["body: not UTF-8 text; send JSON encoded as UTF-8"]
    deep = b"[" * 100_000 + b"]" * 100_000
    answer = await api.http.post(
        "/api/incidents", content=deep, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    assert "nested too deeply" in answer.json()["detail"]
    # started_at 0 is the epoch, not when impact began.
    answer = await api.http.post(
        "/api/incidents", json={"title": "t", "severity": "SEV2", "started_at": 0}
    )
    assert answer.status_code == 422
    assert answer.json()["problems"] == [
        "started_at: 1970-01-01T00:00:00+00:00 is not between 2000-01-01 and 2100-01-01; give "
        "the real time, e.g. 2026-11-27T14:03:00Z"
    ]

    key = await resolved_incident(api)
    url = f"/api/incidents/{key}/review"
    json_type = {"Content-Type": "application/json"}
    answer = await api.http.post(url, content=b"[" * 5_000_000, headers=json_type)
    too_large(answer, BODY_LIMIT)
    answer = await api.http.post(url, content=b"[" * 500_000, headers=json_type)
    assert answer.status_code == 422
    assert answer.json()["problems"] == [
        "(top level): nested too deeply to read; a review needs a few levels"
    ]
    yaml_type = {"Content-Type": "application/yaml"}
    for bad, says in (
        ("timeline:\n- at: 2026-99-99\n  text: hi\n", "timeline.0.at: '2026-99-99' is not a time"),
        ("timeline:\n- at: !!timestamp 2026-02-30\n  text: hi\n", "'2026-02-30' is not a time"),
    ):
        answer = await api.http.post(url, content=bad, headers=yaml_type)
        assert answer.status_code == 422, answer.text
        problem = next(p for p in answer.json()["problems"] if p.startswith("timeline.0.at"))
        assert says in problem and problem.endswith("(line 2)")
    answer = await api.http.post(url, content=b"\xff\xfe" + b"\x00" * 10, headers=yaml_type)
    assert answer.status_code == 422
    assert "not UTF-8 text" in answer.json()["problems"][0]
    # The incident was not disturbed by any of it.
    assert (await api.ok("GET", f"/api/incidents/{key}"))["state"] == "resolved"


@pytest.mark.parametrize(
    "path",
    [
        "/api/tickets/LOCAL-99999999999999999999",
        "/api/actions/INC-1-99999999999999999999",
        "/api/actions/LOCAL-99999999999999999999",
        "/api/incidents/" + "A" * 5000,
        "/api/incidents/inc-261127-7kq2",
    ],
)
async def test_keys_and_ids_that_name_nothing_answer_404(api: Api, path: str) -> None:
    answer = await api.http.get(path)
    assert answer.status_code == 404, answer.text
    assert len(answer.json()["detail"]) < 300


async def test_a_team_filter_no_team_can_match_answers_422(api: Api) -> None:
    answer = await api.http.get("/api/actions", params={"team": 'a"b'})
    assert answer.status_code == 422, answer.text
    [problem] = answer.json()["problems"]
    assert problem.startswith("query.team: a team or service name cannot contain a double quote")
    nothing = await api.ok("GET", "/api/actions", params={"team": "a'b\\c"})
    assert (nothing["items"], nothing["total"], nothing["next"]) == ([], 0, None)


async def test_the_api_documents_413(api: Api) -> None:
    schema = await api.ok("GET", "/openapi.json")
    answers = schema["paths"]["/api/incidents/{key}/timeline"]["post"]["responses"]
    assert {"413", "422"} <= set(answers)
    text = json.dumps(schema["components"]["schemas"]["AddTimelineEventBody"])
    assert '"maxLength": 10000' in text

"""The API reads incidents as the CLI does: relative times in bodies, the list's filters as query
parameters, keys in any case; and retry-ticket says when there was nothing to retry. The real
app over httpx's ASGI transport, with a real worker (tests.test_api_reviews.running_api)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.helpers import eventually
from tests.reviews import full_review, item_spec
from tests.test_api_reviews import Api, running_api


@pytest.fixture
async def api(dev_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(dev_env, tmp_path) as running:
        yield running


def about(moment: str, expected: datetime) -> bool:
    """Within a minute: the API reads the duration against its own clock."""
    return abs(datetime.fromisoformat(moment) - expected) < timedelta(minutes=1)


async def test_bodies_take_times_as_how_long_ago(api: Api) -> None:
    now = datetime.now(UTC)
    created = await api.ok(
        "POST",
        "/api/incidents",
        201,
        json={"title": "Checkout errors", "severity": "SEV2", "started_at": "45m"},
    )
    key = created["key"]
    assert about(created["clock"]["started_at"], now - timedelta(minutes=45))
    await api.ok("POST", f"/api/incidents/{key}/timeline", json={"text": "paged", "at": "30m"})
    await api.ok("POST", f"/api/incidents/{key}/mitigate", json={"at": "20m"})
    await api.ok("POST", f"/api/incidents/{key}/resolve", json={"at": "10m"})
    incident = await api.ok("GET", f"/api/incidents/{key}")
    clock = incident["clock"]
    assert about(clock["mitigated_at"], now - timedelta(minutes=20))
    assert about(clock["resolved_at"], now - timedelta(minutes=10))
    [paged] = [event for event in incident["timeline"] if event["text"] == "paged"]
    assert about(paged["at"], now - timedelta(minutes=30))

    too_long = await api.http.post(
        "/api/incidents", json={"title": "t", "severity": "SEV2", "detected_at": "9999999d"}
    )
    assert too_long.status_code == 422
    assert "detected_at: '9999999d' is longer than 3650d" in too_long.json()["detail"]


async def test_lowercase_keys_name_the_same_incident(api: Api) -> None:
    created = await api.ok("POST", "/api/incidents", 201, json={"title": "t", "severity": "SEV3"})
    key = created["key"]
    assert (await api.ok("GET", f"/api/incidents/{key.lower()}"))["key"] == key
    acked = await api.ok(
        "POST", f"/api/incidents/{key.lower()}/acknowledge", json={"commander": "b"}
    )
    assert acked["state"] == "mitigating"


async def test_the_list_takes_the_clis_filters(api: Api) -> None:
    service, team = f"svc-{uuid.uuid4().hex[:8]}", f"team-{uuid.uuid4().hex[:8]}"
    body: dict[str, Any] = {"title": "t", "severity": "SEV2", "services": [service]}
    ongoing = (await api.ok("POST", "/api/incidents", 201, json={**body, "teams": [team]}))["key"]
    resolved = (await api.ok("POST", "/api/incidents", 201, json=body))["key"]
    await api.ok("POST", f"/api/incidents/{resolved}/resolve", json={})

    async def keys(**params: Any) -> set[str]:
        page = await api.ok("GET", "/api/incidents", params={"service": service, **params})
        return {row["key"] for row in page["items"]}

    await eventually(keys, lambda found: found == {ongoing, resolved})
    await eventually(lambda: keys(active="true"), lambda found: found == {ongoing})
    assert await keys(team=team) == {ongoing}
    assert await keys(since="1h") == {ongoing, resolved}
    assert await keys(until="1h") == set()
    assert await keys(since="2000-01-01T00:00:00Z", until="2099-01-01T00:00:00Z") == {
        ongoing,
        resolved,
    }
    bad = await api.http.get("/api/incidents", params={"service": 'a"b'})
    assert bad.status_code == 422


async def test_retry_ticket_says_when_there_was_nothing_to_retry(api: Api) -> None:
    created = await api.ok("POST", "/api/incidents", 201, json={"title": "t", "severity": "SEV2"})
    key = created["key"]
    await api.ok("POST", f"/api/incidents/{key}/resolve", json={})
    review = full_review(item_spec("payments", "Cap the pool size"))
    await api.ok("POST", f"/api/incidents/{key}/review", json=review.model_dump(mode="json"))
    item = await eventually(
        lambda: api.ok("GET", f"/api/actions/{key}-1"), lambda found: found["ticket"] is not None
    )
    answer = await api.ok("POST", f"/api/actions/{key.lower()}-1/retry-ticket", json={})
    assert answer == {
        "id": f"{key}-1",
        "requested": False,
        "detail": f"nothing to retry: {key}-1 has its ticket, {item['ticket']['key']} in local",
    }

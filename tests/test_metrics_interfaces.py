"""The figures through every door: the read model's rows (on SQLite and PostgreSQL), the CLI
(on the store and through the API) and GET /api/metrics, all agreeing with figures by hand."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from domain.action_item import ActionItemState
from domain.facts import ActionItemFacts, IncidentFacts
from domain.identity import Role
from domain.incident import IncidentState
from domain.policy import ActionKind, Rung
from domain.severity import Severity
from settings import Settings
from store import configured_store, open_store
from store.facts import FactsRepository
from tests.api_server import serving_api
from tests.auth import bearer, token_secret
from tests.cli import AFTERACTION, cli_env

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = timedelta(days=1)


def incident(key: str, *, declared: datetime, **fields: Any) -> IncidentFacts:
    values: dict[str, Any] = {
        "title": "Checkout errors",
        "severity": Severity.SEV2,
        "state": IncidentState.CLOSED,
        "services": ["checkout"],
        "teams": ["payments"],
        "started_at": None,
        "detected_at": None,
    }
    return IncidentFacts(key=key, declared_at=declared, **{**values, **fields})


def item(
    key: str, number: int, *, created: datetime, due: datetime, **fields: Any
) -> ActionItemFacts:
    values: dict[str, Any] = {
        "title": "Cap the pool",
        "owning_team": "payments",
        "kind": ActionKind.SHORT_TERM,
        "severity": Severity.SEV2,
        "state": ActionItemState.OPEN,
        "target": "local",
    }
    return ActionItemFacts(
        id=f"{key}-{number}",
        incident_key=key,
        number=number,
        created_at=created,
        first_due_at=due,
        due_at=due,
        **{**values, **fields},
    )


def fill(facts: FactsRepository) -> None:
    """Two incidents in the last 30 days, one cancelled, one from 40 days ago; three items."""
    a, b = NOW - 10 * DAY, NOW - 5 * DAY
    facts.record_incident(
        incident(
            "INC-A",
            declared=a,
            started_at=a - timedelta(minutes=20),
            acknowledged_at=a + timedelta(minutes=4),
            mitigated_at=a + timedelta(minutes=40),
            resolved_at=a + timedelta(minutes=100),
            escalations=2,
            escalations_by_rung={Rung.OWNER: 1, Rung.TEAM_LEAD: 1},
        ),
        at=NOW,
    )
    facts.record_incident(
        incident(
            "INC-B",
            declared=b,
            teams=["platform"],
            severity=Severity.SEV1,
            acknowledged_at=b + timedelta(minutes=2),
            resolved_at=b + timedelta(minutes=30),
        ),
        at=NOW,
    )
    facts.record_incident(
        incident("INC-C", declared=b, state=IncidentState.CANCELLED, cancelled_at=b), at=NOW
    )
    facts.record_incident(
        incident("INC-OLD", declared=NOW - 40 * DAY, acknowledged_at=NOW - 40 * DAY), at=NOW
    )
    facts.record_action_item(
        item("INC-A", 1, created=a, due=a + DAY, state=ActionItemState.DONE, completed_at=a),
        at=NOW,
    )
    facts.record_action_item(
        item(
            "INC-A",
            2,
            created=a,
            due=NOW - DAY,
            rung=Rung.TEAM_LEAD,
            escalations=1,
            escalations_by_rung={Rung.TEAM_LEAD: 1},
        ),
        at=NOW,
    )
    facts.record_action_item(
        item("INC-B", 1, created=b, due=NOW + DAY, owning_team="platform"), at=NOW
    )


def check_figures(report: dict[str, Any]) -> None:
    total = report["total"]
    assert (total["incidents"], total["cancelled"]) == (2, 1)
    # MTTR: A 120 min from its reported start; B 30 min from its declaration (a fallback).
    mttr = total["durations"]["mttr"]
    assert (mttr["count"], mttr["p50"], mttr["p90"], mttr["mean"]) == (2, 1800.0, 7200.0, 4500.0)
    assert mttr["fallbacks"] == {"declared_at": 1}
    assert total["durations"]["mtta"]["p90"] == 240.0
    items = total["action_items"]
    assert (items["closed"], items["on_time"], items["open"], items["overdue"]) == (1, 1, 2, 1)
    assert items["overdue_by_rung"] == {"team_lead": 1}
    assert total["escalations"]["by_rung"] == {"owner": 1, "team_lead": 2}
    groups = {group["group"]: group for group in report["groups"]}
    assert set(groups) == {"payments", "platform"}
    assert groups["platform"]["durations"]["mttr"]["p50"] == 1800.0
    assert groups["payments"]["action_items"]["overdue"] == 1


def run_cli(home: Path, *args: str, **env: str) -> tuple[int, str, str]:
    # No Temporal is needed: the figures come from the store, or through the API.
    environment = cli_env(home, temporal_address="127.0.0.1:1") | {"COLUMNS": "200", **env}
    done = subprocess.run(
        [AFTERACTION, *args], env=environment, cwd=home, capture_output=True, text=True, timeout=60
    )
    return done.returncode, done.stdout, done.stderr


def test_the_cli_the_api_and_the_remote_cli_give_the_same_figures(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    fill(FactsRepository(configured_store(settings)))

    code, stdout, stderr = run_cli(tmp_path, "metrics", "--since", "30d", "--by", "team", "--json")
    assert code == 0, stderr
    on_the_store = json.loads(stdout)
    check_figures(on_the_store)

    viewer = token_secret(settings, role=Role.VIEWER)
    with serving_api(settings) as api_url:
        answer = httpx.get(
            f"{api_url}/api/metrics", params={"since": "30d", "by": "team"}, headers=bearer(viewer)
        )
        assert answer.status_code == 200, answer.text
        check_figures(answer.json())
        assert httpx.get(f"{api_url}/api/metrics").status_code == 401
        refused = httpx.get(
            f"{api_url}/api/metrics", params={"since": "banana"}, headers=bearer(viewer)
        )
        assert refused.status_code == 422 and "not a duration" in refused.text
        definitions = httpx.get(f"{api_url}/api/metrics/definitions", headers=bearer(viewer))
        assert "mttr" in {d["name"] for d in definitions.json()["definitions"]}

        laptop = tmp_path / "laptop"  # no store of its own: the figures come through the API
        laptop.mkdir()
        code, stdout, stderr = run_cli(
            laptop,
            "metrics",
            "--since",
            "30d",
            "--by",
            "team",
            "--json",
            AFTERACTION_API_URL=api_url,
            AFTERACTION_API_TOKEN=viewer,
        )
        assert code == 0, stderr
        check_figures(json.loads(stdout))


def test_a_window_that_is_no_duration_is_refused_with_the_forms_it_takes(tmp_path: Path) -> None:
    code, _, stderr = run_cli(tmp_path, "metrics", "--since", "soon")
    assert code == 2 and "--since: 'soon' is not a duration" in stderr
    code, stdout, _ = run_cli(tmp_path, "metrics", "definitions", "--json")
    listed = json.loads(stdout)
    assert code == 0 and listed["version"] >= 1
    assert {"mttd", "mtta", "mttm", "mttr", "time_to_review"} <= {
        d["name"] for d in listed["definitions"]
    }


def test_a_late_write_never_replaces_a_newer_one(database_url: str) -> None:
    facts = FactsRepository(open_store(database_url))
    declared = NOW - DAY
    newer = incident("INC-R", declared=declared, revision=3, state=IncidentState.RESOLVED)
    older = incident("INC-R", declared=declared, revision=2, state=IncidentState.MITIGATED)
    assert facts.record_incident(newer, at=NOW)
    assert not facts.record_incident(older, at=NOW)
    assert facts.incidents(["INC-R"])["INC-R"]["state"] == "resolved"
    # The same revision again (a retried write) writes the same facts.
    assert facts.record_incident(newer, at=NOW)
    assert facts.incidents(["INC-R"])["INC-R"]["revision"] == 3

"""Jira configuration: the settings' credentials, the routing file's Jira tables, the registry."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from domain.action_item import Priority
from domain.policy import Rung, default_policy
from domain.routing import RoutingError, load_routing
from integrations.jira import JiraTracker
from integrations.registry import TrackerRegistry
from integrations.tracker import TrackerError
from settings import Settings, SettingsError, load_settings

TOKEN = "atl-token-do-not-leak"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("AFTERACTION_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def settings_error(monkeypatch: pytest.MonkeyPatch, **variables: str) -> str:
    for name, value in variables.items():
        monkeypatch.setenv(f"AFTERACTION_JIRA_{name}", value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert TOKEN not in message
    return message


# ---- settings ----------------------------------------------------------------------------


def test_cloud_and_data_center_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().jira_flavor is None
    monkeypatch.setenv("AFTERACTION_JIRA_URL", "https://acme.atlassian.net/")
    monkeypatch.setenv("AFTERACTION_JIRA_EMAIL", "bot@acme.example")
    monkeypatch.setenv("AFTERACTION_JIRA_API_TOKEN", TOKEN)
    cloud = load_settings()
    assert (cloud.jira_flavor, cloud.jira_url) == ("cloud", "https://acme.atlassian.net")
    assert TOKEN not in repr(cloud)
    monkeypatch.delenv("AFTERACTION_JIRA_EMAIL")
    monkeypatch.delenv("AFTERACTION_JIRA_API_TOKEN")
    monkeypatch.setenv("AFTERACTION_JIRA_PAT", TOKEN)
    assert load_settings().jira_flavor == "dc"


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"URL": "https://acme.atlassian.net"}, "set AFTERACTION_JIRA_EMAIL and "),
        ({"EMAIL": "bot@acme.example", "API_TOKEN": TOKEN}, "AFTERACTION_JIRA_URL is missing"),
        (
            {"URL": "https://acme.atlassian.net", "EMAIL": "bot@acme.example"},
            "AFTERACTION_JIRA_API_TOKEN is missing: Jira Cloud needs both",
        ),
        (
            {"URL": "https://j.example", "API_TOKEN": TOKEN, "EMAIL": "b@x", "PAT": TOKEN},
            "not both",
        ),
        ({"URL": "jira.example.com", "PAT": TOKEN}, "AFTERACTION_JIRA_URL is invalid"),
    ],
)
def test_incomplete_jira_settings_say_what_to_set(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], expected: str
) -> None:
    assert expected in settings_error(monkeypatch, **variables)


# ---- routing file ------------------------------------------------------------------------

ROUTING = """
[teams.billing]
tracker = "jira:PAY"
assignee = "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077"
team_lead = ["@lead-ann"]
components = ["billing-api"]
issue_type = "Bug"

[teams.web]
tracker = "local"
assignee = "wendy"

[jira.PAY]
priorities = { P1 = "Blocker" }
done_transition = "Ship it"
"""


def test_jira_teams_and_projects(tmp_path: Path) -> None:
    path = tmp_path / "routing.toml"
    path.write_text(ROUTING, encoding="utf-8")
    routing = load_routing(path)
    route = routing.route("billing", default_policy())
    assert route.target == "jira:PAY"
    assert (route.components, route.issue_type) == (["billing-api"], "Bug")
    assert route.contacts[Rung.TEAM_LEAD] == ["@lead-ann"]
    project = routing.jira_project("PAY")
    assert project.issue_type == "Task"
    assert project.priorities[Priority.P1] == "Blocker"
    assert project.priorities[Priority.P2] == "High"  # the defaults fill what it leaves out
    assert (project.done_transition, project.reopen_transition) == ("Ship it", None)
    assert routing.jira_project("OPS").priorities[Priority.P4] == "Low"
    assert routing.jira_people() == {"557058:f58131cb-b67d-43c7-b30d-6b58d40bd077", "lead-ann"}
    web = routing.route("web", default_policy())
    assert (web.components, web.issue_type) == ([], None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[teams.web]\ntracker = "local"\ncomponents = ["x"]\n',
            "teams.web: components apply to jira:PROJECT trackers only",
        ),
        ('[jira.pay]\nissue_type = "Task"\n', "expected a Jira project key"),
        ('[jira.PAY]\npriorities = { P7 = "Low" }\n', "jira.PAY.priorities.P7"),
        ('[jira.PAY]\ndone_transtion = "Ship"\n', "jira.PAY.done_transtion"),
        ('[teams.a]\ntracker = "jira:PAY"\nissue_type = " "\n', "teams.a.issue_type"),
    ],
)
def test_routing_errors_name_the_table_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "routing.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RoutingError) as error:
        load_routing(path)
    assert expected in str(error.value) and str(path) in str(error.value)


# ---- registry ----------------------------------------------------------------------------


def test_registry_builds_one_jira_tracker_from_the_settings(tmp_path: Path) -> None:
    path = tmp_path / "routing.toml"
    path.write_text(ROUTING, encoding="utf-8")
    registry = TrackerRegistry(
        Settings(
            home=tmp_path,
            jira_url="http://127.0.0.1:9",
            jira_pat=TOKEN,
            routing_file=path,
        )
    )
    jira = registry.for_target("jira:PAY")
    assert isinstance(jira, JiraTracker) and jira.flavor == "dc"
    assert registry.for_target("jira:OPS") is jira
    with pytest.raises(TrackerError, match="expected jira:PROJECT") as error:
        registry.for_target("jira:pay")
    assert not error.value.retryable


def test_registry_without_jira_names_the_variables(tmp_path: Path) -> None:
    with pytest.raises(TrackerError) as error:
        TrackerRegistry(Settings(home=tmp_path)).for_target("jira:PAY")
    message = str(error.value)
    assert "AFTERACTION_JIRA_URL" in message and "AFTERACTION_JIRA_PAT" in message
    assert "AFTERACTION_JIRA_API_TOKEN" in message and not error.value.retryable

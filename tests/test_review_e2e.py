"""The review scenario a team runs, through the CLI on `afteraction run`: template, a
refused file, two items for two teams as local tickets, an overdue item walking the ladder
on its ticket, tickets closed by the team, verification, and the incident closing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.stack import Stack, running_stack

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("review-stack"),
        AFTERACTION_POLICY_FILE=str(HERE / "e2e_items_policy.toml"),
        AFTERACTION_ROUTING_FILE=str(HERE / "e2e_routing.toml"),
    ) as running:
        yield running


def until(probe: Callable[[], Any], accept: Callable[[Any], bool], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout}s; last: {value!r}")
        time.sleep(0.4)


def resolved(stack: Stack) -> str:
    key = str(stack.cli_json("declare", "--title", "Checkout errors", "--severity", "SEV2")["key"])
    stack.cli_json("resolve", key)
    return key


def filled(template: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    template["executive_summary"] = "Checkout failed for 20 minutes after a deploy."
    template["technical_appendix"] = "The connection pool was exhausted."
    for question in template["questions"].values():
        question["answer"] = "discussed; see the appendix"
    template["rubric"] = {"severity": 3, "exposure": 2, "risk_migration": 3}
    template["facilitator"] = "fran"
    template["participants"] = [
        {"name": "ana", "function": "engineering"},
        {"name": "oli", "function": "operations"},
        {"name": "pri", "function": "product"},
    ]
    template["action_items"] = items
    return template


ITEMS = [
    {
        "title": "Cap the pool size",
        "owning_team": "payments",
        "kind": "short_term_mitigation",
        "priority": "P1",
        "success_criteria": "pool below 80% for 7 days",
    },
    {
        "title": "Alert on pool saturation",
        "owning_team": "platform",
        "kind": "long_term_systemic",
        "priority": "P2",
        "success_criteria": "the alert fires in a game day",
    },
]


def test_review_scenario_from_template_to_closed_incident(stack: Stack, tmp_path: Path) -> None:
    key = resolved(stack)
    template_file = tmp_path / "review.yaml"
    made = stack.cli("review", "template", key, "--out", str(template_file))
    assert made.returncode == 0, made.stderr
    template = yaml.safe_load(template_file.read_text())

    refused = stack.cli("review", "submit", key, str(template_file))
    assert refused.returncode == 2
    for path in (
        "executive_summary",
        "questions.what_happened.answer",
        "rubric.severity",
        "facilitator",
        "action_items",
    ):
        assert path in refused.stderr, path

    review_file = tmp_path / "filled.yaml"
    review_file.write_text(yaml.safe_dump(filled(template, ITEMS)))
    accepted = stack.cli_json("review", "submit", key, str(review_file))
    assert accepted["state"] == "tracking"

    def tickets() -> list[dict[str, Any]]:
        return [t for t in stack.cli_json("tickets", "list") if key in t["title"]]

    both = until(tickets, lambda found: len(found) == 2)
    assigned = {ticket["assignee"] for ticket in both}
    assert assigned == {"pat", "plato"}

    # The short-term item is due 4s after the review: reminded, then the ladder on its ticket.
    first = until(
        lambda: stack.cli_json("actions", "show", f"{key}-1"),
        lambda item: len(item["escalations"]) >= 3,
    )
    assert [e["rung"] for e in first["escalations"][:3]] == ["owner", "team_lead", "manager"]
    ticket_key = first["ticket"]["key"]
    shown = stack.cli_json("tickets", "show", ticket_key)
    texts = [comment["text"] for comment in shown["comments"]]
    assert "reminder" in texts[0]
    assert texts[1].startswith("@pat escalated to owner")
    assert texts[2].startswith("@payments-lead escalated to team lead")
    assert texts[3].startswith("@payments-manager escalated to manager")
    overdue = stack.cli_json("actions", "list", "--incident", key, "--overdue")["items"]
    assert [row["id"] for row in overdue] == [f"{key}-1"]

    for ticket in both:
        assert stack.cli("tickets", "close", ticket["ref"]["key"]).returncode == 0
    until(
        lambda: stack.cli_json("actions", "list", "--incident", key)["items"],
        lambda rows: [row["state"] for row in rows] == ["verifying", "verifying"],
    )
    early = stack.cli("show", key, "--json")
    assert '"state": "tracking"' in early.stdout
    for number in (1, 2):
        done = stack.cli_json("actions", "verify", f"{key}-{number}", "--evidence", "dashboard")
        assert done["state"] == "done"
    closed = until(lambda: stack.cli_json("show", key), lambda i: i["state"] == "closed")
    assert closed["clock"]["closed_at"] is not None
    markdown = stack.cli("review", "show", key).stdout
    assert markdown.index("Executive summary") < markdown.index("Technical appendix")


def test_unknown_team_is_refused_naming_the_team_and_the_routing_file(
    stack: Stack, tmp_path: Path
) -> None:
    key = resolved(stack)
    template_file = tmp_path / "review.yaml"
    stack.cli("review", "template", key, "--out", str(template_file))
    stray = dict(ITEMS[0], owning_team="search")
    review_file = tmp_path / "filled.yaml"
    review_file.write_text(
        yaml.safe_dump(filled(yaml.safe_load(template_file.read_text()), [stray]))
    )
    refused = stack.cli("review", "submit", key, str(review_file))
    assert refused.returncode == 2
    assert "'search'" in refused.stderr
    assert "e2e_routing.toml" in refused.stderr
    assert stack.cli_json("show", key)["state"] == "resolved"

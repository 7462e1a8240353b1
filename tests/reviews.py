"""A complete, valid review to submit in tests, and the routes of its teams."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from temporalio.client import Client

from domain.action_item import (
    ActionItem,
    ActionItemSpec,
    StartActionItem,
    TeamRoute,
    TicketChanged,
    TicketStatus,
)
from domain.functions import ReviewFunction
from domain.policy import ActionItemPolicy, ActionKind, Policy, Rung, default_policy
from domain.review import Answer, Decision, FocusedQuestions, Participant, Review, Rubric
from domain.severity import Severity
from tests.policies import slow_policy


def item_spec(team: str, title: str, **fields: Any) -> ActionItemSpec:
    return ActionItemSpec(
        title=title,
        owning_team=team,
        kind=fields.pop("kind", ActionKind.SHORT_TERM),
        priority=fields.pop("priority", "P2"),
        success_criteria=fields.pop("success_criteria", "error rate < 0.1% for 7 days"),
        **fields,
    )


def full_review(*items: ActionItemSpec, **fields: Any) -> Review:
    answer = Answer(answer="see the appendix", timebox_minutes=10)
    everyone = [
        Participant(name=f"{function.value}-person", function=function)
        for function in ReviewFunction
    ]
    values: dict[str, Any] = {
        "executive_summary": "Checkout failed for 20 minutes after a bad deploy.",
        "technical_appendix": "The deploy raised the pool size past the database limit.",
        "questions": FocusedQuestions(**{name: answer for name in FocusedQuestions.model_fields}),
        "rubric": Rubric(severity=3, exposure=2, risk_migration=4),
        "facilitator": "fran",
        "participants": everyone,
        "decisions": [
            Decision(
                decision="freeze pool changes",
                rationale="until limits are checked",
                owner="bob",
                date=date(2026, 11, 27),
            )
        ],
        "action_items": list(items),
    }
    return Review(**{**values, **fields})


def local_route(team: str) -> TeamRoute:
    return TeamRoute(
        team=team,
        target="local",
        assignee=f"{team}-oncall",
        contacts={Rung.TEAM_LEAD: [f"{team}-lead"], Rung.MANAGER: [f"{team}-manager"]},
    )


async def item_state(client: Client, workflow_id: str) -> ActionItem:
    item: ActionItem = await client.get_workflow_handle(workflow_id).query(
        "state", result_type=ActionItem
    )
    return item


def quick_items_policy() -> Policy:
    """Incident deadlines an hour away; action items: short-term due 3s after the review,
    reminded 1s before, ladder 0/1/2/3s, no stall; long-term due in an hour."""
    slow = slow_policy()
    items = ActionItemPolicy.model_validate(
        {
            "due_within": {"short_term_mitigation": "3s", "long_term_systemic": "1h"},
            "remind_before": ["1s"],
            "stall_after": "1h",
            "escalation": {
                "owner": "0s",
                "team_lead": "1s",
                "manager": "2s",
                "leadership": "3s",
                "repeat_every": "1h",
            },
        }
    )
    severities = {
        severity: rules.model_copy(update={"action_items": items})
        for severity, rules in slow.severities.items()
    }
    return slow.model_copy(update={"severities": severities})


def standalone_item(key: str, *, history_limit: int) -> StartActionItem:
    """An action item started on its own (no incident), due in 14 days, routed locally."""
    return StartActionItem(
        incident_key=key,
        incident_title="Checkout errors",
        number=1,
        severity=Severity.SEV2,
        spec=item_spec("payments", "Cap the pool size"),
        due_at=datetime.now(UTC) + timedelta(days=14),
        route=local_route("payments"),
        policy=default_policy().for_severity(Severity.SEV2).action_items,
        history_limit=history_limit,
    )


async def signal_ticket(
    client: Client,
    workflow_id: str,
    key: str,
    status: TicketStatus,
    delivery: str | None = None,
) -> None:
    """Tell an item its ticket is now `status`, as the local tracker does (`delivery`: the
    delivery id, so a repeat changes nothing)."""
    await client.get_workflow_handle(workflow_id).signal(
        "ticket_changed",
        TicketChanged(
            ticket_key=key,
            event=status.value,
            status=status,
            at=datetime.now(UTC),
            source="local",
            delivery_id=delivery,
        ),
    )

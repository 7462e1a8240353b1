"""Every text, list and time that enters a workflow has a cap in its model, with the limit in
the message; a run carries only the latest of its long lists into the next one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from app.formats.problems import problem_message
from domain.action_item import (
    AcceptRisk,
    ActionItem,
    ActionItemSpec,
    ExtendDeadline,
    Extension,
    TicketChanged,
    VerifyItem,
    parse_action_item_id,
)
from domain.commands import (
    Acknowledge,
    AddTimelineEvent,
    AssignRole,
    Cancel,
    NewIncident,
    SetSeverity,
    Transition,
)
from domain.escalation import DeadlineKind, EscalationRecord
from domain.incident import Incident, IncidentClock, TimelineEvent, TimelineKind
from domain.limits import (
    CARRIED_ESCALATIONS,
    CARRIED_EXTENSIONS,
    CARRIED_TIMELINE_CHARS,
    CARRIED_TIMELINE_EVENTS,
    KEY_CHARS,
    NAME_CHARS,
    NAMES_ITEMS,
    NOTE_CHARS,
    TEXT_CHARS,
    TITLE_CHARS,
)
from domain.policy import Rung, default_policy, parse_duration
from domain.review import Review, ScheduleReview
from domain.severity import Severity
from tests.reviews import item_spec, standalone_item

NOW = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)


def refusal(model: type[BaseModel], **fields: Any) -> str:
    """The one problem a model finds in `fields`, as a person reads it: 'path: message'."""
    with pytest.raises(ValidationError) as caught:
        model(**fields)
    (error,) = caught.value.errors()
    return ".".join(str(part) for part in error["loc"]) + ": " + problem_message(error)


def over(limit: int) -> str:
    return "x" * (limit + 1)


SEV2 = {"severity": "SEV2", "title": "t"}
CHANGE = {"ticket_key": "LOCAL-1", "event": "closed", "at": NOW, "source": "local"}


TOO_LONG: list[tuple[type[BaseModel], dict[str, Any], str, int]] = [
    (NewIncident, {**SEV2, "title": over(TITLE_CHARS)}, "title", TITLE_CHARS),
    (NewIncident, {**SEV2, "summary": over(NOTE_CHARS)}, "summary", NOTE_CHARS),
    (NewIncident, {**SEV2, "declared_by": over(NAME_CHARS)}, "declared_by", NAME_CHARS),
    (Acknowledge, {"commander": over(NAME_CHARS)}, "commander", NAME_CHARS),
    (AssignRole, {"role": "scribe", "person": "p", "by": over(NAME_CHARS)}, "by", NAME_CHARS),
    (SetSeverity, {"severity": "SEV1", "reason": over(TEXT_CHARS)}, "reason", TEXT_CHARS),
    (AddTimelineEvent, {"text": over(NOTE_CHARS)}, "text", NOTE_CHARS),
    (Transition, {"note": over(NOTE_CHARS)}, "note", NOTE_CHARS),
    (Cancel, {"reason": over(TEXT_CHARS)}, "reason", TEXT_CHARS),
    (ScheduleReview, {"at": NOW, "facilitator": over(NAME_CHARS)}, "facilitator", NAME_CHARS),
    (ExtendDeadline, {"due_at": NOW, "reason": over(TEXT_CHARS)}, "reason", TEXT_CHARS),
    (VerifyItem, {"evidence": over(TEXT_CHARS), "by": "b"}, "evidence", TEXT_CHARS),
    (AcceptRisk, {"rationale": "r", "approver": over(NAME_CHARS)}, "approver", NAME_CHARS),
    (TicketChanged, {**CHANGE, "delivery_id": over(KEY_CHARS)}, "delivery_id", KEY_CHARS),
    (TicketChanged, {**CHANGE, "ticket_key": over(KEY_CHARS)}, "ticket_key", KEY_CHARS),
    (TicketChanged, {**CHANGE, "event": over(NAME_CHARS)}, "event", NAME_CHARS),
]


@pytest.mark.parametrize(
    ("model", "fields", "field", "limit"),
    TOO_LONG,
    ids=[f"{model.__name__}.{field}" for model, _, field, _ in TOO_LONG],
)
def test_every_command_text_has_a_cap_named_in_its_message(
    model: type[BaseModel], fields: dict[str, Any], field: str, limit: int
) -> None:
    assert refusal(model, **fields) == (
        f"{field}: at most {limit:,} characters, this has {limit + 1:,}; shorten it, or link to "
        "a document for the rest"
    )
    model(**{**fields, field: "x" * limit})  # the limit itself is allowed


def test_action_item_fields_and_lists_have_caps() -> None:
    spec = item_spec("payments", "Cap the pool").model_dump()
    assert refusal(ActionItemSpec, **{**spec, "title": over(TITLE_CHARS)}).startswith(
        "title: at most 200 characters"
    )
    assert refusal(ActionItemSpec, **{**spec, "success_criteria": over(TEXT_CHARS)}).startswith(
        "success_criteria: at most 4,000 characters"
    )
    assert refusal(ActionItemSpec, **{**spec, "slo_link": over(2_000)}).startswith(
        "slo_link: at most 2,000 characters"
    )
    services = [f"s{n}" for n in range(NAMES_ITEMS + 1)]
    assert refusal(NewIncident, title="t", severity="SEV2", services=services) == (
        "services: at most 50 entries, this has 51; keep the ones that matter"
    )
    assert refusal(Review, participants=[{"name": "a", "function": "engineering"}] * 51) == (
        "participants: at most 50 entries, this has 51; keep the ones that matter"
    )


def test_team_and_service_names_that_lists_could_not_find_are_refused() -> None:
    message = refusal(NewIncident, title="t", severity="SEV2", teams=['pay"ments'])
    assert message.startswith('teams.0: a team or service name cannot contain a double quote (")')
    spec = item_spec("payments", "Cap the pool").model_dump()
    assert refusal(ActionItemSpec, **{**spec, "owning_team": 'a"b'}).startswith("owning_team: ")


@pytest.mark.parametrize(
    "moment", [0, "1970-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "2999-01-01T00:00:00Z"]
)
def test_times_outside_any_incident_are_refused(moment: object) -> None:
    message = refusal(NewIncident, title="t", severity="SEV2", started_at=moment)
    assert message.startswith("started_at: ")
    assert "is not between 2000-01-01 and 2100-01-01; give the real time" in message
    assert refusal(ExtendDeadline, due_at=moment, reason="r").startswith("due_at: ")
    spec = item_spec("payments", "Cap the pool").model_dump()
    assert refusal(ActionItemSpec, **{**spec, "due_at": moment}).startswith("due_at: ")
    assert refusal(AddTimelineEvent, text="t", at=moment).startswith("at: ")


@pytest.mark.parametrize("text", ["9999999999d", "3651d", "99999999999999999999", "9" * 5000 + "w"])
def test_durations_past_ten_years_are_refused_not_an_overflow(text: str) -> None:
    with pytest.raises(ValueError, match="is longer than 3650d, the longest duration"):
        parse_duration(text)
    assert parse_duration("3650d") == timedelta(days=3650)


@pytest.mark.parametrize(
    "item_id",
    [
        "LOCAL-99999999999999999999",
        "INC-1-99999999999999999999",
        "INC-1-0",
        "inc-1-2",
        "INC-1-" + "9" * 5000,
        "X" * 5000 + "-1",
    ],
)
def test_action_item_ids_that_name_no_item_are_refused(item_id: str) -> None:
    with pytest.raises(ValueError, match="is not an action item id; expected KEY-N"):
        parse_action_item_id(item_id)
    assert parse_action_item_id("INC-261127-7KQ2-12") == ("INC-261127-7KQ2", 12)


def event(minute: int, text: str) -> TimelineEvent:
    return TimelineEvent(at=NOW + timedelta(minutes=minute), kind=TimelineKind.NOTE, text=text)


def escalation(minute: int) -> EscalationRecord:
    return EscalationRecord(
        at=NOW + timedelta(minutes=minute),
        deadline=DeadlineKind.STATUS_UPDATE,
        due_at=NOW,
        rung=Rung.OWNER,
        notified=["bob"],
        reason=f"no status update ({minute})",
    )


def incident(timeline: list[TimelineEvent], escalations: list[EscalationRecord]) -> Incident:
    return Incident(
        key="INC-261127-7KQ2",
        title="Checkout errors",
        severity=Severity.SEV2,
        declared_by="alice",
        clock=IncidentClock(started_at=NOW, detected_at=NOW, declared_at=NOW),
        timeline=timeline,
        escalations=escalations,
        policy=default_policy(),
    )


def test_a_run_carries_the_latest_timeline_events_and_counts_the_others() -> None:
    many = [event(n, f"note {n}") for n in range(CARRIED_TIMELINE_EVENTS + 50)]
    escalations = [escalation(n) for n in range(CARRIED_ESCALATIONS + 7)]
    carried = incident(many, escalations).carried()
    assert carried.timeline == many[-CARRIED_TIMELINE_EVENTS:]
    assert carried.earlier_timeline_events == 50
    assert carried.escalations == escalations[-CARRIED_ESCALATIONS:]
    assert (carried.earlier_escalations, carried.escalation_count) == (7, CARRIED_ESCALATIONS + 7)
    # Carried again, the counts add up; the state and the clock are untouched.
    again = carried.model_copy(update={"timeline": [*carried.timeline, event(999, "new")]})
    twice = again.carried()
    assert twice.earlier_timeline_events == 51 and twice.timeline[-1].text == "new"
    assert twice.escalation_count == CARRIED_ESCALATIONS + 7
    assert (twice.state, twice.clock) == (carried.state, carried.clock)


def test_long_notes_are_carried_within_a_text_budget() -> None:
    long_notes = [event(n, "x" * NOTE_CHARS) for n in range(25)]
    carried = incident(long_notes, []).carried()
    assert len(carried.timeline) == CARRIED_TIMELINE_CHARS // NOTE_CHARS
    assert carried.timeline == long_notes[-len(carried.timeline) :]
    assert carried.earlier_timeline_events == 25 - len(carried.timeline)


def test_an_action_item_carries_its_latest_escalations_and_extensions() -> None:
    start = standalone_item("INC-261127-7KQ2", history_limit=1000)
    item = ActionItem(
        id="INC-261127-7KQ2-1",
        incident_key=start.incident_key,
        number=1,
        severity=start.severity,
        spec=start.spec,
        due_at=start.due_at,
        route=start.route,
        policy=start.policy,
        created_at=NOW,
        last_activity_at=NOW,
        escalations=[escalation(n) for n in range(CARRIED_ESCALATIONS + 3)],
        extensions=[
            Extension(at=NOW, previous_due_at=NOW, due_at=NOW, reason=f"r{n}")
            for n in range(CARRIED_EXTENSIONS + 4)
        ],
    )
    carried = item.carried()
    assert len(carried.escalations) == CARRIED_ESCALATIONS
    assert carried.escalation_count == CARRIED_ESCALATIONS + 3
    assert [e.reason for e in carried.extensions] == [
        f"r{n}" for n in range(4, CARRIED_EXTENSIONS + 4)
    ]
    assert carried.earlier_extensions == 4

"""Deadline arithmetic: business days, when each deadline falls due in each state, the
escalation ladder's timing and who hears about each rung."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.deadlines import (
    LADDER,
    add_business_days,
    deadline_due_at,
    describe_miss,
    recipients,
    review_due_at,
    rung_for_step,
    step_at,
    steps_due,
)
from domain.escalation import DeadlineKind
from domain.incident import Incident, IncidentClock, IncidentState, Roles
from domain.policy import Policy, Rung, SeverityPolicy, default_policy, policy_from_toml
from domain.severity import Severity

# 2026-11-27 is a Friday.
FRIDAY = datetime(2026, 11, 27, 14, 30, tzinfo=UTC)
SATURDAY = FRIDAY + timedelta(days=1)
SUNDAY = FRIDAY + timedelta(days=2)
MONDAY = FRIDAY + timedelta(days=3)
DECLARED_AT = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # a Tuesday
RESOLVED_AT = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)  # a Wednesday
ANCHOR = DECLARED_AT + timedelta(minutes=20)


def make_incident(
    state: IncidentState = IncidentState.DECLARED,
    *,
    severity: Severity = Severity.SEV2,
    policy: Policy | None = None,
    **clock: Any,
) -> Incident:
    return Incident(
        key="INC-261124-T1",
        title="Checkout errors",
        severity=severity,
        state=state,
        declared_by="alice",
        clock=IncidentClock(
            started_at=DECLARED_AT, detected_at=DECLARED_AT, declared_at=DECLARED_AT, **clock
        ),
        policy=policy or default_policy(),
    )


def due(kind: DeadlineKind, incident: Incident) -> datetime | None:
    return deadline_due_at(kind, incident, status_anchor=ANCHOR)


def sev2() -> SeverityPolicy:
    return default_policy().for_severity(Severity.SEV2)


# ---- business days -----------------------------------------------------------------------


def test_friday_plus_one_business_day_is_monday() -> None:
    assert add_business_days(FRIDAY, 1) == MONDAY


def test_saturday_plus_one_business_day_is_monday() -> None:
    assert add_business_days(SATURDAY, 1) == MONDAY


def test_sunday_plus_one_business_day_is_monday() -> None:
    assert add_business_days(SUNDAY, 1) == MONDAY


def test_zero_business_days_is_the_start_itself() -> None:
    assert add_business_days(SATURDAY, 0) == SATURDAY
    assert add_business_days(FRIDAY, 0) == FRIDAY


def test_midweek_days_do_not_skip() -> None:
    tuesday = FRIDAY - timedelta(days=3)
    assert add_business_days(tuesday, 3) == FRIDAY


def test_ten_business_days_span_two_weekends() -> None:
    # Fri + 10 weekdays: Mon 30 Nov .. Fri 4 Dec, Mon 7 .. Fri 11 Dec.
    assert add_business_days(FRIDAY, 10) == datetime(2026, 12, 11, 14, 30, tzinfo=UTC)


def test_business_days_keep_the_time_of_day_and_zone() -> None:
    result = add_business_days(FRIDAY, 3)
    assert (result.hour, result.minute, result.tzinfo) == (14, 30, UTC)


def test_negative_business_days_are_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        add_business_days(FRIDAY, -1)


@given(
    start=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    days=st.integers(min_value=1, max_value=400),
)
def test_business_days_land_on_a_weekday_after_exactly_that_many_weekdays(
    start: datetime, days: int
) -> None:
    result = add_business_days(start, days)
    assert result.weekday() < 5
    assert result.time() == start.time()
    span = (result.date() - start.date()).days
    weekdays = [start + timedelta(days=n) for n in range(1, span + 1)]
    assert sum(1 for day in weekdays if day.weekday() < 5) == days


# ---- review deadline ---------------------------------------------------------------------


def test_review_due_counts_business_days_from_resolution() -> None:
    # SEV2: 5 business days; Wednesday + 5 is the next Wednesday.
    assert review_due_at(RESOLVED_AT, sev2()) == RESOLVED_AT + timedelta(days=7)


def test_review_within_replaces_the_business_day_count() -> None:
    policy = sev2().model_copy(update={"review_within": timedelta(hours=3)})
    assert review_due_at(RESOLVED_AT, policy) == RESOLVED_AT + timedelta(hours=3)


def test_review_within_from_a_policy_file_applies() -> None:
    policy = policy_from_toml('[severities.SEV2]\nreview_within = "36h"\n')
    due_at = review_due_at(FRIDAY, policy.for_severity(Severity.SEV2))
    assert due_at == FRIDAY + timedelta(hours=36)  # calendar time, weekend or not


# ---- deadline_due_at for each kind in each state -----------------------------------------

ACTIVE = [IncidentState.DECLARED, IncidentState.MITIGATING, IncidentState.MITIGATED]
AFTER_RESOLUTION = [
    IncidentState.RESOLVED,
    IncidentState.IN_REVIEW,
    IncidentState.REVIEWED,
    IncidentState.TRACKING,
    IncidentState.CLOSED,
    IncidentState.CANCELLED,
]


def test_acknowledge_is_due_while_declared_and_unacknowledged() -> None:
    incident = make_incident(IncidentState.DECLARED)
    assert due(DeadlineKind.ACKNOWLEDGE, incident) == DECLARED_AT + timedelta(minutes=15)


def test_acknowledge_follows_the_current_severity() -> None:
    incident = make_incident(IncidentState.DECLARED, severity=Severity.SEV1)
    assert due(DeadlineKind.ACKNOWLEDGE, incident) == DECLARED_AT + timedelta(minutes=5)


def test_acknowledge_stops_once_acknowledged() -> None:
    incident = make_incident(
        IncidentState.DECLARED, acknowledged_at=DECLARED_AT + timedelta(minutes=1)
    )
    assert due(DeadlineKind.ACKNOWLEDGE, incident) is None


@pytest.mark.parametrize("state", [s for s in IncidentState if s is not IncidentState.DECLARED])
def test_acknowledge_does_not_apply_after_declared(state: IncidentState) -> None:
    assert due(DeadlineKind.ACKNOWLEDGE, make_incident(state)) is None


@pytest.mark.parametrize("state", ACTIVE)
def test_status_update_is_due_a_cadence_after_the_anchor_while_active(
    state: IncidentState,
) -> None:
    assert due(DeadlineKind.STATUS_UPDATE, make_incident(state)) == ANCHOR + timedelta(hours=1)


@pytest.mark.parametrize("state", AFTER_RESOLUTION)
def test_status_update_stops_after_resolution(state: IncidentState) -> None:
    assert due(DeadlineKind.STATUS_UPDATE, make_incident(state)) is None


@pytest.mark.parametrize("state", ACTIVE)
def test_resolve_is_due_from_declaration_while_active(state: IncidentState) -> None:
    assert due(DeadlineKind.RESOLVE, make_incident(state)) == DECLARED_AT + timedelta(hours=24)


@pytest.mark.parametrize("state", AFTER_RESOLUTION)
def test_resolve_does_not_apply_after_resolution(state: IncidentState) -> None:
    assert due(DeadlineKind.RESOLVE, make_incident(state, resolved_at=RESOLVED_AT)) is None


@pytest.mark.parametrize("state", [IncidentState.RESOLVED, IncidentState.IN_REVIEW])
def test_review_is_due_after_resolution_until_submitted(state: IncidentState) -> None:
    incident = make_incident(state, resolved_at=RESOLVED_AT)
    assert due(DeadlineKind.REVIEW, incident) == add_business_days(RESOLVED_AT, 5)


@pytest.mark.parametrize(
    "state",
    [*ACTIVE, IncidentState.REVIEWED, IncidentState.TRACKING, IncidentState.CLOSED],
)
def test_review_does_not_apply_before_resolution_or_after_submission(
    state: IncidentState,
) -> None:
    assert due(DeadlineKind.REVIEW, make_incident(state, resolved_at=RESOLVED_AT)) is None


def test_review_does_not_apply_to_a_cancelled_incident() -> None:
    incident = make_incident(IncidentState.CANCELLED, cancelled_at=RESOLVED_AT)
    assert due(DeadlineKind.REVIEW, incident) is None


def test_review_needs_a_resolution_time() -> None:
    assert due(DeadlineKind.REVIEW, make_incident(IncidentState.RESOLVED)) is None


# ---- the ladder --------------------------------------------------------------------------


def test_ladder_steps_follow_the_rung_delays() -> None:
    ladder = sev2().escalation  # owner 0, team lead 30m, manager 2h, leadership 8h
    due_at = FRIDAY
    assert step_at(due_at, 0, ladder) == due_at
    assert step_at(due_at, 1, ladder) == due_at + timedelta(minutes=30)
    assert step_at(due_at, 2, ladder) == due_at + timedelta(hours=2)
    assert step_at(due_at, 3, ladder) == due_at + timedelta(hours=8)


def test_steps_due_are_every_rung_reached_since_the_last_one_notified() -> None:
    ladder = sev2().escalation  # owner 0, team lead 30m, manager 2h, leadership 8h
    assert steps_due(FRIDAY, 0, ladder, FRIDAY - timedelta(seconds=1)) == []
    assert steps_due(FRIDAY, 0, ladder, FRIDAY + timedelta(hours=2)) == [0, 1, 2]
    assert steps_due(FRIDAY, 2, ladder, FRIDAY + timedelta(hours=3)) == [2]
    assert steps_due(FRIDAY, 3, ladder, FRIDAY + timedelta(hours=3)) == []


def test_repeated_top_rung_steps_missed_in_an_outage_collapse_into_the_latest() -> None:
    ladder = sev2().escalation  # leadership at 8h, then every 8h
    two_days_late = FRIDAY + timedelta(hours=48)
    assert steps_due(FRIDAY, 0, ladder, two_days_late) == [0, 1, 2, 8]
    assert steps_due(FRIDAY, 9, ladder, two_days_late) == []


def test_steps_past_the_top_repeat_every_interval() -> None:
    ladder = default_policy().for_severity(Severity.SEV1).escalation  # top 1h, repeat 1h
    assert step_at(FRIDAY, 4, ladder) == FRIDAY + timedelta(hours=2)
    assert step_at(FRIDAY, 5, ladder) == FRIDAY + timedelta(hours=3)
    assert step_at(FRIDAY, 13, ladder) == FRIDAY + timedelta(hours=11)


def test_repeat_interval_differs_from_the_top_rung_delay() -> None:
    ladder = default_policy().for_severity(Severity.SEV3).escalation  # top 3d, repeat 1d
    assert step_at(FRIDAY, 3, ladder) == FRIDAY + timedelta(days=3)
    assert step_at(FRIDAY, 4, ladder) == FRIDAY + timedelta(days=4)
    assert step_at(FRIDAY, 6, ladder) == FRIDAY + timedelta(days=6)


@given(st.integers(min_value=0, max_value=200))
def test_steps_never_go_back_in_time(step: int) -> None:
    ladder = sev2().escalation
    assert step_at(FRIDAY, step + 1, ladder) >= step_at(FRIDAY, step, ladder)


def test_rung_for_step_climbs_then_stays_at_the_top() -> None:
    assert [rung_for_step(step) for step in range(7)] == [
        Rung.OWNER,
        Rung.TEAM_LEAD,
        Rung.MANAGER,
        Rung.LEADERSHIP,
        Rung.LEADERSHIP,
        Rung.LEADERSHIP,
        Rung.LEADERSHIP,
    ]
    assert LADDER[0] is Rung.OWNER


# ---- recipients --------------------------------------------------------------------------


def test_owner_is_the_declarer_before_a_commander_is_named() -> None:
    assert recipients(Rung.OWNER, make_incident()) == ["alice"]


def test_owner_is_the_commander_once_named() -> None:
    incident = make_incident(IncidentState.MITIGATING).model_copy(
        update={"roles": Roles(commander="bob")}
    )
    assert recipients(Rung.OWNER, incident) == ["bob"]


@pytest.mark.parametrize(
    ("rung", "expected"),
    [
        (Rung.TEAM_LEAD, ["sre-team-lead"]),
        (Rung.MANAGER, ["engineering-manager"]),
        (Rung.LEADERSHIP, ["vp-engineering"]),
    ],
)
def test_higher_rungs_come_from_the_policy_contacts(rung: Rung, expected: list[str]) -> None:
    assert recipients(rung, make_incident()) == expected


def test_contacts_from_a_policy_file_are_used() -> None:
    policy = policy_from_toml('[contacts]\nmanager = ["@carol", "@dan"]\n')
    assert recipients(Rung.MANAGER, make_incident(policy=policy)) == ["@carol", "@dan"]


def test_recipients_is_a_copy_of_the_contacts() -> None:
    incident = make_incident()
    recipients(Rung.MANAGER, incident).append("mallory")
    assert recipients(Rung.MANAGER, incident) == ["engineering-manager"]


# ---- describe_miss -----------------------------------------------------------------------


def test_describe_miss_uses_short_durations() -> None:
    incident = make_incident(severity=Severity.SEV1)
    text = describe_miss(DeadlineKind.ACKNOWLEDGE, incident, FRIDAY)
    assert text == "SEV1 not acknowledged within 5m (due 2026-11-27 14:30:00 UTC)"


def test_describe_miss_of_a_review_names_business_days() -> None:
    incident = make_incident(IncidentState.RESOLVED, resolved_at=RESOLVED_AT)
    text = describe_miss(DeadlineKind.REVIEW, incident, FRIDAY)
    assert text.startswith("review not submitted within 5 business days of resolution")

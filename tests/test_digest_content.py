"""The digest of a seeded week (tests/digest_week.py), every section against values worked
out by hand from the rows; and the slot arithmetic the schedule's runs rely on."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from domain.action_item import ActionItemState
from domain.digest import Digest
from domain.digest_policy import DigestPolicy
from domain.digest_runs import latest_slot, slot_in_week, week_after
from domain.incident import IncidentState
from domain.severity import Severity
from store import open_store
from store.digest_facts import DigestReader
from store.facts import FactsRepository
from tests.digest_week import ITEMS, SLOT, WEEK, ZONE, at, incident, seed

DAY = 86_400.0


def seeded_digest(tmp_path: Path) -> Digest:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    seed(store)
    return DigestReader(store).digest(task_queue="tq", slot=SLOT, timezone=ZONE)


def test_the_seeded_week_field_by_field(tmp_path: Path) -> None:
    digest = seeded_digest(tmp_path)
    assert digest.slot == SLOT
    assert digest.week_start == datetime(2026, 11, 23, 8, tzinfo=UTC)
    assert digest.ahead_end == datetime(2026, 12, 7, 8, tzinfo=UTC)

    by_severity = {s.severity: s for s in digest.incidents}
    assert [s.severity for s in digest.incidents] == list(Severity)
    counts = {s: (by_severity[s].declared, by_severity[s].open) for s in Severity}
    assert counts == {
        Severity.SEV1: (1, 1),
        Severity.SEV2: (1, 2),
        Severity.SEV3: (1, 0),
        Severity.SEV4: (0, 0),
    }
    listed = {s: [i.key for i in by_severity[s].incidents] for s in Severity}
    assert listed == {
        Severity.SEV1: ["INC-A"],
        Severity.SEV2: ["INC-C", "INC-B"],
        Severity.SEV3: ["INC-D"],
        Severity.SEV4: [],
    }
    assert by_severity[Severity.SEV3].incidents[0].state == "cancelled"

    reviews = digest.reviews
    assert [(r.key, r.due_at) for r in reviews.due] == [("INC-B", at(12, 2, 10))]
    assert [(r.key, r.due_at) for r in reviews.overdue] == [("INC-C", at(11, 18))]
    [held] = reviews.held
    assert (held.key, held.held_at, held.missing_functions, held.waived) == (
        "INC-A",
        at(11, 26, 12),
        ["security"],
        True,
    )
    assert reviews.more == 0

    items = digest.action_items
    assert [(i.id, i.owner, i.due_at) for i in items.due] == [("INC-A-1", "pat", at(12, 3))]
    assert items.overdue == 2
    overdue = {
        team.team: [(i.id, i.owner, i.rung) for i in team.items] for team in items.overdue_by_team
    }
    assert overdue == {
        "payments": [("INC-C-1", "pat", "team_lead")],
        "platform": [("INC-C-2", None, "owner")],
    }

    # The week: INC-F-2 on time, INC-F-1 accepted (closed, never on time); INC-A reviewed in
    # 2 days. The four weeks before: INC-F-3 late, INC-F-4 and -5 on time; INC-F in 3 days.
    trend = digest.trend
    assert trend.week.model_dump() == {
        "closed": 2,
        "on_time": 1,
        "on_time_rate": 0.5,
        "reviews": 1,
        "time_to_review_p50": 2 * DAY,
        "time_to_review_mean": 2 * DAY,
    }
    assert trend.previous_four_weeks.model_dump() == {
        "closed": 3,
        "on_time": 2,
        "on_time_rate": 0.667,
        "reviews": 1,
        "time_to_review_p50": 3 * DAY,
        "time_to_review_mean": 3 * DAY,
    }

    assert digest.repeats.count == 1
    assert [(r.key, r.repeat_of) for r in digest.repeats.incidents] == [
        ("INC-A", ["INC-OLD1", "INC-OLD2"])
    ]
    assert [(a.id, a.approver, a.accepted_at) for a in digest.risk_acceptances] == [
        ("INC-F-1", "vp-eng", at(11, 27))
    ]


def test_what_happens_after_the_slot_leaves_its_digest_unchanged(tmp_path: Path) -> None:
    """Read from the facts' times, not their current state: an item done and an incident
    declared after the slot change nothing in the digest of the week before it."""
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    seed(store)
    reader = DigestReader(store)
    before = reader.digest(task_queue="tq", slot=SLOT, timezone=ZONE)
    facts = FactsRepository(store)
    [late] = [entry for entry in ITEMS if entry.id == "INC-C-2"]
    done = late.model_copy(
        update={"revision": 2, "state": ActionItemState.DONE, "completed_at": at(12, 1)}
    )
    assert facts.record_action_item(done, at=at(12, 1))
    assert facts.record_incident(
        incident("INC-G", Severity.SEV1, IncidentState.DECLARED, declared_at=at(12, 1)),
        at=at(12, 1),
    )
    after = reader.digest(task_queue="tq", slot=SLOT, timezone=ZONE)
    assert after == before
    # The next week's digest sees both (and INC-A-1, due on 3 December, overdue by then).
    next_week = reader.digest(task_queue="tq", slot=week_after(SLOT), timezone=ZONE)
    overdue = [i.id for team in next_week.action_items.overdue_by_team for i in team.items]
    assert overdue == ["INC-C-1", "INC-A-1"]
    assert next_week.incidents[0].declared == 1


def test_slots_are_monday_nine_in_the_zone_across_dst() -> None:
    policy = DigestPolicy()
    # Summer time (UTC+2) began on Sunday 29 March 2026.
    before = latest_slot(datetime(2026, 3, 30, 6, 59, tzinfo=UTC), policy, ZONE)
    assert before.astimezone(UTC) == datetime(2026, 3, 23, 8, tzinfo=UTC)
    on_time = latest_slot(datetime(2026, 3, 30, 7, 0, tzinfo=UTC), policy, ZONE)
    assert on_time.astimezone(UTC) == datetime(2026, 3, 30, 7, tzinfo=UTC)
    assert slot_in_week(WEEK, policy, ZONE) == SLOT
    friday = DigestPolicy(weekday="friday", time="16:30")
    assert slot_in_week("2026-W49", friday, "America/New_York").astimezone(UTC) == datetime(
        2026, 12, 4, 21, 30, tzinfo=UTC
    )


def test_missed_weeks_all_name_the_latest_slot() -> None:
    """Runs caught up after three missed weeks run now: each names the same, latest, slot."""
    policy = DigestPolicy()
    now = datetime(2026, 12, 2, 12, tzinfo=UTC)
    caught_up = {latest_slot(now, policy, ZONE) for _ in range(3)}
    assert caught_up == {SLOT}

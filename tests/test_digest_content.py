"""The digest of a seeded week (tests/digest_week.py), every section against values worked
out by hand from the rows; and the slot arithmetic the schedule's runs rely on."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from domain.action_item import ActionItemState
from domain.digest import Digest
from domain.digest_html import html
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

    def listed(key: str, severity: str, state: str, declared: datetime) -> dict[str, Any]:
        return {
            "key": key,
            "title": f"{key} title",
            "severity": severity,
            "state": state,
            "declared_at": declared,
        }

    # INC-F (closed during the week, declared before it) and INC-E (closed before it) are in
    # no list; the cancelled INC-D counts as declared, not as open.
    assert [section.model_dump() for section in digest.incidents] == [
        {
            "severity": "SEV1",
            "declared": 1,
            "open": 1,
            "incidents": [listed("INC-A", "SEV1", "tracking", at(11, 24, 10))],
            "more": 0,
        },
        {
            "severity": "SEV2",
            "declared": 1,
            "open": 2,
            "incidents": [
                listed("INC-C", "SEV2", "resolved", at(11, 10)),
                listed("INC-B", "SEV2", "resolved", at(11, 25, 9)),
            ],
            "more": 0,
        },
        {
            "severity": "SEV3",
            "declared": 1,
            "open": 0,
            "incidents": [listed("INC-D", "SEV3", "cancelled", at(11, 26, 8))],
            "more": 0,
        },
        {"severity": "SEV4", "declared": 0, "open": 0, "incidents": [], "more": 0},
    ]

    def review(key: str, severity: str, due: datetime, **held: Any) -> dict[str, Any]:
        fields = {"held_at": None, "missing_functions": [], "waived": False, **held}
        return {"key": key, "title": f"{key} title", "severity": severity, "due_at": due, **fields}

    # INC-F's review was held before the week, before its deadline: in no list.
    assert digest.reviews.model_dump() == {
        "due": [review("INC-B", "SEV2", at(12, 2, 10))],
        "overdue": [review("INC-C", "SEV2", at(11, 18))],
        "held": [
            review(
                "INC-A",
                "SEV1",
                at(11, 26, 18),
                held_at=at(11, 26, 12),
                missing_functions=["security"],
                waived=True,
            )
        ],
        "more": 0,
    }

    def item(id: str, team: str, owner: str | None, due: datetime, rung: str | None) -> Any:
        return {
            "id": id,
            "title": f"{id} title",
            "owning_team": team,
            "owner": owner,
            "due_at": due,
            "rung": rung,
        }

    assert digest.action_items.model_dump() == {
        "due": [item("INC-A-1", "payments", "pat", at(12, 3), None)],
        "due_more": 0,
        "overdue": 2,
        "overdue_by_team": [
            {
                "team": "payments",
                "items": [item("INC-C-1", "payments", "pat", at(11, 20), "team_lead")],
                "more": 0,
            },
            {
                "team": "platform",
                "items": [item("INC-C-2", "platform", None, at(11, 28), "owner")],
                "more": 0,
            },
        ],
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

    assert digest.repeats.model_dump() == {
        "count": 1,
        "incidents": [
            {"key": "INC-A", "title": "INC-A title", "repeat_of": ["INC-OLD1", "INC-OLD2"]}
        ],
    }
    assert [a.model_dump() for a in digest.risk_acceptances] == [
        {
            "id": "INC-F-1",
            "title": "INC-F-1 title",
            "owning_team": "platform",
            "approver": "vp-eng",
            "accepted_at": at(11, 27),
        }
    ]
    assert digest.risk_acceptances_more == 0


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


def test_people_s_text_is_escaped_in_the_html(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    seed(store)
    FactsRepository(store).record_incident(
        incident(
            "INC-X",
            Severity.SEV1,
            IncidentState.DECLARED,
            title='<img src=x onerror="alert(1)"> & co',
            declared_at=at(11, 27),
        ),
        at=at(11, 27),
    )
    page = html(DigestReader(store).digest(task_queue="tq", slot=SLOT, timezone=ZONE))
    assert "INC-X [declared] &lt;img src=x onerror=&#34;alert(1)&#34;&gt; &amp; co" in page
    assert "<img" not in page

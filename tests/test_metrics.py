"""The metric definitions computed over hand-made fact rows: each figure by hand. The action
items are counted by the store (in SQL), so their rows go through a SQLite file."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from app.services.insights import Insights
from domain.metrics import DEFINITIONS, Grouping, MetricsReport, compute, nearest_rank
from store import open_store
from store.schema import ActionItemFactRow, IncidentFactRow

T0 = datetime(2026, 11, 1, tzinfo=UTC)
UNTIL = datetime(2026, 12, 1, tzinfo=UTC)
SINCE = UNTIL - timedelta(days=90)
MINUTE = 60_000


def ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


BASE = ms(T0)


@dataclass
class Incident:
    key: str
    declared_ms: int = BASE
    severity: str = "SEV2"
    state: str = "closed"
    services: str = '["checkout"]'
    teams: str = '["payments"]'
    started_ms: int | None = None
    detected_ms: int | None = None
    acknowledged_ms: int | None = None
    mitigated_ms: int | None = None
    resolved_ms: int | None = None
    review_submitted_ms: int | None = None
    review_due_ms: int | None = None
    escalations: int = 0
    escalations_by_rung: str = "{}"
    repeat_of: str = "[]"


@dataclass
class Item:
    incident_key: str = "INC-1"
    owning_team: str = "payments"
    severity: str = "SEV2"
    state: str = "open"
    created_ms: int = BASE
    first_due_ms: int = BASE + 10 * MINUTE
    due_ms: int = BASE + 10 * MINUTE
    extensions: int = 0
    completed_ms: int | None = None
    accepted_ms: int | None = None
    escalations: int = 0
    escalations_by_rung: str = "{}"
    rung: str | None = None


def measured(
    folder: Path, incidents: list[Incident], items: list[Item], by: Grouping | None = None
) -> MetricsReport:
    """The report of the window SINCE..UNTIL over these rows, stored in a fresh SQLite file."""
    folder.mkdir(exist_ok=True)
    store = open_store(f"sqlite:///{folder / 'facts.db'}")
    bookkeeping = {"revision": 1, "title": "t", "recorded_at": T0}
    with store.writing() as session:
        for incident in incidents:
            session.execute(
                insert(IncidentFactRow).values(
                    **asdict(incident),
                    **bookkeeping,
                    closed_ms=None,
                    cancelled_ms=None,
                    action_items=0,
                )
            )
        for number, item in enumerate(items, start=1):
            session.execute(
                insert(ActionItemFactRow).values(
                    **asdict(item),
                    **bookkeeping,
                    id=f"{item.incident_key}-{number}",
                    number=number,
                    kind="short_term_mitigation",
                    target="local",
                    reopened=0,
                )
            )
    return Insights(store).metrics(since=UNTIL - SINCE, by=by, now=UNTIL)


def test_nearest_rank_is_an_observed_value() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    assert nearest_rank(values, 50) == 5.0
    assert nearest_rank(values, 90) == 9.0
    assert nearest_rank([7.0], 90) == 7.0
    assert nearest_rank([1.0, 2.0, 3.0], 50) == 2.0


def test_durations_fall_back_to_a_later_start_and_say_so() -> None:
    incidents = [
        # Reported start: MTTR 60 min from it.
        Incident("A", started_ms=BASE - 30 * MINUTE, resolved_ms=BASE + 30 * MINUTE),
        # No start: MTTR from the detection, 20 min.
        Incident("B", detected_ms=BASE - 5 * MINUTE, resolved_ms=BASE + 15 * MINUTE),
        # Neither: from the declaration, 10 min.
        Incident("C", resolved_ms=BASE + 10 * MINUTE),
        # Not resolved yet: left out.
        Incident("D", state="mitigating"),
    ]
    report = compute(incidents, [], since=SINCE, until=UNTIL)
    mttr = report.total.durations["mttr"]
    assert mttr.count == 3
    assert (mttr.p50, mttr.p90, mttr.mean) == (1200.0, 3600.0, 1800.0)
    assert mttr.fallbacks == {"detected_at": 1, "declared_at": 1}
    # MTTD only where the start was reported: A was detected at its declaration.
    mttd = report.total.durations["mttd"]
    assert (mttd.count, mttd.p50) == (1, 1800.0)


def test_cancelled_incidents_and_those_outside_the_window_are_not_counted() -> None:
    incidents = [
        Incident("A", acknowledged_ms=BASE + MINUTE),
        Incident("B", state="cancelled", acknowledged_ms=BASE + 5 * MINUTE),
        Incident("C", declared_ms=ms(SINCE) - 1, acknowledged_ms=ms(SINCE) + 9 * MINUTE),
    ]
    report = compute(incidents, [], since=SINCE, until=UNTIL)
    assert (report.total.incidents, report.total.cancelled) == (1, 1)
    assert report.total.durations["mtta"].p50 == 60.0


def test_reviews_are_counted_against_their_deadline() -> None:
    due = BASE + 60 * MINUTE
    incidents = [
        Incident("A", resolved_ms=BASE, review_due_ms=due, review_submitted_ms=due),
        Incident("B", resolved_ms=BASE, review_due_ms=due, review_submitted_ms=due + 1),
        Incident("C", resolved_ms=BASE, review_due_ms=due),
        Incident("D", resolved_ms=BASE, review_due_ms=ms(UNTIL) + MINUTE),
    ]
    reviews = compute(incidents, [], since=SINCE, until=UNTIL).total.reviews
    assert (reviews.on_time, reviews.late, reviews.overdue, reviews.pending) == (1, 1, 1, 1)


def test_action_items_closed_on_time_extended_late_accepted_open_and_overdue(
    tmp_path: Path,
) -> None:
    due = BASE + 10 * MINUTE
    items = [
        Item(state="done", completed_ms=due),  # on time
        Item(state="done", completed_ms=due - 1, extensions=1),  # on time by its first date
        Item(state="done", completed_ms=due, first_due_ms=due - 1, extensions=1),  # extended
        Item(state="done", completed_ms=due + 1),  # late
        Item(state="accepted", accepted_ms=BASE),  # accepted, never on time
        Item(state="open", due_ms=ms(UNTIL) + MINUTE),  # open
        Item(state="open", rung="team_lead"),  # open and overdue
        Item(state="verifying"),  # ticket closed, not verified: open and overdue
    ]
    figures = measured(tmp_path, [], items).total.action_items
    assert (figures.closed, figures.on_time, figures.extended) == (5, 3, 1)
    assert (figures.late, figures.accepted) == (1, 1)
    assert (figures.open, figures.overdue) == (3, 2)
    assert figures.overdue_by_rung == {"team_lead": 1, "none": 1}
    assert figures.open_by_rung == {"none": 2, "team_lead": 1}


def test_escalations_per_incident_and_per_item_by_rung(tmp_path: Path) -> None:
    incidents = [
        Incident("A", escalations=3, escalations_by_rung=json.dumps({"owner": 2, "manager": 1})),
        Incident("B"),
    ]
    items = [Item(escalations=2, escalations_by_rung=json.dumps({"owner": 1, "team_lead": 1}))]
    figures = measured(tmp_path, incidents, items).total.escalations
    assert (figures.incidents, figures.action_items) == (3, 2)
    assert (figures.per_incident, figures.per_item) == (1.5, 2.0)
    assert figures.by_rung == {"manager": 1, "owner": 3, "team_lead": 1}


def test_repeats_and_their_rate_leave_out_cancelled_incidents(tmp_path: Path) -> None:
    incidents = [
        Incident("A"),
        Incident("B", repeat_of='["A"]'),
        Incident("C", repeat_of='["A", "B"]', services='["ledger"]'),
        Incident("D", repeat_of='["A"]', state="cancelled"),
    ]
    report = measured(tmp_path, incidents, [])
    assert (report.total.repeats.repeats, report.total.repeats.rate) == (2, 0.667)
    by_service = measured(tmp_path / "service", incidents, [], by=Grouping.SERVICE)
    assert {g.group: (g.repeats.repeats, g.repeats.rate) for g in by_service.groups} == {
        "checkout": (1, 0.5),
        "ledger": (1, 1.0),
    }
    assert measured(tmp_path / "none", [], []).total.repeats.rate is None


def test_groups_by_team_service_and_severity(tmp_path: Path) -> None:
    incidents = [
        Incident("A", teams='["payments", "platform"]', acknowledged_ms=BASE + MINUTE),
        Incident("B", teams="[]", severity="SEV1", acknowledged_ms=BASE + 3 * MINUTE),
    ]
    items = [Item(incident_key="INC-GONE", owning_team="platform")]  # its incident: not kept
    by_team = measured(tmp_path / "team", incidents, items, by=Grouping.TEAM)
    groups = {group.group: group for group in by_team.groups}
    assert set(groups) == {"payments", "platform", "(none)"}
    assert groups["platform"].incidents == 1 and groups["platform"].action_items.open == 1
    assert groups["(none)"].durations["mtta"].p50 == 180.0
    by_service = measured(tmp_path / "service", incidents, items, by=Grouping.SERVICE)
    assert {g.group: g.action_items.open for g in by_service.groups} == {
        "checkout": 0,
        "(none)": 1,
    }
    by_severity = measured(tmp_path / "severity", incidents, items, by=Grouping.SEVERITY)
    assert [(g.group, g.incidents) for g in by_severity.groups] == [("SEV1", 1), ("SEV2", 1)]


def test_every_definition_names_its_window_unit_and_what_it_leaves_out() -> None:
    names = [definition.name for definition in DEFINITIONS]
    assert len(names) == len(set(names))
    for definition in DEFINITIONS:
        assert definition.window and definition.counts
        if definition.unit.value == "seconds":
            assert definition.start and definition.end and definition.excludes


def test_the_readme_lists_every_definition_with_its_facts() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme[readme.index("## Metrics") : readme.index("## Configuration")]
    rows = {line.split("|")[1].strip(): line for line in section.splitlines() if "| `" in line}
    for definition in DEFINITIONS:
        (row,) = [line for name, line in rows.items() if name.startswith(f"`{definition.name}`")]
        for fact in [*definition.start, *definition.end]:
            assert f"`{fact}`" in row, (definition.name, fact)

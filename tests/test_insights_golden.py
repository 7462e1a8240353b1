"""Golden incidents: the scripted set of tests/golden_incidents.py, played on the dev server and
on the time-skipping server; once the read model has settled, every insights figure (total, by
team, by severity) equals the one worked out here by hand from the scenario table and the
stamps read back from the workflows, to the millisecond.

The expected figures never call domain.metrics: each is counted or subtracted below, from the
definitions' words (windows, fallbacks, exclusions, nearest rank, what counts as on time).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from app.services.insights import Insights
from app.services.read_model import ReadModel
from domain.action_item import ActionItemState
from domain.incident import IncidentState
from domain.metrics import Grouping, MetricsReport
from settings import Settings
from store import configured_store
from tests.golden_incidents import (
    NOW,
    POLICY_DUE,
    GoldenBuilder,
    Played,
    PlayedItem,
    SkippingClock,
    WallClock,
    settle,
    unsettled,
)
from tests.helpers import eventually
from worker import build_worker

WINDOW = timedelta(days=30)
NO_TEAM = "(none)"
# The dev server stamps microseconds and the store keeps milliseconds, so a duration between two
# of its stamps may differ from the workflow's by up to 1 ms; the virtual clock stamps whole ms.
MILLISECOND = 0.0011  # seconds, with room for the float
EXACT = 1e-9


# ---- the facts of each incident, from the table and the stamps read back ----------------------


def seconds(start: datetime, end: datetime) -> float:
    """end - start, in seconds, of the times as the read model keeps them: to the millisecond
    (the workflows stamp microseconds)."""

    def millisecond(moment: datetime) -> int:
        return round(moment.timestamp() * 1000)

    return (millisecond(end) - millisecond(start)) / 1000


def reported_start(p: Played) -> tuple[datetime, str]:
    """mttm/mttr start: when impact began, else its detection, else the declaration."""
    s = p.scenario
    if s.started is not None:
        return p.at(s.started), "started_at"
    if s.detected is not None:
        return p.at(s.detected), "detected_at"
    return p.incident.clock.declared_at, "declared_at"


def mitigated(p: Played) -> datetime | None:
    s, clock = p.scenario, p.incident.clock
    if s.mitigated == NOW:
        return clock.mitigated_at  # stamped by the workflow
    if s.mitigated is not None:
        return p.at(s.mitigated)
    return resolved(p)  # resolving an unmitigated incident mitigates it at the same moment


def resolved(p: Played) -> datetime | None:
    s = p.scenario
    if s.resolved == NOW:
        return p.incident.clock.resolved_at
    return None if s.resolved is None else p.at(s.resolved)


def acknowledged(p: Played) -> datetime | None:
    s, clock = p.scenario, p.incident.clock
    if s.acknowledge == "command":
        return clock.acknowledged_at  # stamped when the command came
    if s.acknowledge == "implied":
        # Mitigating (or resolving) acknowledges, no earlier than the declaration: a backdated
        # transition at the declaration itself, a transition "now" at its own stamp.
        first = s.mitigated if s.mitigated is not None else s.resolved
        return clock.mitigated_at if first == NOW else clock.declared_at
    return None


def check_played_as_scripted(played: list[Played]) -> None:
    """The workflows hold the times the table gave (a wrong builder would test nothing)."""
    for p in played:
        s, clock = p.scenario, p.incident.clock
        assert clock.mitigated_at == mitigated(p), s.name
        assert clock.resolved_at == resolved(p), s.name
        assert clock.acknowledged_at == acknowledged(p), s.name
        assert [e.rung for e in p.incident.escalations] == list(s.escalations), s.name
        assert (p.incident.state is IncidentState.CANCELLED) == s.cancel, s.name
        if s.continue_as_new:
            assert p.incident.facts_written > 0
        for item in p.items:
            assert item.state is not None
            assert [e.rung for e in item.state.escalations] == list(item.scenario.escalations)
            assert item.state.reopened == (1 if "reopen" in item.scenario.fate else 0)
            assert item.state.earlier_extensions + len(item.state.extensions) == (
                1 if "extend" in item.scenario.fate else 0
            )


# ---- the figures, worked out by hand --------------------------------------------------------


def nearest_rank(values: list[float], percent: int) -> float:
    ordered = sorted(values)
    rank = max(1, -(-percent * len(ordered) // 100))  # ceil, in integers
    return ordered[rank - 1]


def distribution(
    values: list[float], fallbacks: dict[str, int], ends: dict[str, int] | None = None
) -> dict[str, Any]:
    later_ends = ends or {}
    if not values:
        return {
            "count": 0,
            "p50": None,
            "p90": None,
            "mean": None,
            "fallbacks": fallbacks,
            "end_fallbacks": later_ends,
        }
    return {
        "count": len(values),
        "p50": nearest_rank(values, 50),
        "p90": nearest_rank(values, 90),
        # To the millisecond, halves up, from whole milliseconds (the definitions' rounding).
        "mean": (2 * sum(round(v * 1000) for v in values) + len(values))
        // (2 * len(values))
        / 1000,
        "fallbacks": fallbacks,
        "end_fallbacks": later_ends,
    }


def durations(incidents: list[Played]) -> dict[str, dict[str, Any]]:
    mttd: list[float] = []
    mtta: list[float] = []
    mttm: list[float] = []
    mttr: list[float] = []
    review: list[float] = []
    mttm_fallbacks: dict[str, int] = {}
    mttr_fallbacks: dict[str, int] = {}
    mttd_ends: dict[str, int] = {}
    for p in incidents:
        s, clock = p.scenario, p.incident.clock
        if s.started is not None:  # no fallback for the start: a fallback would measure zero
            end = p.at(s.detected) if s.detected is not None else clock.declared_at
            mttd.append(seconds(p.at(s.started), end))
            if s.detected is None:
                mttd_ends["declared_at"] = mttd_ends.get("declared_at", 0) + 1
        ack = acknowledged(p)
        if ack is not None:
            mtta.append(seconds(clock.declared_at, ack))
        start, fact = reported_start(p)
        for moment, values, fallbacks in (
            (mitigated(p), mttm, mttm_fallbacks),
            (resolved(p), mttr, mttr_fallbacks),
        ):
            if moment is not None:
                values.append(seconds(start, moment))
                if fact != "started_at":
                    fallbacks[fact] = fallbacks.get(fact, 0) + 1
        if s.review in ("on_time", "late"):
            held, end_of_impact = clock.review_held_at, resolved(p)
            assert held is not None and end_of_impact is not None
            review.append(seconds(end_of_impact, held))
    return {
        "mttd": distribution(mttd, {}, mttd_ends),
        "mtta": distribution(mtta, {}),
        "mttm": distribution(mttm, mttm_fallbacks),
        "mttr": distribution(mttr, mttr_fallbacks),
        "time_to_review": distribution(review, {}),
    }


def count_by(keys: Iterable[str]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for key in keys:
        counted[key] = counted.get(key, 0) + 1
    return counted


def rung_of(item: PlayedItem) -> str:
    rungs = item.scenario.escalations
    return rungs[-1].value if rungs else "none"


def figures(
    group: str, incidents: list[Played], cancelled: int, items: list[PlayedItem]
) -> dict[str, Any]:
    """A group's figures: incidents declared in the window (cancelled apart), the items the
    window holds (every one here was created, and any closed, inside it)."""
    outcomes = [item.scenario.outcome for item in items]
    still_open = [item for item in items if item.scenario.outcome in ("open", "overdue")]
    overdue = [item for item in items if item.scenario.outcome == "overdue"]
    incident_escalations = sum(len(p.scenario.escalations) for p in incidents)
    item_escalations = sum(len(item.scenario.escalations) for item in items)
    rungs = [r.value for p in incidents for r in p.scenario.escalations] + [
        r.value for item in items for r in item.scenario.escalations
    ]
    reviews = [p.scenario.review for p in incidents]
    return {
        "group": group,
        "incidents": len(incidents),
        "cancelled": cancelled,
        "durations": durations(incidents),
        "reviews": {
            "on_time": reviews.count("on_time"),
            "late": reviews.count("late"),
            "overdue": reviews.count("overdue"),
            "pending": reviews.count("pending"),
        },
        "action_items": {
            "closed": sum(o in ("on_time", "extended", "late", "accepted") for o in outcomes),
            "on_time": sum(o in ("on_time", "extended") for o in outcomes),
            "extended": outcomes.count("extended"),
            "late": outcomes.count("late"),
            "accepted": outcomes.count("accepted"),
            "open": len(still_open),
            "overdue": len(overdue),
            "open_by_rung": count_by(rung_of(item) for item in still_open),
            "overdue_by_rung": count_by(rung_of(item) for item in overdue),
        },
        "escalations": {
            "incidents": incident_escalations,
            "action_items": item_escalations,
            "per_incident": round(incident_escalations / len(incidents), 3) if incidents else None,
            "per_item": round(item_escalations / len(items), 3) if items else None,
            "by_rung": dict(sorted(count_by(rungs).items())),
        },
        # The golden policy looks for no repeats (see golden_policy).
        "repeats": {"repeats": 0, "rate": 0.0 if incidents else None},
    }


def expected_groups(
    played: list[Played],
    incident_groups: Callable[[Played], list[str]],
    item_group: Callable[[Played, PlayedItem], str],
) -> dict[str, dict[str, Any]]:
    names = sorted(
        {g for p in played for g in incident_groups(p)}
        | {item_group(p, i) for p in played for i in p.items}
    )
    groups = {}
    for name in names:
        members = [p for p in played if name in incident_groups(p)]
        groups[name] = figures(
            name,
            [p for p in members if not p.scenario.cancel],
            sum(p.scenario.cancel for p in members),
            [i for p in played for i in p.items if item_group(p, i) == name],
        )
    return groups


def expected_total(played: list[Played]) -> dict[str, Any]:
    return figures(
        "all",
        [p for p in played if not p.scenario.cancel],
        sum(p.scenario.cancel for p in played),
        [item for p in played for item in p.items],
    )


def assert_same(actual: Any, expected: Any, path: str = "", *, tolerance: float) -> None:
    """Equal; durations (seconds as floats) within `tolerance`."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        assert set(actual) == set(expected), f"{path}: {sorted(actual)} != {sorted(expected)}"
        for key in expected:
            assert_same(actual[key], expected[key], f"{path}.{key}", tolerance=tolerance)
    elif isinstance(expected, float) and not isinstance(actual, bool):
        assert actual == pytest.approx(expected, abs=tolerance), f"{path}: {actual} != {expected}"
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def assert_golden(
    insights: Insights, played: list[Played], now: datetime, *, tolerance: float
) -> None:
    report = insights.metrics(since=WINDOW, now=now)
    assert report.until == now and report.since == now - WINDOW
    assert report.groups == []
    assert_same(report.total.model_dump(), expected_total(played), "total", tolerance=tolerance)

    by_team = insights.metrics(since=WINDOW, by=Grouping.TEAM, now=now)
    assert_same(
        groups_of(by_team),
        expected_groups(
            played,
            lambda p: list(p.scenario.teams) or [NO_TEAM],
            lambda p, item: item.scenario.team,
        ),
        "team",
        tolerance=tolerance,
    )
    assert_same(
        by_team.total.model_dump(), expected_total(played), "team total", tolerance=tolerance
    )

    by_severity = insights.metrics(since=WINDOW, by=Grouping.SEVERITY, now=now)
    assert_same(
        groups_of(by_severity),
        expected_groups(
            played, lambda p: [p.scenario.severity.value], lambda p, _: p.scenario.severity.value
        ),
        "severity",
        tolerance=tolerance,
    )


def groups_of(report: MetricsReport) -> dict[str, dict[str, Any]]:
    return {group.group: group.model_dump() for group in report.groups}


def assert_items_as_of(insights: Insights, played: list[Played], moment: datetime) -> None:
    """A window ending after every item was created and before any was closed or accepted:
    each is open at its end, and none is closed in it."""
    items = [item for p in played for item in p.items]
    for item in items:
        assert item.state is not None
        assert item.state.created_at <= moment
        closed = item.state.verification or item.state.acceptance
        assert closed is None or closed.at > moment, "closed before the checkpoint"
    report = insights.metrics(since=WINDOW, now=moment).total.action_items
    assert (report.closed, report.open) == (0, len(items))
    assert report.open_by_rung == count_by(rung_of(item) for item in items)


def check_the_set(played: list[Played]) -> None:
    """The set holds what the issue asks for."""
    scenarios = [p.scenario for p in played]
    fates = {item.scenario.fate for p in played for item in p.items}
    outcomes = {item.scenario.outcome for p in played for item in p.items}
    assert len(played) >= 20
    assert any(s.cancel for s in scenarios)
    assert any(p.incident.state is IncidentState.DECLARED for p in played)  # still open
    assert any(s.started is None for s in scenarios)  # fallbacks
    assert any(s.continue_as_new for s in scenarios)
    assert {"extend-done", "extend-open", "accept", "reopen", "reopen-done"} <= fates
    assert {"overdue", "late", "accepted", "extended", "on_time", "open"} <= outcomes
    assert {"on_time", "late", "overdue", "pending"} <= {s.review for s in scenarios}
    # An item with no due date of its own is due the policy's time after the review.
    assert any(
        item.state is not None
        and p.incident.clock.review_held_at is not None
        and item.state.due_at - p.incident.clock.review_held_at == POLICY_DUE
        for p in played
        for item in p.items
        if item.scenario.due is None
    )
    done = [i for p in played for i in p.items if i.state and i.state.state is ActionItemState.DONE]
    assert done and all(i.state and i.state.verification for i in done)


# ---- the two servers ----------------------------------------------------------------------


async def test_golden_incidents_on_the_dev_server(
    client: Client, worker: Worker, task_queue: str, settings: Settings
) -> None:
    began = time.monotonic()
    builder = GoldenBuilder(client, task_queue, WallClock())
    try:
        played = await builder.build()
        store = configured_store(settings)
        read_model = ReadModel(client, store, task_queue=task_queue)
        workflows = len(played) + sum(len(p.items) for p in played)
        # `insights check`: every workflow's facts equal its row, once the writes have landed.
        report = await eventually(
            read_model.check,
            lambda r: r.workflows == workflows and r.differences == [],
            timeout=30,
        )
        assert (report.workflows, report.rows, report.differences) == (workflows, workflows, [])

        check_the_set(played)
        check_played_as_scripted(played)
        insights = Insights(store)
        assert_golden(insights, played, await builder.clock.now(), tolerance=MILLISECOND)
        assert_items_as_of(insights, played, builder.items_created_by)
    finally:
        await builder.terminate_running()
    print(f"golden set on the dev server: {time.monotonic() - began:.1f}s")


async def test_golden_incidents_on_the_time_skipping_server(
    ts_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    began = time.monotonic()
    settings = Settings(home=tmp_path)
    task_queue = f"golden-{uuid.uuid4()}"
    async with build_worker(ts_env.client, settings, task_queue=task_queue):
        builder = GoldenBuilder(ts_env.client, task_queue, SkippingClock(ts_env))
        try:
            played = await builder.build()
            store = configured_store(settings)
            await settle(lambda: unsettled(builder, store))

            check_the_set(played)
            check_played_as_scripted(played)
            insights = Insights(store)
            # The virtual clock stamps whole milliseconds, as the store keeps them: exact.
            assert_golden(insights, played, await builder.clock.now(), tolerance=EXACT)
            assert_items_as_of(insights, played, builder.items_created_by)
        finally:
            await builder.terminate_running()
    print(f"golden set on the time-skipping server: {time.monotonic() - began:.1f}s")

"""The metrics: their definitions as data, and the figures computed from the read model's facts.

The definitions are versioned: a change to what a figure means (a field, a fallback, an
exclusion) raises DEFINITIONS_VERSION, and every figure set names the version it was computed
by, so two reports are comparable only when their versions agree.

Pure: the facts come in as rows (anything with the attributes of `IncidentRow` and `ItemRow`,
times in epoch milliseconds, as the store keeps them), and the window is given.
"""

from __future__ import annotations

import functools
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Protocol, TypeVar

from pydantic import BaseModel, Field

DEFINITIONS_VERSION = 2  # 2: repeats
T = TypeVar("T", int, float)
NO_GROUP = "(none)"
CANCELLED = "cancelled"


class Unit(StrEnum):
    SECONDS = "seconds"
    COUNT = "count"


class Grouping(StrEnum):
    SEVERITY = "severity"
    SERVICE = "service"
    TEAM = "team"


class Definition(BaseModel):
    """One metric: what it measures, from which facts, and what it leaves out."""

    name: str
    title: str
    start: list[str] = Field(
        default_factory=list, description="the start fact; when unknown, the next one (fallbacks)"
    )
    end: list[str] = Field(default_factory=list, description="the end fact, then its fallbacks")
    window: str = Field(description="the fact that places a subject in the window")
    counts: str = Field(description="what is counted, in words")
    excludes: list[str] = Field(default_factory=list)
    unit: Unit


_EXCLUDED_EVERYWHERE = "cancelled incidents (counted apart as `cancelled`)"
_STATISTICS = (
    "count, p50 and p90 (nearest rank: an observed value), and the mean (to the millisecond, "
    "halves up); times are kept to the millisecond"
)

DURATIONS: tuple[Definition, ...] = (
    Definition(
        name="mttd",
        title="time to detect",
        start=["started_at"],
        end=["detected_at", "declared_at"],
        window="declared_at",
        counts=f"detected - started, per incident: {_STATISTICS}; `end_fallbacks` counts the "
        "incidents measured to their declaration (no detection reported)",
        excludes=[
            _EXCLUDED_EVERYWHERE,
            "incidents whose start was not reported (a fallback would measure zero)",
        ],
        unit=Unit.SECONDS,
    ),
    Definition(
        name="mtta",
        title="time to acknowledge",
        start=["declared_at"],
        end=["acknowledged_at"],
        window="declared_at",
        counts=f"acknowledged - declared, per incident: {_STATISTICS}",
        excludes=[_EXCLUDED_EVERYWHERE, "incidents not acknowledged yet"],
        unit=Unit.SECONDS,
    ),
    Definition(
        name="mttm",
        title="time to mitigate",
        start=["started_at", "detected_at", "declared_at"],
        end=["mitigated_at"],
        window="declared_at",
        counts=f"mitigated - started, per incident: {_STATISTICS}; `fallbacks` counts the "
        "incidents measured from a later start",
        excludes=[_EXCLUDED_EVERYWHERE, "incidents not mitigated yet"],
        unit=Unit.SECONDS,
    ),
    Definition(
        name="mttr",
        title="time to resolve",
        start=["started_at", "detected_at", "declared_at"],
        end=["resolved_at"],
        window="declared_at",
        counts=f"resolved - started, per incident: {_STATISTICS}; `fallbacks` counts the "
        "incidents measured from a later start",
        excludes=[_EXCLUDED_EVERYWHERE, "incidents not resolved yet"],
        unit=Unit.SECONDS,
    ),
    Definition(
        name="time_to_review",
        title="time to review",
        start=["resolved_at"],
        end=["review_submitted_at"],
        window="declared_at",
        counts=f"review submitted - resolved, per incident: {_STATISTICS}",
        excludes=[_EXCLUDED_EVERYWHERE, "incidents whose review is not submitted yet"],
        unit=Unit.SECONDS,
    ),
)

COUNTS: tuple[Definition, ...] = (
    Definition(
        name="reviews",
        title="reviews against the policy's deadline",
        start=["resolved_at"],
        end=["review_submitted_at"],
        window="declared_at",
        counts="on_time: submitted on or before review_due_at (the policy's business-day "
        "deadline from resolution); late: submitted after it; overdue: not submitted and "
        "past it at the end of the window; pending: not submitted, not due yet",
        excludes=[_EXCLUDED_EVERYWHERE, "incidents not resolved yet"],
        unit=Unit.COUNT,
    ),
    Definition(
        name="action_items_closed",
        title="action items closed on time",
        end=["completed_at", "accepted_at"],
        window="completed_at or accepted_at",
        counts="closed: done or accepted in the window; on_time: done (verified, or its "
        "ticket closed where no verification is required) on or before the due date in force "
        "when it closed; of those, extended: met only a due date that was extended; late: done "
        "after it; accepted: risk accepted (won't do), never counted as on time",
        excludes=["items still open", "items of cancelled incidents"],
        unit=Unit.COUNT,
    ),
    Definition(
        name="action_items_open",
        title="open and overdue action items",
        window="open at the end of the window",
        counts="open: not done nor accepted; overdue: open and past the due date in force; "
        "both also by the rung of the item's latest escalation (`none` before any)",
        excludes=["items created after the end of the window"],
        unit=Unit.COUNT,
    ),
    Definition(
        name="escalations",
        title="escalations",
        window="declared_at (incidents), created_at (action items)",
        counts="escalations fired for the incidents and for the action items in the window, "
        "in all and by rung; per_incident and per_item are their means",
        excludes=[_EXCLUDED_EVERYWHERE],
        unit=Unit.COUNT,
    ),
)

REPEATS = Definition(
    name="repeats",
    title="repeat incidents",
    window="declared_at",
    counts="repeats: incidents that repeat an earlier one (the same service at declaration, or "
    "the same failure mode at declaration or review, declared within the policy's "
    "repeat_window before it); rate: repeats / incidents",
    excludes=[_EXCLUDED_EVERYWHERE],
    unit=Unit.COUNT,
)

DEFINITIONS: tuple[Definition, ...] = (*DURATIONS, *COUNTS, REPEATS)


class DefinitionSet(BaseModel):
    """The definitions as `metrics definitions` and GET /api/metrics/definitions give them."""

    version: int = DEFINITIONS_VERSION
    definitions: list[Definition] = Field(default_factory=lambda: list(DEFINITIONS))


class IncidentRow(Protocol):
    """An incident's facts as the store hands them to the metrics (times in epoch ms)."""

    @property
    def key(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def services(self) -> str: ...  # a JSON list
    @property
    def teams(self) -> str: ...  # a JSON list
    @property
    def started_ms(self) -> int | None: ...
    @property
    def detected_ms(self) -> int | None: ...
    @property
    def declared_ms(self) -> int: ...
    @property
    def acknowledged_ms(self) -> int | None: ...
    @property
    def mitigated_ms(self) -> int | None: ...
    @property
    def resolved_ms(self) -> int | None: ...
    @property
    def review_submitted_ms(self) -> int | None: ...
    @property
    def review_due_ms(self) -> int | None: ...
    @property
    def escalations(self) -> int: ...
    @property
    def escalations_by_rung(self) -> str: ...  # a JSON object
    @property
    def repeat_of(self) -> str: ...  # a JSON list of the earlier incidents' keys


class ItemTally(Protocol):
    """The action items of one group that share a rung and escalations, counted by the store
    (store/facts.py `item_tallies`, which applies the definitions' rules in SQL: tens of
    thousands of items become a few hundred tallies)."""

    @property
    def group(self) -> str: ...  # a team or a severity; for services, a JSON list
    @property
    def rung(self) -> str | None: ...  # of the latest escalation
    @property
    def escalations_by_rung(self) -> str: ...  # a JSON object
    @property
    def closed(self) -> int: ...
    @property
    def on_time(self) -> int: ...
    @property
    def extended(self) -> int: ...
    @property
    def late(self) -> int: ...
    @property
    def accepted(self) -> int: ...
    @property
    def open(self) -> int: ...
    @property
    def overdue(self) -> int: ...
    @property
    def created(self) -> int: ...  # in the window
    @property
    def created_escalations(self) -> int: ...  # of those created in the window


# ---- the figures ------------------------------------------------------------------------------


class Distribution(BaseModel):
    count: int = 0
    p50: float | None = Field(default=None, description="seconds")
    p90: float | None = Field(default=None, description="seconds")
    mean: float | None = Field(default=None, description="seconds")
    fallbacks: dict[str, int] = Field(
        default_factory=dict, description="measured from a later start: how many, by its fact"
    )
    end_fallbacks: dict[str, int] = Field(
        default_factory=dict, description="measured to a later end: how many, by its fact"
    )


class ReviewFigures(BaseModel):
    on_time: int = 0
    late: int = 0
    overdue: int = 0
    pending: int = 0


class ActionItemFigures(BaseModel):
    closed: int = 0
    on_time: int = 0
    extended: int = Field(default=0, description="of on_time: met only an extended due date")
    late: int = 0
    accepted: int = 0
    open: int = 0
    overdue: int = 0
    open_by_rung: dict[str, int] = Field(default_factory=dict)
    overdue_by_rung: dict[str, int] = Field(default_factory=dict)


class EscalationFigures(BaseModel):
    incidents: int = Field(default=0, description="escalations of the incidents in the window")
    action_items: int = Field(default=0, description="escalations of the items in the window")
    per_incident: float | None = None
    per_item: float | None = None
    by_rung: dict[str, int] = Field(default_factory=dict)


class RepeatFigures(BaseModel):
    repeats: int = Field(default=0, description="incidents that repeat an earlier one")
    rate: float | None = Field(default=None, description="repeats / incidents")


class GroupFigures(BaseModel):
    group: str
    incidents: int = Field(default=0, description="declared in the window, not cancelled")
    cancelled: int = 0
    durations: dict[str, Distribution] = Field(default_factory=dict)
    reviews: ReviewFigures = Field(default_factory=ReviewFigures)
    action_items: ActionItemFigures = Field(default_factory=ActionItemFigures)
    escalations: EscalationFigures = Field(default_factory=EscalationFigures)
    repeats: RepeatFigures = Field(default_factory=RepeatFigures)


class MetricsReport(BaseModel):
    definitions_version: int = DEFINITIONS_VERSION
    since: datetime
    until: datetime
    by: Grouping | None = None
    total: GroupFigures
    groups: list[GroupFigures] = Field(default_factory=list)


def nearest_rank(ordered: Sequence[T], percent: int) -> T:
    """The smallest value with at least `percent`% of the values at or below it."""
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def distribution(
    milliseconds: list[int], fallbacks: dict[str, int], end_fallbacks: dict[str, int] | None = None
) -> Distribution:
    """The statistics of whole-millisecond durations, in seconds; the mean is rounded to the
    millisecond, halves up (in integers, so it never depends on the order of a float sum)."""
    ends = end_fallbacks or {}
    if not milliseconds:
        return Distribution(fallbacks=fallbacks, end_fallbacks=ends)
    ordered = sorted(milliseconds)
    count = len(ordered)
    mean_ms = (2 * sum(ordered) + count) // (2 * count)
    return Distribution(
        count=count,
        p50=nearest_rank(ordered, 50) / 1000,
        p90=nearest_rank(ordered, 90) / 1000,
        mean=mean_ms / 1000,
        fallbacks=fallbacks,
        end_fallbacks=ends,
    )


def _columns(facts: list[str]) -> list[tuple[str, str]]:
    """(fact, the row's column for it: epoch ms) of each fact, in order."""
    return [(fact, fact.removesuffix("_at") + "_ms") for fact in facts]


def _first_known(row: object, columns: list[tuple[str, str]]) -> tuple[int | None, str | None]:
    for fact, column in columns:
        value = getattr(row, column)
        if value is not None:
            return value, fact
    return None, None


class _Group:
    """The facts of one group, gathered before its figures are computed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.incidents: list[IncidentRow] = []
        self.cancelled = 0
        self.items: list[ItemTally] = []

    def figures(self, until_ms: int) -> GroupFigures:
        return GroupFigures(
            group=self.name,
            incidents=len(self.incidents),
            cancelled=self.cancelled,
            durations={d.name: _duration(d, self.incidents) for d in DURATIONS},
            reviews=_reviews(self.incidents, until_ms),
            action_items=_action_items(self.items),
            escalations=_escalations(self.incidents, self.items),
            repeats=_repeats(self.incidents),
        )


def _duration(definition: Definition, incidents: list[IncidentRow]) -> Distribution:
    milliseconds: list[int] = []
    fallbacks: dict[str, int] = defaultdict(int)
    end_fallbacks: dict[str, int] = defaultdict(int)
    starts, ends = _columns(definition.start), _columns(definition.end)
    for row in incidents:
        start, start_fact = _first_known(row, starts)
        end, end_fact = _first_known(row, ends)
        if start is None or end is None or end < start:
            continue
        milliseconds.append(end - start)
        if start_fact != definition.start[0]:
            fallbacks[str(start_fact)] += 1
        if end_fact != definition.end[0]:
            end_fallbacks[str(end_fact)] += 1
    return distribution(milliseconds, dict(fallbacks), dict(end_fallbacks))


def _reviews(incidents: list[IncidentRow], until_ms: int) -> ReviewFigures:
    figures = ReviewFigures()
    for row in incidents:
        due = row.review_due_ms
        if due is None:
            continue
        submitted = row.review_submitted_ms
        if submitted is not None:
            if submitted <= due:
                figures.on_time += 1
            else:
                figures.late += 1
        elif due < until_ms:
            figures.overdue += 1
        else:
            figures.pending += 1
    return figures


def _action_items(tallies: list[ItemTally]) -> ActionItemFigures:
    # Plain counters, the model built once at the end: setting a model's field in the loop
    # costs a validation hook per tally.
    closed = on_time = extended = late = accepted = opened = overdue = 0
    open_by_rung: dict[str, int] = {}
    overdue_by_rung: dict[str, int] = {}
    for tally in tallies:
        closed += tally.closed
        on_time += tally.on_time
        extended += tally.extended
        late += tally.late
        accepted += tally.accepted
        rung = tally.rung or "none"
        if tally.open:
            opened += tally.open
            open_by_rung[rung] = open_by_rung.get(rung, 0) + tally.open
        if tally.overdue:
            overdue += tally.overdue
            overdue_by_rung[rung] = overdue_by_rung.get(rung, 0) + tally.overdue
    return ActionItemFigures(
        closed=closed,
        on_time=on_time,
        extended=extended,
        late=late,
        accepted=accepted,
        open=opened,
        overdue=overdue,
        open_by_rung=dict(sorted(open_by_rung.items())),
        overdue_by_rung=dict(sorted(overdue_by_rung.items())),
    )


def _escalations(incidents: list[IncidentRow], tallies: list[ItemTally]) -> EscalationFigures:
    incident_count = item_count = created = 0
    by_rung: dict[str, int] = defaultdict(int)
    for incident in incidents:
        incident_count += incident.escalations
        for rung, count in _rungs(incident.escalations_by_rung):
            by_rung[rung] += count
    for tally in tallies:
        created += tally.created
        item_count += tally.created_escalations
        for rung, count in _rungs(tally.escalations_by_rung):
            by_rung[rung] += count * tally.created
    figures = EscalationFigures(incidents=incident_count, action_items=item_count)
    if incidents:
        figures.per_incident = round(incident_count / len(incidents), 3)
    if created:
        figures.per_item = round(item_count / created, 3)
    figures.by_rung = dict(sorted(by_rung.items()))
    return figures


def _repeats(incidents: list[IncidentRow]) -> RepeatFigures:
    repeats = sum(1 for row in incidents if row.repeat_of != "[]")
    rate = round(repeats / len(incidents), 3) if incidents else None
    return RepeatFigures(repeats=repeats, rate=rate)


@functools.lru_cache(maxsize=4096)
def _rungs(text: str) -> tuple[tuple[str, int], ...]:
    """A row's escalations by rung (a JSON object): rows share a few texts, each parsed once."""
    return tuple(json.loads(text).items())


def _incident_groups(row: IncidentRow, by: Grouping) -> list[str]:
    if by is Grouping.SEVERITY:
        return [row.severity]
    names: list[str] = json.loads(row.services if by is Grouping.SERVICE else row.teams)
    return names or [NO_GROUP]


def compute(
    incidents: Iterable[IncidentRow],
    items: Iterable[ItemTally],
    *,
    since: datetime,
    until: datetime,
    by: Grouping | None = None,
) -> MetricsReport:
    """The figures of the incidents declared in [since, until], and of the action items the
    store tallied for the same window and grouping."""
    since_ms, until_ms = _ms(since), _ms(until)
    total = _Group("all")
    groups: dict[str, _Group] = {}

    def group(name: str) -> _Group:
        if name not in groups:
            groups[name] = _Group(name)
        return groups[name]

    for row in incidents:
        if not since_ms <= row.declared_ms <= until_ms:
            continue
        names = _incident_groups(row, by) if by is not None else []
        targets = [total, *(group(name) for name in names)]
        for target in targets:
            if row.state == CANCELLED:
                target.cancelled += 1
            else:
                target.incidents.append(row)
    for tally in items:
        total.items.append(tally)
        for name in _tally_groups(tally, by):
            group(name).items.append(tally)
    return MetricsReport(
        since=since,
        until=until,
        by=by,
        total=total.figures(until_ms),
        groups=[groups[name].figures(until_ms) for name in sorted(groups)],
    )


def _tally_groups(tally: ItemTally, by: Grouping | None) -> list[str]:
    if by is None:
        return []
    if by is Grouping.SERVICE:
        return list(_services(tally.group)) or [NO_GROUP]
    return [tally.group]


@functools.lru_cache(maxsize=4096)
def _services(text: str) -> tuple[str, ...]:
    """An incident's services (a JSON list): tallies share a few texts, each parsed once."""
    return tuple(json.loads(text))


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)

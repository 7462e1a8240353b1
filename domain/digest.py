"""The weekly digest's content: a pure function of the read model's facts and one slot.

The digest of slot S (a send time, aware in the digest's zone) covers **the week** before it,
[S - 1 week, S), for what happened (incidents declared, reviews held, risks accepted, repeats),
**the week ahead**, [S, S + 1 week), for what falls due (reviews, action items), and the state
**at S** for what is still open or overdue. Everything is read from the facts' times, never
from their current state, so the digest of a past week reads the same whenever it is computed;
the one exception is an item's due date, which is the one in force now (the facts keep no
history of extensions), so an extension granted after S moves the item in S's digest too.
The comparison figures come from domain/metrics.py (the same definitions as `metrics`): the
week, against the four weeks before it.

Every list is capped (LISTED) and says how many it left out, so a digest stays a small payload.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from domain.functions import ReviewFunction
from domain.limits import KEY_CHARS, Key, Name, Title
from domain.metrics import MetricsReport
from domain.severity import Severity

LISTED = 100  # entries of one list; `more` counts the rest
Row = Mapping[str, Any]  # a fact row as the store keeps it (store/facts.py *_columns)


class DigestIncident(BaseModel):
    key: Key
    title: Title
    severity: Severity
    state: Name
    declared_at: datetime


class SeveritySection(BaseModel):
    severity: Severity
    declared: int = Field(description="declared in the week (cancelled ones included)")
    open: int = Field(description="not closed nor cancelled at the slot")
    incidents: list[DigestIncident] = Field(default_factory=list, max_length=LISTED)
    more: int = 0


class DigestReview(BaseModel):
    key: Key
    title: Title
    severity: Severity
    due_at: datetime | None
    held_at: datetime | None = None
    missing_functions: list[ReviewFunction] = Field(default_factory=list)
    waived: bool = False


class ReviewSection(BaseModel):
    due: list[DigestReview] = Field(default_factory=list, max_length=LISTED)
    overdue: list[DigestReview] = Field(default_factory=list, max_length=LISTED)
    held: list[DigestReview] = Field(default_factory=list, max_length=LISTED)
    more: int = 0


class DigestItem(BaseModel):
    id: Key
    title: Title
    owning_team: Name
    owner: Name | None
    due_at: datetime
    rung: Name | None = Field(description="the rung of its latest escalation")


class TeamOverdue(BaseModel):
    team: Name
    items: list[DigestItem] = Field(default_factory=list, max_length=LISTED)
    more: int = 0


class ItemSection(BaseModel):
    due: list[DigestItem] = Field(default_factory=list, max_length=LISTED)
    due_more: int = 0
    overdue: int = 0
    overdue_by_team: list[TeamOverdue] = Field(default_factory=list, max_length=LISTED)


class Figures(BaseModel):
    """One window's figures, by the metrics' definitions."""

    closed: int
    on_time: int
    on_time_rate: float | None = Field(description="on time / closed, rounded to 3 places")
    reviews: int = Field(description="reviews submitted (time to review's count)")
    time_to_review_p50: float | None = Field(description="seconds")
    time_to_review_mean: float | None = Field(description="seconds")


class Trend(BaseModel):
    definitions_version: int
    week: Figures
    previous_four_weeks: Figures


class Repeat(BaseModel):
    key: Key
    title: Title
    repeat_of: list[Key]


class RepeatSection(BaseModel):
    count: int
    incidents: list[Repeat] = Field(default_factory=list, max_length=LISTED)


class Acceptance(BaseModel):
    id: Key
    title: Title
    owning_team: Name
    approver: Name | None
    accepted_at: datetime


class Digest(BaseModel):
    task_queue: str = Field(max_length=KEY_CHARS)
    timezone: str = Field(max_length=64)
    slot: datetime
    week_start: datetime
    week_end: datetime = Field(description="the slot: the week is [week_start, week_end)")
    ahead_end: datetime = Field(description="the week ahead is [slot, ahead_end)")
    incidents: list[SeveritySection]
    reviews: ReviewSection
    action_items: ItemSection
    trend: Trend
    repeats: RepeatSection
    risk_acceptances: list[Acceptance] = Field(default_factory=list, max_length=LISTED)
    risk_acceptances_more: int = 0


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def _at(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def _before(ms: int | None, bound: int) -> bool:
    return ms is not None and ms < bound


def _within(ms: int | None, start: int, end: int) -> bool:
    return ms is not None and start <= ms < end


def _capped(entries: list[Any]) -> tuple[list[Any], int]:
    return entries[:LISTED], max(0, len(entries) - LISTED)


def figures(report: MetricsReport) -> Figures:
    items = report.total.action_items
    review = report.total.durations["time_to_review"]
    return Figures(
        closed=items.closed,
        on_time=items.on_time,
        on_time_rate=round(items.on_time / items.closed, 3) if items.closed else None,
        reviews=review.count,
        time_to_review_p50=review.p50,
        time_to_review_mean=review.mean,
    )


def _incident(row: Row) -> DigestIncident:
    return DigestIncident(
        key=row["key"],
        title=row["title"],
        severity=Severity(row["severity"]),
        state=row["state"],
        declared_at=_at(row["declared_ms"]),
    )


def _review(row: Row) -> DigestReview:
    held = row["review_submitted_ms"]
    return DigestReview(
        key=row["key"],
        title=row["title"],
        severity=Severity(row["severity"]),
        due_at=_at(row["review_due_ms"]),
        held_at=_at(held),
        missing_functions=json.loads(row["missing_functions"]) if held is not None else [],
        waived=bool(row["missing_functions_waived"]) if held is not None else False,
    )


def _item(row: Row) -> DigestItem:
    return DigestItem(
        id=row["id"],
        title=row["title"],
        owning_team=row["owning_team"],
        owner=row["owner"],
        due_at=_at(row["due_ms"]),
        rung=row["rung"],
    )


def _open_at(row: Row, at: int) -> bool:
    """An incident declared before `at` and neither closed nor cancelled by then."""
    return (
        _before(row["declared_ms"], at)
        and not _before(row["closed_ms"], at + 1)
        and not _before(row["cancelled_ms"], at + 1)
    )


def _item_open_at(row: Row, at: int) -> bool:
    return (
        row["created_ms"] <= at
        and not _before(row["completed_ms"], at + 1)
        and not _before(row["accepted_ms"], at + 1)
    )


def build(
    incidents: Iterable[Row],
    items: Iterable[Row],
    *,
    task_queue: str,
    timezone: str,
    week_start: datetime,
    slot: datetime,
    ahead_end: datetime,
    week: MetricsReport,
    previous_four_weeks: MetricsReport,
) -> Digest:
    start, at, ahead = _ms(week_start), _ms(slot), _ms(ahead_end)
    incidents = sorted(incidents, key=lambda row: (row["declared_ms"], row["key"]))
    items = sorted(items, key=lambda row: (row["due_ms"], row["id"]))

    sections = []
    for severity in Severity:
        rows = [r for r in incidents if r["severity"] == severity.value]
        declared = [r for r in rows if _within(r["declared_ms"], start, at)]
        still_open = [r for r in rows if _open_at(r, at)]
        listed = [
            _incident(r) for r in rows if _within(r["declared_ms"], start, at) or _open_at(r, at)
        ]
        shown, more = _capped(listed)
        sections.append(
            SeveritySection(
                severity=severity,
                declared=len(declared),
                open=len(still_open),
                incidents=shown,
                more=more,
            )
        )

    def unheld(row: Row) -> bool:
        return not _before(row["review_submitted_ms"], at) and not _before(
            row["cancelled_ms"], at + 1
        )

    due = [_review(r) for r in incidents if _within(r["review_due_ms"], at, ahead) and unheld(r)]
    overdue = [_review(r) for r in incidents if _before(r["review_due_ms"], at) and unheld(r)]
    held = [_review(r) for r in incidents if _within(r["review_submitted_ms"], start, at)]
    due_shown, due_more = _capped(due)
    overdue_shown, overdue_more = _capped(overdue)
    held_shown, held_more = _capped(held)
    reviews = ReviewSection(
        due=due_shown,
        overdue=overdue_shown,
        held=held_shown,
        more=due_more + overdue_more + held_more,
    )

    open_items = [r for r in items if _item_open_at(r, at)]
    items_due, items_due_more = _capped(
        [_item(r) for r in open_items if _within(r["due_ms"], at, ahead)]
    )
    late = [r for r in open_items if r["due_ms"] < at]
    by_team: dict[str, list[DigestItem]] = {}
    for row in late:
        by_team.setdefault(row["owning_team"], []).append(_item(row))
    teams = []
    for team in sorted(by_team):
        shown, more = _capped(by_team[team])
        teams.append(TeamOverdue(team=team, items=shown, more=more))

    repeats = [
        Repeat(key=r["key"], title=r["title"], repeat_of=json.loads(r["repeat_of"]))
        for r in incidents
        if _within(r["declared_ms"], start, at) and json.loads(r["repeat_of"])
    ]
    accepted = sorted(
        (r for r in items if _within(r["accepted_ms"], start, at)),
        key=lambda row: (row["accepted_ms"], row["id"]),
    )
    acceptances, acceptances_more = _capped(
        [
            Acceptance(
                id=r["id"],
                title=r["title"],
                owning_team=r["owning_team"],
                approver=r["approver"],
                accepted_at=_at(r["accepted_ms"]),
            )
            for r in accepted
        ]
    )
    return Digest(
        task_queue=task_queue,
        timezone=timezone,
        slot=slot,
        week_start=week_start,
        week_end=slot,
        ahead_end=ahead_end,
        incidents=sections,
        reviews=reviews,
        action_items=ItemSection(
            due=items_due,
            due_more=items_due_more,
            overdue=len(late),
            overdue_by_team=teams[:LISTED],
        ),
        trend=Trend(
            definitions_version=week.definitions_version,
            week=figures(week),
            previous_four_weeks=figures(previous_four_weeks),
        ),
        repeats=RepeatSection(count=len(repeats), incidents=repeats[:LISTED]),
        risk_acceptances=acceptances,
        risk_acceptances_more=acceptances_more,
    )

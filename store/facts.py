"""The insights read model's SQL: record facts (a newer revision replaces an older one, the same
revision rewrites identical values, an older one changes nothing), and read them back for the
metrics, the Prometheus gauges and `insights check`."""

from __future__ import annotations

import json
from collections import namedtuple
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Result, and_, case, delete, func, literal, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from domain.action_item import ActionItemState
from domain.facts import ActionItemFacts, IncidentFacts
from domain.incident import IncidentState
from domain.metrics import Grouping
from store.database import Store
from store.schema import ActionItemFactRow, IncidentFactRow

# When a row was written: not a fact, and not something a workflow knows.
_BOOKKEEPING = frozenset({"recorded_at"})
FINAL_INCIDENT_STATES = tuple(state.value for state in IncidentState if state.is_final)
FINAL_ITEM_STATES = tuple(state.value for state in ActionItemState if state.is_final)


def epoch_ms(moment: datetime | None) -> int | None:
    return None if moment is None else round(moment.timestamp() * 1000)


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def incident_columns(facts: IncidentFacts) -> dict[str, Any]:
    """The row that stores `facts` (bookkeeping aside)."""
    return {
        "key": facts.key,
        "title": facts.title,
        "severity": facts.severity.value,
        "state": facts.state.value,
        "services": _json(facts.services),
        "teams": _json(facts.teams),
        "failure_modes": _json(facts.failure_modes),
        "repeat_of": _json(facts.repeat_of),
        "started_ms": epoch_ms(facts.started_at),
        "detected_ms": epoch_ms(facts.detected_at),
        "declared_ms": epoch_ms(facts.declared_at),
        "acknowledged_ms": epoch_ms(facts.acknowledged_at),
        "mitigated_ms": epoch_ms(facts.mitigated_at),
        "resolved_ms": epoch_ms(facts.resolved_at),
        "review_submitted_ms": epoch_ms(facts.review_submitted_at),
        "review_due_ms": epoch_ms(facts.review_due_at),
        "missing_functions": _json([f.value for f in facts.missing_functions]),
        "missing_functions_waived": facts.missing_functions_waived,
        "closed_ms": epoch_ms(facts.closed_at),
        "cancelled_ms": epoch_ms(facts.cancelled_at),
        "escalations": facts.escalations,
        "escalations_by_rung": _json({r.value: n for r, n in facts.escalations_by_rung.items()}),
        "action_items": facts.action_items,
    }


def action_item_columns(facts: ActionItemFacts) -> dict[str, Any]:
    return {
        "id": facts.id,
        "incident_key": facts.incident_key,
        "number": facts.number,
        "title": facts.title,
        "owning_team": facts.owning_team,
        "kind": facts.kind.value,
        "severity": facts.severity.value,
        "state": facts.state.value,
        "target": facts.target,
        "created_ms": epoch_ms(facts.created_at),
        "first_due_ms": epoch_ms(facts.first_due_at),
        "due_ms": epoch_ms(facts.due_at),
        "extensions": facts.extensions,
        "completed_ms": epoch_ms(facts.completed_at),
        "accepted_ms": epoch_ms(facts.accepted_at),
        "reopened": facts.reopened,
        "escalations": facts.escalations,
        "escalations_by_rung": _json({r.value: n for r, n in facts.escalations_by_rung.items()}),
        "rung": facts.rung.value if facts.rung is not None else None,
        "owner": facts.owner,
        "approver": facts.approver,
    }


def stored_columns(row: IncidentFactRow | ActionItemFactRow) -> dict[str, Any]:
    """A stored row's facts and revision, in the form `incident_columns` and
    `action_item_columns` give."""
    return {
        column.key: getattr(row, column.key)
        for column in row.__table__.columns
        if column.key not in _BOOKKEEPING
    }


def _plain(result: Result[Any]) -> list[Any]:
    """The result's rows as named tuples with the same fields: the metrics read every field of
    tens of thousands of rows, and a named tuple's field is many times faster to read than a
    SQLAlchemy Row's attribute."""
    record = namedtuple("Measured", list(result.keys()))  # type: ignore[misc]
    return [record._make(row) for row in result]


class FactsRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    # ---- writes ------------------------------------------------------------------------------

    def record_incident(self, facts: IncidentFacts, *, at: datetime) -> bool:
        """Keep `facts` unless a newer revision is stored; whether the row was written."""
        return self._upsert(IncidentFactRow, "key", incident_columns(facts), facts.revision, at)

    def record_action_item(self, facts: ActionItemFacts, *, at: datetime) -> bool:
        return self._upsert(ActionItemFactRow, "id", action_item_columns(facts), facts.revision, at)

    def _upsert(
        self,
        table: type[IncidentFactRow] | type[ActionItemFactRow],
        key: str,
        columns: dict[str, Any],
        revision: int,
        at: datetime,
    ) -> bool:
        values = {**columns, "revision": revision, "recorded_at": at}
        insert: Any = (
            postgresql_insert(table)
            if self._store.dialect == "postgresql"
            else sqlite_insert(table)
        )
        statement = insert.values(**values)
        changed = {name: statement.excluded[name] for name in values if name != key}
        statement = statement.on_conflict_do_update(
            index_elements=[key],
            set_=changed,
            # The same revision again (a retry, a rebuild) writes the same facts; an older one
            # (a late write) must not replace a newer one.
            where=table.revision <= statement.excluded.revision,
        )
        # A row comes back only when the insert or the update happened (rowcount would not
        # say so on every driver).
        with self._store.writing() as session:
            return session.execute(statement.returning(table.revision)).first() is not None

    def forget_incident(self, key: str) -> None:
        """Drop an incident's facts and its items' (an administrator's repair, and the test
        that proves `insights check` notices a missing row)."""
        with self._store.writing() as session:
            session.execute(delete(ActionItemFactRow).where(ActionItemFactRow.incident_key == key))
            session.execute(delete(IncidentFactRow).where(IncidentFactRow.key == key))

    # ---- reads -------------------------------------------------------------------------------

    def incidents(self, keys: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
        """Stored incident facts by key (all of them, or those of `keys`)."""
        with self._store.reading() as session:
            query = select(IncidentFactRow)
            if keys is not None:
                query = query.where(IncidentFactRow.key.in_(keys))
            return {row.key: stored_columns(row) for row in session.scalars(query)}

    def action_items(self, ids: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
        with self._store.reading() as session:
            query = select(ActionItemFactRow)
            if ids is not None:
                query = query.where(ActionItemFactRow.id.in_(ids))
            return {row.id: stored_columns(row) for row in session.scalars(query)}

    def measured_incidents(self, since_ms: int, until_ms: int) -> Sequence[Any]:
        """The columns the metrics read, of the incidents declared in the window."""
        table = IncidentFactRow
        query = select(
            table.key,
            table.severity,
            table.state,
            table.services,
            table.teams,
            table.started_ms,
            table.detected_ms,
            table.declared_ms,
            table.acknowledged_ms,
            table.mitigated_ms,
            table.resolved_ms,
            table.review_submitted_ms,
            table.review_due_ms,
            table.escalations,
            table.escalations_by_rung,
            table.repeat_of,
        ).where(table.declared_ms.between(since_ms, until_ms))
        with self._store.reading() as session:
            return _plain(session.execute(query))

    def declared_between(self, since_ms: int, until_ms: int) -> Sequence[Any]:
        """What a look for repeats reads of the incidents declared in [since, until) and not
        cancelled, latest first (services and failure modes as JSON text)."""
        table = IncidentFactRow
        query = (
            select(
                table.key,
                table.title,
                table.severity,
                table.declared_ms,
                table.services,
                table.failure_modes,
                table.action_items,
            )
            .where(
                table.declared_ms >= since_ms,
                table.declared_ms < until_ms,
                table.state != IncidentState.CANCELLED.value,  # declared in error: no failure
            )
            .order_by(table.declared_ms.desc(), table.key)
        )
        with self._store.reading() as session:
            return _plain(session.execute(query))

    def open_items_of(self, incident_keys: Sequence[str]) -> Sequence[Any]:
        """The action items of these incidents that are not done nor accepted, by number."""
        table = ActionItemFactRow
        query = (
            select(
                table.id,
                table.incident_key,
                table.number,
                table.title,
                table.owning_team,
                table.state,
                table.due_ms,
                table.rung,
            )
            .where(table.incident_key.in_(incident_keys), table.state.not_in(FINAL_ITEM_STATES))
            .order_by(table.incident_key, table.number)
        )
        with self._store.reading() as session:
            return _plain(session.execute(query))

    def item_tallies(self, since_ms: int, until_ms: int, by: Grouping | None) -> Sequence[Any]:
        """The action items counted by the definitions' rules (domain/metrics.py COUNTS), per
        group of `by`, rung of the latest escalation and escalations by rung: the rows are
        domain.metrics.ItemTally."""
        item, incident = ActionItemFactRow, IncidentFactRow

        def within(column: Any) -> Any:
            return and_(column >= since_ms, column <= until_ms)

        def count(condition: Any) -> Any:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        closed_ms = func.coalesce(item.completed_ms, item.accepted_ms)
        closed = within(closed_ms)
        done = and_(closed, item.accepted_ms.is_(None))
        on_time = and_(done, item.completed_ms <= item.due_ms)
        # Open at the end of the window: not closed yet, or closed only after it ended.
        still_open = or_(
            and_(closed_ms.is_(None), item.state.not_in(FINAL_ITEM_STATES)), closed_ms > until_ms
        )
        created = within(item.created_ms)
        group: Any = {
            None: literal("all"),
            Grouping.TEAM: item.owning_team,
            Grouping.SEVERITY: item.severity,
            Grouping.SERVICE: func.coalesce(incident.services, "[]"),
        }[by]
        query = (
            select(
                group.label("group"),
                item.rung,
                item.escalations_by_rung,
                count(closed).label("closed"),
                count(on_time).label("on_time"),
                # Only an item that missed the date the review set met an extended one alone.
                count(
                    and_(on_time, item.extensions > 0, item.completed_ms > item.first_due_ms)
                ).label("extended"),
                count(and_(done, item.completed_ms > item.due_ms)).label("late"),
                count(and_(closed, item.accepted_ms.is_not(None))).label("accepted"),
                count(still_open).label("open"),
                count(and_(still_open, item.due_ms < until_ms)).label("overdue"),
                count(created).label("created"),
                func.coalesce(func.sum(case((created, item.escalations), else_=0)), 0).label(
                    "created_escalations"
                ),
            )
            # Every figure counts items that existed by the end of the window.
            .where(item.created_ms <= until_ms)
            .group_by(group, item.rung, item.escalations_by_rung)
        )
        if by is Grouping.SERVICE:
            query = query.outerjoin(incident, incident.key == item.incident_key)
        with self._store.reading() as session:
            return _plain(session.execute(query))

    # ---- what Prometheus shows ---------------------------------------------------------------

    def open_incidents(self) -> list[tuple[str, str, int]]:
        """(severity, state, count) of the incidents not closed nor cancelled."""
        table = IncidentFactRow
        query = (
            select(table.severity, table.state, func.count())
            .where(table.state.not_in(FINAL_INCIDENT_STATES))
            .group_by(table.severity, table.state)
        )
        with self._store.reading() as session:
            return [(s, st, n) for s, st, n in session.execute(query)]

    def open_items(self, now_ms: int) -> list[tuple[str, int, int]]:
        """(team, open, overdue) of the action items not done nor accepted."""
        table = ActionItemFactRow
        overdue = func.sum(case((table.due_ms < now_ms, 1), else_=0))
        query = (
            select(table.owning_team, func.count(), overdue)
            .where(table.state.not_in(FINAL_ITEM_STATES))
            .group_by(table.owning_team)
        )
        with self._store.reading() as session:
            return [(team, n, int(late or 0)) for team, n, late in session.execute(query)]

    def escalations_by_rung(self) -> dict[tuple[str, str], int]:
        """Escalations ever fired, by (subject, rung): subject is incident or action_item."""
        totals: dict[tuple[str, str], int] = {}
        with self._store.reading() as session:
            for subject, table in (
                ("incident", IncidentFactRow),
                ("action_item", ActionItemFactRow),
            ):
                rows = session.execute(
                    select(table.escalations_by_rung).where(table.escalations > 0)
                ).scalars()
                for text in rows:
                    for rung, count in json.loads(text).items():
                        totals[(subject, rung)] = totals.get((subject, rung), 0) + count
        return totals

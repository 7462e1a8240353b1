"""The store's tables, as typed SQLAlchemy declarative models.

Typed models rather than Core tables: mypy checks every column a repository reads or writes,
and Alembic compares migrations against this metadata. Repositories still write 2.0-style
`select()`/`insert()` statements, so nothing is loaded that a query does not ask for.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Constraint names that every engine accepts and migrations can refer to.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every engine (SQLite keeps none)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        # SQLite stores the text of a naive datetime; fixed-width UTC text sorts like instants.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class LocalTicketRow(Base):
    """A ticket of the local tracker; its key is LOCAL-<number>."""

    __tablename__ = "local_tickets"
    # Numbers are never reused, even after the newest ticket's row is gone (SQLite).
    __table_args__ = (
        Index("ix_local_tickets_updated_at", "updated_at"),
        {"sqlite_autoincrement": True},
    )

    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The action item's workflow id; unique, so two workers can never create two tickets for
    # one item. Null for a ticket opened by hand.
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    labels: Mapped[list[str]] = mapped_column(JSON)
    # Why a closed ticket closed: not_planned when its item's risk was accepted (else null).
    resolution: Mapped[str | None] = mapped_column(String(32))
    assignee: Mapped[str | None] = mapped_column(String(255))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LocalCommentRow(Base):
    __tablename__ = "local_ticket_comments"
    __table_args__ = (UniqueConstraint("ticket_number", "idempotency_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_number: Mapped[int] = mapped_column(
        ForeignKey("local_tickets.number", ondelete="CASCADE")
    )
    idempotency_key: Mapped[str] = mapped_column(String(255))
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class LegacyImportRow(Base):
    """An earlier release's file that has been imported: imported once, never again."""

    __tablename__ = "legacy_imports"

    source: Mapped[str] = mapped_column(String(1024), primary_key=True)
    tickets: Mapped[int] = mapped_column(Integer)
    comments: Mapped[int] = mapped_column(Integer)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiTokenRow(Base):
    """An API token: only the SHA-256 of its secret is kept (the secret is random, 256 bits,
    so a slow hash would add nothing but latency to every request)."""

    __tablename__ = "api_tokens"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    team: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# ---- the insights read model ------------------------------------------------------------------
# Times are epoch milliseconds: the metrics subtract them, and integers load far faster than
# datetimes over tens of thousands of rows. Lists and counts by rung are JSON text, which the
# metrics parse only for the groups they need.


class IncidentFactRow(Base):
    """domain.facts.IncidentFacts: one row per incident, replaced by each newer revision."""

    __tablename__ = "incident_facts"
    __table_args__ = (
        Index("ix_incident_facts_declared_ms", "declared_ms"),
        Index("ix_incident_facts_state", "state"),
    )

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    services: Mapped[str] = mapped_column(Text)
    teams: Mapped[str] = mapped_column(Text)
    failure_modes: Mapped[str] = mapped_column(Text, server_default="[]")
    repeat_of: Mapped[str] = mapped_column(Text, server_default="[]")
    started_ms: Mapped[int | None] = mapped_column(BigInteger)
    detected_ms: Mapped[int | None] = mapped_column(BigInteger)
    declared_ms: Mapped[int] = mapped_column(BigInteger)
    acknowledged_ms: Mapped[int | None] = mapped_column(BigInteger)
    mitigated_ms: Mapped[int | None] = mapped_column(BigInteger)
    resolved_ms: Mapped[int | None] = mapped_column(BigInteger)
    review_submitted_ms: Mapped[int | None] = mapped_column(BigInteger)
    review_due_ms: Mapped[int | None] = mapped_column(BigInteger)
    missing_functions: Mapped[str] = mapped_column(Text, server_default="[]")
    missing_functions_waived: Mapped[bool] = mapped_column(Boolean, server_default=false())
    closed_ms: Mapped[int | None] = mapped_column(BigInteger)
    cancelled_ms: Mapped[int | None] = mapped_column(BigInteger)
    escalations: Mapped[int] = mapped_column(Integer)
    escalations_by_rung: Mapped[str] = mapped_column(Text)
    action_items: Mapped[int] = mapped_column(Integer)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ActionItemFactRow(Base):
    """domain.facts.ActionItemFacts: one row per action item, replaced by each newer revision."""

    __tablename__ = "action_item_facts"
    __table_args__ = (
        Index("ix_action_item_facts_incident_key", "incident_key"),
        Index("ix_action_item_facts_state", "state"),
        Index("ix_action_item_facts_created_ms", "created_ms"),
    )

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    incident_key: Mapped[str] = mapped_column(String(255))
    number: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text)
    owning_team: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(255))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    first_due_ms: Mapped[int] = mapped_column(BigInteger)
    due_ms: Mapped[int] = mapped_column(BigInteger)
    extensions: Mapped[int] = mapped_column(Integer)
    completed_ms: Mapped[int | None] = mapped_column(BigInteger)
    accepted_ms: Mapped[int | None] = mapped_column(BigInteger)
    reopened: Mapped[int] = mapped_column(Integer)
    escalations: Mapped[int] = mapped_column(Integer)
    escalations_by_rung: Mapped[str] = mapped_column(Text)
    rung: Mapped[str | None] = mapped_column(String(16))
    owner: Mapped[str | None] = mapped_column(Text)
    approver: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DeploymentConfigRow(Base):
    """domain.deployment.DeploymentConfig: what each deployment's worker last published."""

    __tablename__ = "deployment_config"

    task_queue: Mapped[str] = mapped_column(String(255), primary_key=True)
    policy: Mapped[str] = mapped_column(Text)  # JSON
    routing: Mapped[str] = mapped_column(Text)  # JSON
    policy_source: Mapped[str] = mapped_column(Text)
    routing_source: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime)
    published_by: Mapped[str] = mapped_column(String(255))


class FailureModeRow(Base):
    """domain.failure_modes.FailureMode: one library entry, its fields as JSON text."""

    __tablename__ = "failure_modes"

    slug: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    entry: Mapped[str] = mapped_column(Text)  # JSON
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(255))


class DigestDeliveryRow(Base):
    """One channel's delivery of one weekly digest (store/digests.py): `sending` while a send
    may be under way, `sent` once the receiver accepted it."""

    __tablename__ = "digest_deliveries"

    task_queue: Mapped[str] = mapped_column(String(255), primary_key=True)
    delivery: Mapped[str] = mapped_column(String(255), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    slot: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[str] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

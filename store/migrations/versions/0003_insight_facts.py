"""The insights read model: one row of facts per incident and per action item.

Revision ID: 0003_insight_facts
Revises: 0002_api_tokens
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from store.schema import UTCDateTime

revision = "0003_insight_facts"
down_revision = "0002_api_tokens"
branch_labels = None
depends_on = None


def _ms(name: str, *, nullable: bool = True) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "incident_facts",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("services", sa.Text(), nullable=False),
        sa.Column("teams", sa.Text(), nullable=False),
        _ms("started_ms"),
        _ms("detected_ms"),
        _ms("declared_ms", nullable=False),
        _ms("acknowledged_ms"),
        _ms("mitigated_ms"),
        _ms("resolved_ms"),
        _ms("review_submitted_ms"),
        _ms("review_due_ms"),
        _ms("closed_ms"),
        _ms("cancelled_ms"),
        sa.Column("escalations", sa.Integer(), nullable=False),
        sa.Column("escalations_by_rung", sa.Text(), nullable=False),
        sa.Column("action_items", sa.Integer(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_incident_facts")),
    )
    op.create_index("ix_incident_facts_declared_ms", "incident_facts", ["declared_ms"])
    op.create_index("ix_incident_facts_state", "incident_facts", ["state"])
    op.create_table(
        "action_item_facts",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("incident_key", sa.String(255), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("owning_team", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        _ms("created_ms", nullable=False),
        _ms("first_due_ms", nullable=False),
        _ms("due_ms", nullable=False),
        sa.Column("extensions", sa.Integer(), nullable=False),
        _ms("completed_ms"),
        _ms("accepted_ms"),
        sa.Column("reopened", sa.Integer(), nullable=False),
        sa.Column("escalations", sa.Integer(), nullable=False),
        sa.Column("escalations_by_rung", sa.Text(), nullable=False),
        sa.Column("rung", sa.String(16), nullable=True),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_item_facts")),
    )
    op.create_index("ix_action_item_facts_incident_key", "action_item_facts", ["incident_key"])
    op.create_index("ix_action_item_facts_state", "action_item_facts", ["state"])
    op.create_index("ix_action_item_facts_created_ms", "action_item_facts", ["created_ms"])


def downgrade() -> None:
    op.drop_table("action_item_facts")
    op.drop_table("incident_facts")

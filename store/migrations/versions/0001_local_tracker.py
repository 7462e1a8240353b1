"""The local tracker's tickets and comments, and the record of imported legacy files.

Revision ID: 0001_local_tracker
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from store.schema import UTCDateTime

revision = "0001_local_tracker"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "local_tickets",
        sa.Column("number", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("assignee", sa.String(255), nullable=True),
        sa.Column("due_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_local_tickets")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_local_tickets_idempotency_key")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_local_tickets_updated_at", "local_tickets", ["updated_at"])
    op.create_table(
        "local_ticket_comments",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("ticket_number", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_local_ticket_comments")),
        sa.ForeignKeyConstraint(
            ["ticket_number"],
            ["local_tickets.number"],
            name=op.f("fk_local_ticket_comments_ticket_number_local_tickets"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "ticket_number",
            "idempotency_key",
            name=op.f("uq_local_ticket_comments_ticket_number_idempotency_key"),
        ),
    )
    op.create_table(
        "legacy_imports",
        sa.Column("source", sa.String(1024), nullable=False),
        sa.Column("tickets", sa.Integer(), nullable=False),
        sa.Column("comments", sa.Integer(), nullable=False),
        sa.Column("imported_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_legacy_imports")),
    )


def downgrade() -> None:
    op.drop_table("legacy_imports")
    op.drop_table("local_ticket_comments")
    op.drop_index("ix_local_tickets_updated_at", table_name="local_tickets")
    op.drop_table("local_tickets")

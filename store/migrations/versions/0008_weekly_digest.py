"""The weekly digest: the facts it lists (a review's missing functions, an item's owner and
approver) and the record of each digest delivery.

Revision ID: 0008_weekly_digest
Revises: 0007_incident_recurrence_facts
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from store.schema import UTCDateTime

revision = "0008_weekly_digest"
down_revision = "0007_incident_recurrence_facts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incident_facts") as table:
        table.add_column(
            sa.Column("missing_functions", sa.Text(), nullable=False, server_default="[]")
        )
        table.add_column(
            sa.Column(
                "missing_functions_waived", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
    with op.batch_alter_table("action_item_facts") as table:
        table.add_column(sa.Column("owner", sa.Text(), nullable=True))
        table.add_column(sa.Column("approver", sa.Text(), nullable=True))
    op.create_table(
        "digest_deliveries",
        sa.Column("task_queue", sa.String(255), nullable=False),
        sa.Column("delivery", sa.String(255), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("slot", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint(
            "task_queue", "delivery", "channel", name=op.f("pk_digest_deliveries")
        ),
    )


def downgrade() -> None:
    op.drop_table("digest_deliveries")
    with op.batch_alter_table("action_item_facts") as table:
        table.drop_column("approver")
        table.drop_column("owner")
    with op.batch_alter_table("incident_facts") as table:
        table.drop_column("missing_functions_waived")
        table.drop_column("missing_functions")

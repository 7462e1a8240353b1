"""A local ticket's resolution: not_planned when its action item's risk was accepted.

Revision ID: 0004_local_ticket_resolution
Revises: 0003_insight_facts
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_local_ticket_resolution"
down_revision = "0003_insight_facts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("local_tickets") as table:
        table.add_column(sa.Column("resolution", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("local_tickets") as table:
        table.drop_column("resolution")

"""An incident's failure modes and the earlier incidents it repeats, in its facts.

Revision ID: 0007_incident_recurrence_facts
Revises: 0006_failure_modes
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_incident_recurrence_facts"
down_revision = "0006_failure_modes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incident_facts") as table:
        table.add_column(sa.Column("failure_modes", sa.Text(), nullable=False, server_default="[]"))
        table.add_column(sa.Column("repeat_of", sa.Text(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("incident_facts") as table:
        table.drop_column("repeat_of")
        table.drop_column("failure_modes")

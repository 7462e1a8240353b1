"""The policy and routing each deployment's worker runs incidents under, for every client.

Revision ID: 0005_deployment_config
Revises: 0004_local_ticket_resolution
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from store.schema import UTCDateTime

revision = "0005_deployment_config"
down_revision = "0004_local_ticket_resolution"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployment_config",
        sa.Column("task_queue", sa.String(255), nullable=False),
        sa.Column("policy", sa.Text(), nullable=False),
        sa.Column("routing", sa.Text(), nullable=False),
        sa.Column("policy_source", sa.Text(), nullable=False),
        sa.Column("routing_source", sa.Text(), nullable=False),
        sa.Column("published_at", UTCDateTime(), nullable=False),
        sa.Column("published_by", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("task_queue", name=op.f("pk_deployment_config")),
    )


def downgrade() -> None:
    op.drop_table("deployment_config")

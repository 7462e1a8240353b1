"""The failure-mode library: named failure modes, their signals and remediation recipes.

Revision ID: 0006_failure_modes
Revises: 0005_deployment_config
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from store.schema import UTCDateTime

revision = "0006_failure_modes"
down_revision = "0005_deployment_config"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "failure_modes",
        sa.Column("slug", sa.String(100), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("entry", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("slug", name=op.f("pk_failure_modes")),
    )


def downgrade() -> None:
    op.drop_table("failure_modes")

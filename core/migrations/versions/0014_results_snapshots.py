"""results: stored snapshots of a consultation's results (opinion groups, consensus)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 23:10:00

`resultsnapshot` holds one computation of a consultation's results as JSON; the dashboard and
the API read the latest (the index on consultation and time finds it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.models

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "resultsnapshot",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "consultation_id", sa.Integer(), sa.ForeignKey("consultation.id"), nullable=False
        ),
        sa.Column("computed_at", core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
    )
    op.create_index(
        "ix_resultsnapshot_latest", "resultsnapshot", ["consultation_id", "computed_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_resultsnapshot_latest", table_name="resultsnapshot")
    op.drop_table("resultsnapshot")

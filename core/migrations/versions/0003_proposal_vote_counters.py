"""proposals carry their trusted agree, disagree and neutral counts, for sequencing

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 02:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYS = ("agree", "disagree", "neutral")


def upgrade() -> None:
    with op.batch_alter_table("proposal") as batch:
        for key in KEYS:
            batch.add_column(
                sa.Column(f"{key}_count", sa.Integer(), nullable=False, server_default="0")
            )
    counts = ", ".join(  # the counts so far, from the counters, in one pass over the table
        f"{key}_count = COALESCE((SELECT tally.count FROM tally WHERE tally.proposal_id ="
        f" proposal.id AND tally.key = '{key}' AND tally.trusted = :trusted), 0)"
        for key in KEYS
    )
    op.execute(sa.text(f"UPDATE proposal SET {counts}").bindparams(trusted=True))


def downgrade() -> None:
    with op.batch_alter_table("proposal") as batch:
        for key in KEYS:
            batch.drop_column(f"{key}_count")

"""channel identities remember when the participant last wrote

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.models

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("channelidentity") as batch:
        batch.add_column(
            sa.Column("last_seen_at", core.models.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("channelidentity") as batch:
        batch.drop_column("last_seen_at")

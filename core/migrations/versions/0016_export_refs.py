"""exports: what a Polis round trip needs to keep original ids

A participant imported from another platform keeps the id they had there (a Polis participant
number) on their channel identity, so that an export gives it back and the two files can be
compared line by line. Proposals already keep theirs in `proposal.ref` ("polis-<id>").

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 23:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("channelidentity") as batch:
        batch.add_column(sa.Column("ref", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("channelidentity") as batch:
        batch.drop_column("ref")

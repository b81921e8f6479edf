"""moderation flags on proposals

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 20:00:00

`proposal.flags` holds what a moderator should look at (`core.moderation.flags`), as sorted
flag values separated by spaces; `proposal.text_key` the normalised hash of a participant's
text, so that copies of it are found by `ix_proposal_text_key`; `ix_proposal_recent` counts a
consultation's latest proposals (a recruitment source's burst).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("proposal") as batch:
        batch.add_column(
            sa.Column("flags", sa.String(length=255), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("text_key", sa.String(length=64), nullable=True))
    op.create_index("ix_proposal_text_key", "proposal", ["consultation_id", "text_key"])
    op.create_index("ix_proposal_recent", "proposal", ["consultation_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_proposal_recent", table_name="proposal")
    op.drop_index("ix_proposal_text_key", table_name="proposal")
    with op.batch_alter_table("proposal") as batch:
        batch.drop_column("text_key")
        batch.drop_column("flags")

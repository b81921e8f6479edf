"""the moderation notices' outbox: the author told of a decision, once, across crashes

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 20:00:00

`notice` rows are written in a decision's transaction and claimed by a delivery worker before
it sends them (`core.notices`); `ix_notice_ready` finds the next rows to claim.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.models

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    when = core.models.UTCDateTime(timezone=True)
    op.create_table(
        "notice",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "consultation_id", sa.Integer(), sa.ForeignKey("consultation.id"), nullable=False
        ),
        sa.Column("proposal_id", sa.Integer(), sa.ForeignKey("proposal.id"), nullable=False),
        sa.Column("participant_id", sa.Integer(), sa.ForeignKey("participant.id"), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("duplicate_of", sa.Integer(), sa.ForeignKey("proposal.id"), nullable=True),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", when, nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_at", when, nullable=True),
        sa.Column("sent_at", when, nullable=True),
        sa.Column("problem", sa.String(length=255), nullable=True),
        sa.Column("created_at", when, nullable=False),
        sa.UniqueConstraint("proposal_id", "kind"),
    )
    op.create_index("ix_notice_ready", "notice", ["state", "next_attempt_at", "id"])
    op.create_index("ix_notice_consultation", "notice", ["consultation_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_notice_consultation", table_name="notice")
    op.drop_index("ix_notice_ready", table_name="notice")
    op.drop_table("notice")

"""moderation: queue locks on proposals, their decisions' history, the organisers' audit log

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08 10:00:00

`proposal.locked_by`/`locked_until` hold the moderator a pending proposal is served to;
`ix_proposal_queue` serves the queue oldest first; `proposalevent` is each proposal's history
of decisions and `auditentry` the append-only log of organisers' actions (`core.moderation`).
The new status `withdrawn` needs no schema change (statuses are strings).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.models

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("proposal") as batch:
        batch.add_column(sa.Column("locked_by", sa.String(length=255), nullable=True))
        batch.add_column(
            sa.Column("locked_until", core.models.UTCDateTime(timezone=True), nullable=True)
        )
    op.create_index(
        "ix_proposal_queue", "proposal", ["consultation_id", "status", "created_at", "id"]
    )
    op.create_table(
        "proposalevent",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("proposal_id", sa.Integer(), sa.ForeignKey("proposal.id"), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("duplicate_of", sa.Integer(), sa.ForeignKey("proposal.id"), nullable=True),
        sa.Column("original_text", sa.String(length=1000), nullable=True),
        sa.Column("moderator", sa.String(length=255), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("at", core.models.UTCDateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_proposalevent_proposal_id", "proposalevent", ["proposal_id"])
    op.create_index("ix_proposalevent_moderator", "proposalevent", ["moderator", "id"])
    op.create_table(
        "auditentry",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("consultation_id", sa.Integer(), sa.ForeignKey("consultation.id"), nullable=True),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("at", core.models.UTCDateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_auditentry_consultation", "auditentry", ["consultation_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_auditentry_consultation", table_name="auditentry")
    op.drop_table("auditentry")
    op.drop_index("ix_proposalevent_moderator", table_name="proposalevent")
    op.drop_index("ix_proposalevent_proposal_id", table_name="proposalevent")
    op.drop_table("proposalevent")
    op.drop_index("ix_proposal_queue", table_name="proposal")
    with op.batch_alter_table("proposal") as batch:
        batch.drop_column("locked_until")
        batch.drop_column("locked_by")

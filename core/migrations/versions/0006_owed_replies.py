"""replies owed to participants survive a crash between the commit and the send

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 16:20:00

`owedreply` rows are written in an event's transaction and deleted once its replies were sent;
`deliveryworker` holds each sending process's heartbeat, so that the rows of a dead process
are taken over by a live one (`core.outbox`).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.models

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "owedreply",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("event_key", sa.String(length=128), nullable=False),
        sa.Column("participant_id", sa.Integer(), sa.ForeignKey("participant.id"), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=True),
        sa.Column("turn", sa.Integer(), nullable=True),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("created_at", core.models.UTCDateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_owedreply_event", "owedreply", ["channel", "event_key"])
    op.create_index("ix_owedreply_participant_id", "owedreply", ["participant_id"])
    op.create_index("ix_owedreply_owner", "owedreply", ["owner"])
    op.create_table(
        "deliveryworker",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("beat_at", core.models.UTCDateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("deliveryworker")
    op.drop_index("ix_owedreply_owner", table_name="owedreply")
    op.drop_index("ix_owedreply_participant_id", table_name="owedreply")
    op.drop_index("ix_owedreply_event", table_name="owedreply")
    op.drop_table("owedreply")

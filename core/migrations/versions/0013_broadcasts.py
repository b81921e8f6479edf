"""broadcasts: broadcasts, their occurrences and messages (an outbox), contacts, scheduler lease

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 23:05:00

`broadcast` is what an organiser (or a reminder) sends and when; `broadcastrun` one occurrence,
planned once; `broadcastmessage` one recipient of an occurrence, with the states of `notice`;
`contact` people the bot has not met (WhatsApp numbers imported with their opt-in);
`schedulerlease` which process runs the scheduler. `channelidentity.unreachable_at` marks an
address the platform said is gone (blocked, left).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.models

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    when = core.models.UTCDateTime(timezone=True)
    with op.batch_alter_table("channelidentity") as table:
        table.add_column(sa.Column("unreachable_at", when, nullable=True))
    op.create_table(
        "broadcast",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "consultation_id", sa.Integer(), sa.ForeignKey("consultation.id"), nullable=False
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("texts", sa.JSON(), nullable=False),
        sa.Column("button", sa.Boolean(), nullable=False),
        sa.Column("audience", sa.String(length=2000), nullable=False),
        sa.Column("template", sa.JSON(), nullable=True),
        sa.Column("paid", sa.Boolean(), nullable=False),
        sa.Column("first_at", when, nullable=False),
        sa.Column("every", sa.String(length=120), nullable=True),
        sa.Column("next_run_at", when, nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.Column("updated_at", when, nullable=False),
    )
    op.create_index("ix_broadcast_consultation_id", "broadcast", ["consultation_id"])
    op.create_index("ix_broadcast_due", "broadcast", ["state", "next_run_at"])
    op.create_table(
        "broadcastrun",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("broadcast_id", sa.Integer(), sa.ForeignKey("broadcast.id"), nullable=False),
        sa.Column("fire_at", when, nullable=False),
        sa.Column("planned_at", when, nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.JSON(), nullable=False),
        sa.UniqueConstraint("broadcast_id", "fire_at"),
    )
    op.create_index("ix_broadcastrun_broadcast_id", "broadcastrun", ["broadcast_id"])
    op.create_table(
        "contact",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "consultation_id", sa.Integer(), sa.ForeignKey("consultation.id"), nullable=False
        ),
        sa.Column("list_name", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("identity_hash", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=255), nullable=True),
        sa.Column("locale", sa.String(length=16), nullable=True),
        sa.Column("opted_in_at", when, nullable=True),
        sa.Column("unsubscribed_at", when, nullable=True),
        sa.Column("created_at", when, nullable=False),
        sa.UniqueConstraint("consultation_id", "list_name", "channel", "identity_hash"),
    )
    op.create_index("ix_contact_consultation_id", "contact", ["consultation_id"])
    op.create_table(
        "broadcastmessage",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("broadcastrun.id"), nullable=False),
        sa.Column("broadcast_id", sa.Integer(), sa.ForeignKey("broadcast.id"), nullable=False),
        sa.Column(
            "consultation_id", sa.Integer(), sa.ForeignKey("consultation.id"), nullable=False
        ),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("participant_id", sa.Integer(), sa.ForeignKey("participant.id"), nullable=True),
        sa.Column("contact_id", sa.Integer(), sa.ForeignKey("contact.id"), nullable=True),
        sa.Column("address", sa.String(length=255), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", when, nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_at", when, nullable=True),
        sa.Column("sent_at", when, nullable=True),
        sa.Column("problem", sa.String(length=255), nullable=True),
        sa.Column("created_at", when, nullable=False),
        sa.UniqueConstraint("run_id", "recipient"),
    )
    op.create_index(
        "ix_broadcastmessage_ready", "broadcastmessage", ["state", "next_attempt_at", "id"]
    )
    op.create_index("ix_broadcastmessage_broadcast", "broadcastmessage", ["broadcast_id", "state"])
    op.create_index(
        "ix_broadcastmessage_participant", "broadcastmessage", ["participant_id", "sent_at"]
    )
    op.create_table(
        "schedulerlease",
        sa.Column("name", sa.String(length=32), primary_key=True),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("expires_at", when, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("schedulerlease")
    op.drop_table("broadcastmessage")
    op.drop_table("contact")
    op.drop_table("broadcastrun")
    op.drop_table("broadcast")
    with op.batch_alter_table("channelidentity") as table:
        table.drop_column("unreachable_at")

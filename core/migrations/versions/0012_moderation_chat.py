"""moderators' chats: connected chats, linked chat accounts, link codes, posts

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 20:10:00

`moderationchat` connects a Telegram group or a Slack channel to a consultation;
`chatmoderator` links a chat account (a hash of its id) to an organiser; `chatlinkcode` keeps
the hashes of the one-time `/link` codes; `chatpost` is the outbox of what the chats are shown
(`core.moderation.chat`), with the states of `notice`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.models

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    when = core.models.UTCDateTime(timezone=True)
    op.create_table(
        "moderationchat",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column(
            "consultation_id", sa.Integer(), sa.ForeignKey("consultation.id"), nullable=False
        ),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("connected_at", when, nullable=False),
        sa.UniqueConstraint("channel", "chat_id"),
    )
    op.create_index("ix_moderationchat_consultation_id", "moderationchat", ["consultation_id"])
    op.create_table(
        "chatmoderator",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("member_hash", sa.String(length=64), nullable=False),
        sa.Column("organiser_id", sa.Integer(), sa.ForeignKey("organiser.id"), nullable=False),
        sa.Column("linked_at", when, nullable=False),
        sa.UniqueConstraint("channel", "member_hash"),
    )
    op.create_index("ix_chatmoderator_organiser_id", "chatmoderator", ["organiser_id"])
    op.create_table(
        "chatlinkcode",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code_hash", sa.String(length=64), nullable=False, unique=True),
        sa.Column("organiser_id", sa.Integer(), sa.ForeignKey("organiser.id"), nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.Column("expires_at", when, nullable=False),
        sa.Column("used_at", when, nullable=True),
    )
    op.create_index("ix_chatlinkcode_organiser_id", "chatlinkcode", ["organiser_id"])
    op.create_table(
        "chatpost",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("chat_ref", sa.Integer(), sa.ForeignKey("moderationchat.id"), nullable=False),
        sa.Column("proposal_id", sa.Integer(), sa.ForeignKey("proposal.id"), nullable=False),
        sa.Column("shows", sa.String(length=16), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", when, nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_at", when, nullable=True),
        sa.Column("sent_at", when, nullable=True),
        sa.Column("problem", sa.String(length=255), nullable=True),
        sa.Column("created_at", when, nullable=False),
        sa.UniqueConstraint("chat_ref", "proposal_id", "shows"),
    )
    op.create_index("ix_chatpost_ready", "chatpost", ["state", "next_attempt_at", "id"])
    op.create_index("ix_chatpost_proposal_id", "chatpost", ["proposal_id"])


def downgrade() -> None:
    op.drop_index("ix_chatpost_proposal_id", table_name="chatpost")
    op.drop_index("ix_chatpost_ready", table_name="chatpost")
    op.drop_table("chatpost")
    op.drop_index("ix_chatlinkcode_organiser_id", table_name="chatlinkcode")
    op.drop_table("chatlinkcode")
    op.drop_index("ix_chatmoderator_organiser_id", table_name="chatmoderator")
    op.drop_table("chatmoderator")
    op.drop_index("ix_moderationchat_consultation_id", table_name="moderationchat")
    op.drop_table("moderationchat")

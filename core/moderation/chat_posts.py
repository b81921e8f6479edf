"""The posts of the moderators' chats (`core.moderation.chat`), through an outbox.

`ChatPost` rows have the states of `Notice` and go through the same claim and record mechanics
(`core.notices`), in rows of their own. The delivery worker writes them itself (`queue_posts`):
a post for each pending proposal of a connected consultation, an edit for each later status of
a posted one, whatever wrote the proposal or decided it (a participant, the console, the API,
the CLI, a chat). A row exists once (unique), whichever worker wrote it first; a post claimed by
a worker that died is unknown, never posted twice.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BindParameter, Insert, Selectable, exists, literal, update
from sqlalchemy import select as select_columns
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.i18n import Translator, has_message
from core.models import (
    ChatPost,
    ModerationChat,
    NoticeState,
    Proposal,
    ProposalEvent,
    ProposalStatus,
)
from core.moderation.decisions import UNDECIDED
from core.moderation.flags import flags_of
from core.moderation.similarity import similar_proposals
from core.notices import Handover, claim_ready

SIMILAR_SHOWN = 3
SHOWN_FIRST = ProposalStatus.PENDING  # what a chat post shows when first posted


@dataclass(frozen=True)
class Button:
    """A button of a chat post: its label, and the data the chat sends back when tapped."""

    label: str
    data: str


Buttons = tuple[tuple[Button, ...], ...]  # rows of buttons


@dataclass(frozen=True)
class OutgoingPost:
    """A claimed chat post (`message_id` None) or edit of one, ready for its channel."""

    id: int
    channel: str
    chat_id: str
    message_id: str | None
    text: str
    buttons: Buttons


@dataclass(frozen=True)
class Posted:
    """What became of a post or an edit, as the channel tells it, with the new message's id."""

    handover: Handover
    message_id: str | None = None


_POSTED = aliased(ChatPost)
_SHOWN = aliased(ChatPost)


async def queue_posts(session: AsyncSession, now: datetime) -> None:
    """Write what the connected chats are to be shown and are not yet: a post for each pending
    proposal, an edit for each later status of a posted one. Any worker may run it at any
    time: a row exists once (unique), whoever wrote it first."""
    posts = (
        select_columns(
            col(ModerationChat.id),
            col(Proposal.id),
            literal(str(SHOWN_FIRST)),
            *_queued_at(now),
        )
        .join(Proposal, col(Proposal.consultation_id) == ModerationChat.consultation_id)
        .where(
            col(Proposal.status) == ProposalStatus.PENDING,
            ~exists().where(
                col(_POSTED.chat_ref) == ModerationChat.id,
                col(_POSTED.proposal_id) == Proposal.id,
            ),
        )
        .order_by(col(Proposal.id))  # posted in the order they were proposed
    )
    edits = (
        select_columns(
            col(_POSTED.chat_ref),
            col(_POSTED.proposal_id),
            col(Proposal.status),
            *_queued_at(now),
        )
        .join(Proposal, col(Proposal.id) == _POSTED.proposal_id)
        .where(
            col(_POSTED.shows) == SHOWN_FIRST,
            col(_POSTED.message_id).is_not(None),
            col(Proposal.status) != ProposalStatus.PENDING,
            ~exists().where(
                col(_SHOWN.chat_ref) == _POSTED.chat_ref,
                col(_SHOWN.proposal_id) == _POSTED.proposal_id,
                col(_SHOWN.shows) == Proposal.status,
            ),
        )
        .order_by(col(_POSTED.id))
    )
    for rows in (posts, edits):
        await session.exec(_insert_missing(session, rows))


def _queued_at(now: datetime) -> tuple[BindParameter[object], ...]:
    """A new row's state, attempts, next attempt and creation (`_insert_missing`'s columns)."""
    return (literal(NoticeState.QUEUED.value), literal(0), literal(now), literal(now))


def _insert_missing(session: AsyncSession, rows: Selectable) -> Insert:
    """INSERT the chat posts `rows` selects, but those another worker wrote meanwhile."""
    columns = ["chat_ref", "proposal_id", "shows", "state", "attempts", "next_attempt_at"]
    columns.append("created_at")
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    return insert(ChatPost).from_select(columns, rows).on_conflict_do_nothing()


async def claim_posts(
    session: AsyncSession, worker: str, channels: Collection[str], now: datetime, *, limit: int = 50
) -> list[OutgoingPost]:
    """Claim for `worker` up to `limit` posts and edits of chats on `channels`, oldest first,
    each rendered as the proposal stands now; the caller commits before sending. A post whose
    proposal was decided before it went out is not sent (nothing to decide any more)."""
    if not channels:
        return []
    on_channels = col(ChatPost.chat_ref).in_(
        select(ModerationChat.id).where(col(ModerationChat.channel).in_(list(channels)))
    )
    ids = await claim_ready(session, ChatPost, worker, now, limit, on_channels)
    if not ids:
        return []
    rows = await session.exec(
        select(ChatPost, ModerationChat, Proposal)
        .join(ModerationChat, col(ModerationChat.id) == ChatPost.chat_ref)
        .join(Proposal, col(Proposal.id) == ChatPost.proposal_id)
        .where(col(ChatPost.id).in_(ids))
        .order_by(col(ChatPost.id))
    )
    outgoing: list[OutgoingPost] = []
    late: list[int] = []
    for post, chat, proposal in rows.all():
        assert post.id is not None
        if post.shows == SHOWN_FIRST and proposal.status not in UNDECIDED:
            late.append(post.id)
            continue
        message_id = None
        if post.shows != SHOWN_FIRST:
            message_id = await _message_of(session, post)
            if message_id is None:  # the post is gone (unknown): nothing to edit
                late.append(post.id)
                continue
        outgoing.append(
            OutgoingPost(
                id=post.id,
                channel=chat.channel,
                chat_id=chat.chat_id,
                message_id=message_id,
                text=await post_text(session, proposal, chat.locale),
                buttons=first_buttons(proposal, Translator(chat.locale)),
            )
        )
    if late:
        await session.exec(
            update(ChatPost)
            .where(col(ChatPost.id).in_(late))
            .values(state=NoticeState.FAILED, problem="decided-before", claimed_by=None)
        )
    return outgoing


async def _message_of(session: AsyncSession, edit: ChatPost) -> str | None:
    found = await session.exec(
        select(ChatPost.message_id).where(
            ChatPost.chat_ref == edit.chat_ref,
            ChatPost.proposal_id == edit.proposal_id,
            ChatPost.shows == SHOWN_FIRST,
        )
    )
    return found.first()


async def posted(session: AsyncSession, post_id: int, message_id: str | None) -> None:
    """Keep the id of the message a post became (what its later edits change)."""
    if message_id is not None:
        await session.exec(
            update(ChatPost).where(col(ChatPost.id) == post_id).values(message_id=message_id)
        )


def reason_label(t: Translator, reason: str) -> str:
    msgid = f"chat.reason.{reason}"
    return t(msgid) if has_message(t.locale, msgid) or has_message("en", msgid) else reason


async def post_text(session: AsyncSession, proposal: Proposal, locale: str) -> str:
    """A proposal as moderators read it in their chat: its text, flags and similar proposals
    while undecided; then who decided what, and why. Never its author."""
    assert proposal.id is not None
    t = Translator(locale)
    lines = [t("chat.post.heading", id=proposal.id), proposal.text]
    if proposal.status in UNDECIDED:
        flags = flags_of(proposal)
        if flags:
            labels = ", ".join(t(f"moderation.flag.{flag.value}") for flag in flags)
            lines += ["", t("chat.post.flags", flags=labels)]
        similar = await similar_proposals(
            session,
            proposal.consultation_id,
            proposal.text,
            proposal.locale,
            statuses=(ProposalStatus.ACCEPTED, ProposalStatus.PENDING),
            limit=SIMILAR_SHOWN,
            exclude_id=proposal.id,
        )
        if similar:
            lines += ["", t("chat.post.similar")]
            lines += [
                t(
                    "chat.post.similar_line",
                    id=found.proposal_id,
                    text=found.text,
                    status=t(f"chat.status.{found.status}"),
                )
                for found in similar
            ]
    if proposal.status != ProposalStatus.PENDING:
        lines += ["", await _decided_line(session, proposal, t)]
    return "\n".join(lines)


async def _decided_line(session: AsyncSession, proposal: Proposal, t: Translator) -> str:
    event = (
        await session.exec(
            select(ProposalEvent)
            .where(ProposalEvent.proposal_id == proposal.id)
            .order_by(col(ProposalEvent.id).desc())
            .limit(1)
        )
    ).first()
    who = event.moderator if event is not None else "?"
    status = t(f"chat.status.{proposal.status}")
    if event is None or event.reason is None:
        return t("chat.post.decided", who=who, status=status)
    reason = reason_label(t, event.reason)
    if event.duplicate_of is not None:
        reason = f"{reason} (#{event.duplicate_of})"
    return t("chat.post.decided_because", who=who, status=status, reason=reason)


def first_buttons(proposal: Proposal, t: Translator) -> Buttons:
    """Accept, refuse, postpone (an undecided proposal); none once decided."""
    if proposal.status not in UNDECIDED:
        return ()
    prefix = f"m:{proposal.id}:"
    row = [
        Button(t("chat.button.accept"), prefix + "a"),
        Button(t("chat.button.refuse"), prefix + "r"),
    ]
    if proposal.status == ProposalStatus.PENDING:
        row.append(Button(t("chat.button.postpone"), prefix + "p"))
    return (tuple(row),)

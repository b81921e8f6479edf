"""Moderation from the moderators' own chat (a Telegram group, a Slack channel), channel-neutral.

An administrator connects a chat to a consultation (`connect_chat`). Each pending proposal of
that consultation is then shown in the chat with its flags, up to three similar proposals and
buttons (accept, refuse then the reason, postpone), and each later status of a shown proposal
edits that message: who decided what, and why. What the chats are shown goes through an outbox
(`ChatPost`, with the states and the claim/record mechanics of `core.notices`), filled by the
delivery worker itself (`queue_posts`): a post is written once per chat and proposal whatever
wrote the proposal or decided it (a participant, the console, the API, the CLI, this chat), and a
crash never shows it twice.

A chat member decides only once their chat account is linked to an organiser account
(`chat_code`, then `/link CODE` in the chat) with the moderator role on the consultation: the
decision is then `core.moderation.decide` itself, as the console's, locks and conflicts
included. A button's data is `m:<proposal>:<verb>`, short enough for Telegram's 64 bytes;
anything else is answered, never acted on.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Insert, Selectable, delete, exists, literal, update
from sqlalchemy import select as select_columns
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.definitions import consultation_by_slug, settings_of
from core.i18n import Translator, available_locales, has_message
from core.identity import identity_hash
from core.models import (
    ChatLinkCode,
    ChatModerator,
    ChatPost,
    Consultation,
    ModerationChat,
    NoticeState,
    Proposal,
    ProposalEvent,
    ProposalStatus,
)
from core.moderation.actors import Actor, Source
from core.moderation.decisions import (
    ALREADY_EXISTS,
    UNDECIDED,
    Accept,
    Decision,
    Postpone,
    Refuse,
    decide,
)
from core.moderation.errors import AlreadyDecided, Locked, ModerationError
from core.moderation.flags import flags_of
from core.moderation.history import record_action
from core.moderation.similarity import similar_proposals
from core.notices import Handover, claim_ready
from core.organisers import OrganiserView, Permission, organiser_by_email, organiser_by_id

CHAT_CODE_LIFETIME = timedelta(hours=24)
SIMILAR_SHOWN = 3
QUOTE_LIMIT = 60  # characters of a similar proposal on a button
# A link code: what `chat_code` makes (token_urlsafe(18): 24 characters), and a bit of slack.
CODE = re.compile(r"[A-Za-z0-9_-]{16,64}")
# A button's data: `m:<proposal>:<verb>`, verbs a(ccept), p(ostpone), r(efuse: the reasons),
# b(ack to the first buttons), x:<n> (refuse with the n-th reason), d:<id> (refuse: repeats id).
BUTTON_DATA = re.compile(r"m:(\d{1,18}):(a|p|r|b|x:\d{1,3}|d:\d{1,18})")
SHOWN_FIRST = ProposalStatus.PENDING  # what a chat post shows when first posted


class ChatError(Exception):
    """An organiser's request about chats that cannot be done; `msgid` says why."""

    def __init__(self, msgid: str, **values: str) -> None:
        super().__init__(msgid)
        self.msgid = msgid
        self.values = values


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


@dataclass(frozen=True)
class ChatAnswer:
    """What a chat member is answered (a callback answer, an ephemeral message), and the
    buttons the tapped post shows now (None: unchanged; (): none)."""

    text: str
    buttons: Buttons | None = None


def member_hash(secret: bytes, channel: str, member_id: str) -> str:
    """What is kept of a chat member's id: a keyed hash, as for participants."""
    return identity_hash(secret, f"moderation-{channel}", member_id)


async def connected_chat(
    session: AsyncSession, channel: str, chat_id: str
) -> ModerationChat | None:
    found = await session.exec(
        select(ModerationChat).where(
            ModerationChat.channel == channel, ModerationChat.chat_id == chat_id
        )
    )
    return found.first()


async def connect_chat(
    session: AsyncSession,
    channel: str,
    chat_id: str,
    slug: str,
    actor: Actor,
    *,
    now: datetime,
    locale: str | None = None,
) -> ModerationChat:
    """Connect a chat to the consultation `slug` (a chat moderates one consultation: connecting
    it again moves it), in `locale` (default: the consultation's). Raises ChatError."""
    consultation = await consultation_by_slug(session, slug)
    if consultation is None or consultation.id is None:
        raise ChatError("chat.error.unknown_consultation", slug=slug)
    if locale is not None and locale not in available_locales():
        raise ChatError("chat.error.unknown_locale", locale=locale)
    chat = await connected_chat(session, channel, chat_id)
    if chat is None:
        chat = ModerationChat(
            channel=channel, chat_id=chat_id, consultation_id=consultation.id, locale=""
        )
    elif chat.consultation_id != consultation.id:
        await session.exec(delete(ChatPost).where(col(ChatPost.chat_ref) == chat.id))
    chat.consultation_id = consultation.id
    chat.locale = locale or consultation.default_locale
    chat.connected_at = now
    session.add(chat)
    await session.flush()
    await record_action(
        session, actor, "chat.connect", f"chat:{channel}", consultation.id, now, {"chat": chat_id}
    )
    return chat


async def disconnect_chat(
    session: AsyncSession, channel: str, chat_id: str, actor: Actor, *, now: datetime
) -> bool:
    """Stop posting in a chat; its buttons answer that it is no longer connected. Whether it
    was connected."""
    chat = await connected_chat(session, channel, chat_id)
    if chat is None:
        return False
    await session.exec(delete(ChatPost).where(col(ChatPost.chat_ref) == chat.id))
    await session.delete(chat)
    await record_action(
        session, actor, "chat.disconnect", f"chat:{channel}", chat.consultation_id, now
    )
    return True


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


async def chat_code(session: AsyncSession, email: str, *, now: datetime) -> str:
    """A one-time code (24 hours) that links the chat account sending `/link CODE` to the
    organiser `email`; only its hash is stored. Raises ChatError for an unknown organiser."""
    organiser = await organiser_by_email(session, email)
    if organiser is None:
        raise ChatError("chat.error.unknown_organiser", email=email)
    code = secrets.token_urlsafe(18)
    session.add(
        ChatLinkCode(
            code_hash=_code_hash(code),
            organiser_id=organiser.id,
            created_at=now,
            expires_at=now + CHAT_CODE_LIFETIME,
        )
    )
    await session.flush()
    return code


async def link_member(
    session: AsyncSession,
    channel: str,
    chat_id: str,
    member_id: str,
    code: str,
    *,
    secret: bytes,
    now: datetime,
) -> str:
    """Spend a link code for the member who sent it in a connected chat; the answer to post
    (in the chat's language). A code links once, even when two requests race (one UPDATE)."""
    chat = await connected_chat(session, channel, chat_id)
    if chat is None:
        return Translator("en")("chat.not_connected")
    t = Translator(chat.locale)
    if not CODE.fullmatch(code):
        return t("chat.link.unknown")
    digest = _code_hash(code)
    spent = await session.exec(
        update(ChatLinkCode)
        .where(
            col(ChatLinkCode.code_hash) == digest,
            col(ChatLinkCode.used_at).is_(None),
            col(ChatLinkCode.expires_at) > now,
        )
        .values(used_at=now)
        .returning(col(ChatLinkCode.organiser_id))
    )
    organiser_id = spent.scalars().first()
    if organiser_id is None:
        row = (
            await session.exec(select(ChatLinkCode).where(ChatLinkCode.code_hash == digest))
        ).first()
        if row is None:
            return t("chat.link.unknown")
        return t("chat.link.used" if row.used_at is not None else "chat.link.expired")
    organiser = await organiser_by_id(session, organiser_id)
    if organiser is None:
        return t("chat.link.unknown")
    hashed = member_hash(secret, channel, member_id)
    await session.exec(
        delete(ChatModerator).where(
            col(ChatModerator.channel) == channel, col(ChatModerator.member_hash) == hashed
        )
    )
    session.add(
        ChatModerator(channel=channel, member_hash=hashed, organiser_id=organiser_id, linked_at=now)
    )
    await record_action(
        session,
        Actor(organiser.email, Source.CHAT),
        "chat.link",
        f"chat:{channel}",
        chat.consultation_id,
        now,
    )
    return t("chat.link.done", organiser=organiser.email)


async def _linked_organiser(
    session: AsyncSession, secret: bytes, channel: str, member_id: str
) -> OrganiserView | None:
    found = await session.exec(
        select(ChatModerator.organiser_id).where(
            ChatModerator.channel == channel,
            ChatModerator.member_hash == member_hash(secret, channel, member_id),
        )
    )
    organiser_id = found.first()
    return None if organiser_id is None else await organiser_by_id(session, organiser_id)


# The outbox of chat posts


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
            literal(NoticeState.QUEUED.value),
            literal(0),
            literal(now),
            literal(now),
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
            literal(NoticeState.QUEUED.value),
            literal(0),
            literal(now),
            literal(now),
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


# What a post says, and its buttons


def _reason_label(t: Translator, reason: str) -> str:
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
    reason = _reason_label(t, event.reason)
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


def _reason_buttons(proposal: Proposal, reasons: tuple[str, ...], t: Translator) -> Buttons:
    prefix = f"m:{proposal.id}:"
    rows = [
        (Button(_reason_label(t, reason), f"{prefix}x:{n}"),) for n, reason in enumerate(reasons)
    ]
    rows.append((Button(t("chat.button.back"), prefix + "b"),))
    return tuple(rows)


def _shortened(text: str) -> str:
    return text if len(text) <= QUOTE_LIMIT else text[: QUOTE_LIMIT - 1] + "…"


# A tap on a post's button


@dataclass(frozen=True)
class Tap:
    """A button tapped in a chat: who (the member's id on the channel), where, and its data."""

    channel: str
    chat_id: str
    member_id: str
    data: str


async def tap_in_chat(
    session: AsyncSession, tap: Tap, *, secret: bytes, now: datetime
) -> ChatAnswer:
    """Act on a tapped button, in the caller's transaction: show the refusal reasons (or, for
    `already-exists`, the accepted proposals it may repeat), or decide through
    `core.moderation.decide` as the linked organiser. Whatever cannot be done (a chat no longer
    connected, forged data, a member not linked or not a moderator, a proposal decided or held
    by another moderator) is answered, and nothing is changed."""
    chat = await connected_chat(session, tap.channel, tap.chat_id)
    if chat is None:
        return ChatAnswer(Translator("en")("chat.not_connected"))
    t = Translator(chat.locale)
    matched = BUTTON_DATA.fullmatch(tap.data)
    proposal = await session.get(Proposal, int(matched.group(1))) if matched else None
    if matched is None or proposal is None or proposal.consultation_id != chat.consultation_id:
        return ChatAnswer(t("chat.unknown_button"))
    organiser = await _linked_organiser(session, secret, tap.channel, tap.member_id)
    if organiser is None:
        return ChatAnswer(t("chat.not_linked"))
    if not organiser.can(Permission.MODERATE, chat.consultation_id):
        return ChatAnswer(t("chat.not_moderator"))
    if proposal.status not in UNDECIDED:
        return _decided_already(t, proposal.status)
    verb, _, argument = matched.group(2).partition(":")
    consultation = await session.get(Consultation, chat.consultation_id)
    assert consultation is not None
    reasons = settings_of(consultation).refusal_reasons
    decision: Decision
    if verb == "b":
        return ChatAnswer(t("chat.pick_action"), first_buttons(proposal, t))
    if verb == "r":
        return ChatAnswer(t("chat.pick_reason"), _reason_buttons(proposal, reasons, t))
    if verb == "x":
        index = int(argument)
        if index >= len(reasons):
            return ChatAnswer(t("chat.unknown_button"))
        if reasons[index] == ALREADY_EXISTS:
            return await _duplicate_choice(session, proposal, t)
        decision = Refuse(reasons[index])
    elif verb == "d":
        decision = Refuse(ALREADY_EXISTS, duplicate_of=int(argument))
    else:
        decision = Accept() if verb == "a" else Postpone()
    assert proposal.id is not None
    try:
        await decide(session, proposal.id, decision, Actor(organiser.email, Source.CHAT), now)
    except Locked as locked:
        return ChatAnswer(
            t("chat.locked", holder=locked.holder, until=f"{locked.expires_at:%H:%M:%S} UTC")
        )
    except AlreadyDecided as decided:
        return _decided_already(t, decided.status)
    except ModerationError:  # a duplicate no longer accepted, a reason no longer listed
        return ChatAnswer(t("chat.refused_decision"))
    return ChatAnswer(t(f"chat.done.{decision.action}"), ())


def _decided_already(t: Translator, status: str) -> ChatAnswer:
    return ChatAnswer(t("chat.already_decided", status=t(f"chat.status.{status}")), ())


async def _duplicate_choice(session: AsyncSession, proposal: Proposal, t: Translator) -> ChatAnswer:
    assert proposal.id is not None
    similar = await similar_proposals(
        session,
        proposal.consultation_id,
        proposal.text,
        proposal.locale,
        limit=SIMILAR_SHOWN,
        exclude_id=proposal.id,
    )
    prefix = f"m:{proposal.id}:"
    back = (Button(t("chat.button.back"), prefix + "b"),)
    if not similar:
        return ChatAnswer(t("chat.no_similar"), (back,))
    rows = tuple(
        (
            Button(
                f"#{found.proposal_id} {_shortened(found.text)}", f"{prefix}d:{found.proposal_id}"
            ),
        )
        for found in similar
    )
    return ChatAnswer(t("chat.pick_duplicate"), (*rows, back))


def link_code_of(argument: str) -> str:
    """The code of a `/link CODE` command's argument (its first word)."""
    words = argument.split()
    return words[0] if words else ""

"""Moderation from the moderators' own chat (a Telegram group, a Slack channel), channel-neutral.

An administrator connects a chat to a consultation (`connect_chat`). Each pending proposal of
that consultation is then shown in the chat with its flags, up to three similar proposals and
buttons (accept, refuse then the reason, postpone), and each later status of a shown proposal
edits that message: who decided what, and why. What the chats are shown goes through an outbox
(`core.moderation.chat_posts`): a post is written once per chat and proposal whatever wrote the
proposal or decided it (a participant, the console, the API, the CLI, this chat), and a crash
never shows it twice.

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
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.definitions import consultation_by_slug, settings_of
from core.i18n import Translator, available_locales
from core.identity import identity_hash
from core.ids import parse_id
from core.models import (
    ChatLinkCode,
    ChatModerator,
    ChatPost,
    Consultation,
    ModerationChat,
    Proposal,
)
from core.moderation.actors import Actor, Source
from core.moderation.chat_posts import SIMILAR_SHOWN, Button, Buttons, first_buttons, reason_label
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
from core.moderation.history import record_action
from core.moderation.similarity import similar_proposals
from core.organisers import OrganiserView, Permission, organiser_by_email, organiser_by_id

CHAT_CODE_LIFETIME = timedelta(hours=24)
QUOTE_LIMIT = 60  # characters of a similar proposal on a button
# A link code: what `chat_code` makes (token_urlsafe(18): 24 characters), and a bit of slack.
CODE = re.compile(r"[A-Za-z0-9_-]{16,64}")
# A button's data: `m:<proposal>:<verb>`, verbs a(ccept), p(ostpone), r(efuse: the reasons),
# b(ack to the first buttons), x:<n> (refuse with the n-th reason), d:<id> (refuse: repeats id).
# Ids have at most ID_DIGITS digits; `parse_id` then bounds them to what the database holds.
BUTTON_DATA = re.compile(r"m:(\d{1,10}):(a|p|r|b|x:\d{1,3}|d:\d{1,10})")


class ChatError(Exception):
    """An organiser's request about chats that cannot be done; `msgid` says why."""

    def __init__(self, msgid: str, **values: str) -> None:
        super().__init__(msgid)
        self.msgid = msgid
        self.values = values


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


def _reason_buttons(proposal: Proposal, reasons: tuple[str, ...], t: Translator) -> Buttons:
    prefix = f"m:{proposal.id}:"
    rows = [
        (Button(reason_label(t, reason), f"{prefix}x:{n}"),) for n, reason in enumerate(reasons)
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
    # Who taps first: a member who is not a moderator learns nothing of the proposals (not
    # even which ids exist), and their forged data never reaches a query.
    organiser = await _linked_organiser(session, secret, tap.channel, tap.member_id)
    if organiser is None:
        return ChatAnswer(t("chat.not_linked"))
    if not organiser.can(Permission.MODERATE, chat.consultation_id):
        return ChatAnswer(t("chat.not_moderator"))
    matched = BUTTON_DATA.fullmatch(tap.data)
    proposal_id = parse_id(matched.group(1)) if matched else None
    proposal = await session.get(Proposal, proposal_id) if proposal_id else None
    if matched is None or proposal is None or proposal.consultation_id != chat.consultation_id:
        return ChatAnswer(t("chat.unknown_button"))
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
        original = parse_id(argument)
        if original is None:
            return ChatAnswer(t("chat.unknown_button"))
        decision = Refuse(ALREADY_EXISTS, duplicate_of=original)
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

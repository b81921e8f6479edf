"""Delivering a broadcast's messages (`BroadcastMessage`, the broadcasts' outbox) once each.

The mechanics are the notices' (`core.notices`: `claim_ready`, `mark_unknown`, `beat`), at a
broadcast's scale: a worker claims a batch in one committed transaction (`claim_messages`),
sends it concurrently through the channels at their pace, then records every outcome of the
batch in ONE transaction (`record_messages`), so that a thousand messages a second cost a
few transactions, not a thousand.

What a claim skips: messages of a paused or cancelled broadcast (never claimed), recipients
who erased their address (/forget: failed, "forgotten"), unsubscribed since the planning
(failed, "unsubscribed") or whom a platform said unreachable since (failed, "unreachable"),
and WhatsApp recipients outside the 24-hour window past the business's messaging tier
(unique recipients outside the window per rolling 24 hours): they are put back, to be tried
when the oldest of those sends is a day old.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import and_, exists, func, update
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.broadcasts.audience import AudienceError, outside_target, parse_audience, unreachable
from core.broadcasts.control import sendable_broadcasts
from core.broadcasts.stats import CANCELLED
from core.definitions import ConsultationSettings, WhatsAppTemplate
from core.models import (
    Broadcast,
    BroadcastMessage,
    BroadcastState,
    ChannelIdentity,
    Consultation,
    Contact,
    NoticeState,
    Participant,
    Participation,
)
from core.notices import (
    FORGOTTEN,
    MAX_ATTEMPTS,
    WAITING_RECHECK,
    Handover,
    _retry_delay,
    claim_ready,
)

WINDOW = timedelta(hours=24)  # WhatsApp's customer-service window
# `problem` of a sent message that went out as a template, outside the window: what the
# messaging tier counts.
OUTSIDE_WINDOW = "outside-window"
UNREACHABLE = "unreachable"
UNSUBSCRIBED = "unsubscribed"
# A template parameter holds no line break and stays well within a template body's 1024 characters.
TEMPLATE_PARAMETER_LENGTH = 900
# Someone the bot has not met as a recipient (a Slack member, a contact), may have met it since
# all the same: `recipient` is then the keyed hash of their identity on that channel.
_MET = aliased(ChannelIdentity)
_MET_IN = aliased(Participation)
_GONE_CONTACT = aliased(Contact)


@dataclass(frozen=True)
class BroadcastOutgoing:
    """A claimed broadcast message, ready for its channel: where to, what in the recipient's
    language, the deep-link payload of its button (None without one), and what the channel
    needs to choose how (WhatsApp's window and template, Telegram's paid broadcast, a post in
    a Telegram channel rather than to a person). `template_values` holds the template
    parameters the core knows (`text`, `name`); the channel adds `link`, its own deep link."""

    id: int
    channel: str
    address: str = field(repr=False)
    locale: str
    text: str
    button: str | None
    consultation_slug: str
    last_seen_at: datetime | None = None
    template: WhatsAppTemplate | None = None
    template_values: dict[str, str] = field(default_factory=dict)
    paid: bool = False
    post: bool = False


def within_window(last_seen_at: datetime | None, now: datetime) -> bool:
    """Whether WhatsApp lets a business write free text: the person wrote less than 24 h ago."""
    return last_seen_at is not None and now - last_seen_at < WINDOW


@dataclass(frozen=True)
class ClaimedBatch:
    """What a claim gives to send, and how many rows it took: those it settled at once
    (forgotten, unsubscribed...) or put back (past the messaging tier) count, so that a
    batch with nothing to send still says more may be ready behind it."""

    messages: list[BroadcastOutgoing]
    claimed: int


async def claim_messages(
    session: AsyncSession,
    worker: str,
    channels: Collection[str],
    now: datetime,
    *,
    limit: int = 500,
    whatsapp_tier: int | None = None,
) -> list[BroadcastOutgoing]:
    """Claim for `worker` up to `limit` ready messages on `channels`, oldest first, and say
    what to send; the caller commits before sending. `whatsapp_tier` caps the unique
    recipients reached outside WhatsApp's window in 24 hours (None: unlimited)."""
    batch = await claim_batch(
        session, worker, channels, now, limit=limit, whatsapp_tier=whatsapp_tier
    )
    return batch.messages


async def claim_batch(
    session: AsyncSession,
    worker: str,
    channels: Collection[str],
    now: datetime,
    *,
    limit: int = 500,
    whatsapp_tier: int | None = None,
) -> ClaimedBatch:
    """`claim_messages`, saying how many rows were claimed too (see `ClaimedBatch`)."""
    if not channels:
        return ClaimedBatch([], 0)
    ids = await claim_ready(
        session,
        BroadcastMessage,
        worker,
        now,
        limit,
        sendable_broadcasts(),
        col(BroadcastMessage.channel).in_(list(channels)),
    )
    if not ids:
        return ClaimedBatch([], 0)
    rows = await session.exec(
        select(  # type: ignore[call-overload,misc]  # beyond sqlmodel's overloads
            BroadcastMessage,
            Broadcast,
            Consultation,
            ChannelIdentity,
            Contact.opted_in_at,
            Participant.forgotten_at,
            Contact.unsubscribed_at,
            Participation.subscribed,
            _MET.unreachable_at,
            _MET.last_seen_at,
            _MET_IN.subscribed,
            _stopped_as_contact(),
        )
        .join(Broadcast, col(Broadcast.id) == BroadcastMessage.broadcast_id)
        .join(Consultation, col(Consultation.id) == BroadcastMessage.consultation_id)
        .outerjoin(Participant, col(Participant.id) == BroadcastMessage.participant_id)
        .outerjoin(
            ChannelIdentity,
            and_(
                col(ChannelIdentity.participant_id) == BroadcastMessage.participant_id,
                col(ChannelIdentity.channel) == BroadcastMessage.channel,
            ),
        )
        .outerjoin(Contact, col(Contact.id) == BroadcastMessage.contact_id)
        .outerjoin(
            Participation,
            and_(
                col(Participation.participant_id) == BroadcastMessage.participant_id,
                col(Participation.consultation_id) == BroadcastMessage.consultation_id,
            ),
        )
        .outerjoin(
            _MET,
            and_(
                col(BroadcastMessage.participant_id).is_(None),
                col(_MET.channel) == BroadcastMessage.channel,
                col(_MET.identity_hash) == BroadcastMessage.recipient,
            ),
        )
        .outerjoin(
            _MET_IN,
            and_(
                col(_MET_IN.participant_id) == _MET.participant_id,
                col(_MET_IN.consultation_id) == BroadcastMessage.consultation_id,
            ),
        )
        .where(col(BroadcastMessage.id).in_(ids))
        .order_by(col(BroadcastMessage.id), col(ChannelIdentity.id))
    )
    seen: set[int] = set()
    outgoing: list[BroadcastOutgoing] = []
    failed: dict[str, list[int]] = defaultdict(list)
    settings_of: dict[int, ConsultationSettings] = {}
    posts: dict[int, bool] = {}
    for row in rows:
        message, broadcast, consultation, identity, opted_in_at, forgotten_at, gone, subscribed = (
            row[:8]
        )
        met_unreachable_at, met_last_seen_at, met_subscribed, stopped_as_contact = row[8:]
        assert message.id is not None and consultation.id is not None
        if message.id in seen:  # a second identity on the same channel: the first one serves
            continue
        seen.add(message.id)
        person = message.participant_id is not None
        address = identity.address if person and identity is not None else message.address
        if forgotten_at is not None or not address:
            failed[FORGOTTEN].append(message.id)
            continue
        # Marked unreachable (they blocked the bot) and silent since: writing again unblocks.
        mine = identity if person and identity is not None else None
        if mine is not None and unreachable(mine.unreachable_at, mine.last_seen_at):
            failed[UNREACHABLE].append(message.id)
            continue
        if unreachable(met_unreachable_at, met_last_seen_at):  # a Slack member, a contact...
            failed[UNREACHABLE].append(message.id)
            continue
        # Since the planning (STOP, /stop); for someone reached from outside the consultation
        # (a Slack member, a contact of a list), also a /stop they sent as its participant,
        # or a STOP they sent as a contact of another list.
        if gone is not None or False in (subscribed, met_subscribed) or stopped_as_contact:
            failed[UNSUBSCRIBED].append(message.id)
            continue
        if consultation.id not in settings_of:
            settings_of[consultation.id] = ConsultationSettings.model_validate(
                consultation.settings
            )
        settings = settings_of[consultation.id]
        text = _text_for(broadcast.texts, message.locale, consultation.default_locale)
        template = _template(broadcast.template, settings, message.locale)
        if template is not None and template.category == "marketing" and not person:
            template = template if opted_in_at is not None else None
        question = consultation.question
        name = question.get(message.locale) or question.get(consultation.default_locale, "")
        outgoing.append(
            BroadcastOutgoing(
                id=message.id,
                channel=message.channel,
                address=address,
                locale=message.locale,
                text=text,
                button=consultation.slug if broadcast.button else None,
                consultation_slug=consultation.slug,
                last_seen_at=identity.last_seen_at if identity is not None else None,
                template=template,
                template_values={
                    "text": " ".join(text.split())[:TEMPLATE_PARAMETER_LENGTH],
                    "name": " ".join(name.split())[:TEMPLATE_PARAMETER_LENGTH],
                },
                paid=broadcast.paid,
                post=_is_post(broadcast, posts),
            )
        )
    for problem, failing in failed.items():
        await session.exec(
            update(BroadcastMessage)
            .where(col(BroadcastMessage.id).in_(failing))
            .values(state=NoticeState.FAILED, problem=problem, claimed_by=None, address=None)
        )
    if whatsapp_tier is not None:
        outgoing = await _within_tier(session, outgoing, whatsapp_tier, now)
    return ClaimedBatch(outgoing, len(ids))


async def _within_tier(
    session: AsyncSession, outgoing: list[BroadcastOutgoing], tier: int, now: datetime
) -> list[BroadcastOutgoing]:
    """The claimed messages the messaging tier lets out now; those past it are queued again
    for when the oldest send counted is a day old."""
    outside = [
        m
        for m in outgoing
        if m.channel == "whatsapp"
        and m.template is not None
        and not within_window(m.last_seen_at, now)
    ]
    if not outside:
        return outgoing
    counted = (
        await session.exec(
            select(
                func.count(func.distinct(BroadcastMessage.recipient)),
                func.min(BroadcastMessage.sent_at),
            ).where(
                BroadcastMessage.channel == "whatsapp",
                BroadcastMessage.problem == OUTSIDE_WINDOW,
                col(BroadcastMessage.sent_at) > now - WINDOW,
            )
        )
    ).one()
    used, oldest = int(counted[0] or 0), counted[1]
    room = max(0, tier - used)
    later = [m.id for m in outside[room:]]
    if not later:
        return outgoing
    retry_at = (oldest + WINDOW) if oldest is not None else now + WINDOW
    await session.exec(
        update(BroadcastMessage)
        .where(col(BroadcastMessage.id).in_(later))
        .values(state=NoticeState.QUEUED, claimed_by=None, next_attempt_at=max(retry_at, now))
    )
    held = set(later)
    return [m for m in outgoing if m.id not in held]


def _stopped_as_contact() -> ColumnElement[bool]:
    """Whether a message to someone the bot has not met goes to a number that replied STOP
    as a contact of any list (imported again since, say)."""
    return (
        exists()
        .where(
            col(BroadcastMessage.participant_id).is_(None),
            col(_GONE_CONTACT.channel) == BroadcastMessage.channel,
            col(_GONE_CONTACT.identity_hash) == BroadcastMessage.recipient,
            col(_GONE_CONTACT.unsubscribed_at).is_not(None),
        )
        .label("stopped_as_contact")
    )


def _is_post(broadcast: Broadcast, known: dict[int, bool]) -> bool:
    """Whether the broadcast is a post in a Telegram channel (its audience says so)."""
    assert broadcast.id is not None
    if broadcast.id not in known:
        try:
            outside = outside_target(parse_audience(broadcast.audience))
        except AudienceError:  # checked when it was created: not a post, then
            outside = None
        known[broadcast.id] = outside is not None and outside.kind == "telegram-post"
    return known[broadcast.id]


def _text_for(texts: dict[str, str], locale: str, default_locale: str) -> str:
    return texts.get(locale) or texts.get(default_locale) or next(iter(texts.values()), "")


def _template(stored: Any, settings: ConsultationSettings, locale: str) -> WhatsAppTemplate | None:
    """The broadcast's template for a recipient speaking `locale`: the registry's template of
    that name in their language (else its first language), else the one the broadcast kept."""
    if isinstance(stored, str):
        stored = {"name": stored}
    if not isinstance(stored, dict) or not stored.get("name"):
        return None
    named = [t for t in settings.broadcasts.templates if t.name == stored["name"]]
    spoken = [t for t in named if t.language.split("_")[0] == locale]
    if spoken or named:
        return (spoken or named)[0]
    language = stored.get("language")
    if isinstance(language, dict):
        language = language.get(locale) or next(iter(language.values()), None)
    try:
        return WhatsAppTemplate.model_validate({**stored, "language": language or locale})
    except ValidationError:
        return None


def template_for(
    name: str | None, settings: ConsultationSettings, locale: str
) -> WhatsAppTemplate | None:
    """The registry's template `name` for a recipient speaking `locale` (else its first
    language); None without a name, or for a name the registry does not hold."""
    return _template(name, settings, locale) if name else None


_SETTLED = {
    Handover.SENT: (NoticeState.SENT, None),
    Handover.REFUSED: (NoticeState.FAILED, "refused"),
    Handover.UNREACHABLE: (NoticeState.FAILED, UNREACHABLE),
    Handover.UNKNOWN: (NoticeState.UNKNOWN, "no-answer"),
    Handover.NEEDS_TEMPLATE: (NoticeState.WAITING, "no-template"),
}


async def record_messages(
    session: AsyncSession,
    worker: str,
    outcomes: Sequence[tuple[int, Handover]],
    now: datetime,
    *,
    outside_window: Collection[int] = (),
    released: Collection[int] = (),
) -> None:
    """Record what became of `worker`'s sends, a batch in a few statements. Rows no longer
    `worker`'s (taken for dead meanwhile) stay as they are, unless sent. `outside_window`:
    the ids sent as a WhatsApp template (the messaging tier counts them). An unreachable
    recipient is marked so (`ChannelIdentity.unreachable_at`, `Contact.unsubscribed_at`):
    later broadcasts skip them. Addresses of people the bot has not met are erased once their
    message is settled. `released`: claimed but never handed to a platform (the worker
    stopped first): queued again as they were, for a live worker."""
    if released:
        await session.exec(
            update(BroadcastMessage)
            .where(
                col(BroadcastMessage.claimed_by) == worker,
                col(BroadcastMessage.state) == NoticeState.CLAIMED,
                col(BroadcastMessage.id).in_(list(released)),
            )
            .values(state=NoticeState.QUEUED, claimed_by=None, claimed_at=None)
        )
    by_handover: dict[Handover, list[int]] = defaultdict(list)
    for message_id, handover in outcomes:
        by_handover[handover].append(message_id)
    ours = col(BroadcastMessage.claimed_by) == worker
    claimed = col(BroadcastMessage.state) == NoticeState.CLAIMED
    for handover, ids in by_handover.items():
        mine = and_(ours, col(BroadcastMessage.id).in_(ids))
        if handover == Handover.RETRY:
            await _retry(session, mine, claimed, now)
            continue
        state, problem = _SETTLED[handover]
        values: dict[str, Any] = {"state": state, "problem": problem}
        where = [mine, claimed]
        if handover == Handover.SENT:
            values["sent_at"] = now
            where = [
                mine,
                col(BroadcastMessage.state).in_((NoticeState.CLAIMED, NoticeState.UNKNOWN)),
            ]
            outside = set(outside_window) & set(ids)
            if outside:
                await session.exec(
                    update(BroadcastMessage)
                    .where(*where, col(BroadcastMessage.id).in_(outside))
                    .values({**values, "problem": OUTSIDE_WINDOW})
                )
        if handover == Handover.NEEDS_TEMPLATE:
            values["next_attempt_at"] = now + WAITING_RECHECK
        if handover == Handover.UNREACHABLE:
            await _mark_unreachable(session, ids, now)
        await session.exec(update(BroadcastMessage).where(*where).values(**values))
    # Back in the queue (tried again later, waiting for the window, released) while their
    # broadcast was cancelled meanwhile: withdrawn, as the cancel withdrew the queued ones;
    # they would otherwise wait for ever, never claimed, their addresses kept.
    done_ids = [message_id for message_id, _ in outcomes] + list(released)
    cancelled = select(Broadcast.id).where(Broadcast.state == BroadcastState.CANCELLED)
    await session.exec(
        update(BroadcastMessage)
        .where(
            col(BroadcastMessage.id).in_(done_ids),
            col(BroadcastMessage.state).in_((NoticeState.QUEUED, NoticeState.WAITING)),
            col(BroadcastMessage.broadcast_id).in_(cancelled),
        )
        .values(state=NoticeState.FAILED, problem=CANCELLED)
    )
    settled = col(BroadcastMessage.state).in_((NoticeState.SENT, NoticeState.FAILED))
    await session.exec(
        update(BroadcastMessage)
        .where(
            col(BroadcastMessage.id).in_(done_ids),
            settled,
            col(BroadcastMessage.address).is_not(None),
        )
        .values(address=None)
    )


async def _retry(
    session: AsyncSession, mine: ColumnElement[bool], claimed: ColumnElement[bool], now: datetime
) -> None:
    """Certainly not delivered: queued again after a backoff, failed after MAX_ATTEMPTS."""
    rows = await session.exec(
        select(BroadcastMessage.id, BroadcastMessage.attempts).where(mine, claimed)
    )
    by_attempts: dict[int, list[int | None]] = defaultdict(list)
    for message_id, attempts in rows:
        by_attempts[attempts + 1].append(message_id)
    for attempts, ids in by_attempts.items():
        values: dict[str, Any] = {"attempts": attempts}
        if attempts >= MAX_ATTEMPTS:
            values.update(state=NoticeState.FAILED, problem="attempts")
        else:
            values.update(state=NoticeState.QUEUED, next_attempt_at=now + _retry_delay(attempts))
        await session.exec(
            update(BroadcastMessage).where(col(BroadcastMessage.id).in_(ids)).values(**values)
        )


async def _mark_unreachable(session: AsyncSession, ids: list[int], now: datetime) -> None:
    """The recipients of `ids` are skipped from now on: a participant's identity on that
    channel is unreachable (until they write again: marked anew if they block it again), a
    contact unsubscribed."""
    rows = (
        await session.exec(
            select(
                BroadcastMessage.participant_id,
                BroadcastMessage.channel,
                BroadcastMessage.contact_id,
            ).where(col(BroadcastMessage.id).in_(ids))
        )
    ).all()
    for participant_id, channel, contact_id in rows:
        if participant_id is not None:
            await session.exec(
                update(ChannelIdentity)
                .where(
                    col(ChannelIdentity.participant_id) == participant_id,
                    col(ChannelIdentity.channel) == channel,
                )
                .values(unreachable_at=now)
            )
        elif contact_id is not None:
            await session.exec(
                update(Contact)
                .where(col(Contact.id) == contact_id, col(Contact.unsubscribed_at).is_(None))
                .values(unsubscribed_at=now)
            )

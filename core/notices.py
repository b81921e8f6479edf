"""Authors told of moderation decisions, exactly once, through an outbox.

A decision that notifies (`core.moderation.decisions`) writes a `Notice` in its own transaction:
the notice exists if and only if the decision does. A delivery worker then, for each batch:

1. beats (`DeliveryWorker`, as the reply ledger of `core.outbox` does) and marks `unknown` the
   notices claimed by workers that stopped beating: they may have reached the platform before
   the worker died, and sending them again could tell the author twice;
2. claims ready notices in a committed transaction of its own (`claim`: one UPDATE; on
   PostgreSQL its rows are picked with `FOR UPDATE SKIP LOCKED`, so concurrent workers take
   different rows; on SQLite every transaction holds the write lock), with what sending needs:
   the address (`ChannelIdentity`, erased by /forget: such a notice fails, saying why), the
   text in the author's language, the time the author last wrote;
3. sends each through its channel, which answers a `Handover`, and records it (`record`).

A crash before the claim's commit leaves the notice queued (a live worker sends it); after it,
the notice is claimed by a dead worker and becomes unknown: at most once, never silently lost.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import cast

from sqlalchemy import and_, func, insert, update
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.definitions import ConsultationSettings
from core.i18n import Translator, has_message
from core.models import (
    BroadcastMessage,
    ChannelIdentity,
    ChatPost,
    Consultation,
    DeliveryWorker,
    Notice,
    NoticeKind,
    NoticeState,
    Participant,
    Proposal,
)

MAX_ATTEMPTS = 6  # sends that certainly did not arrive, before the notice fails
FIRST_RETRY = timedelta(seconds=30)  # then doubling, up to LAST_RETRY
LAST_RETRY = timedelta(hours=1)
# A notice waiting for WhatsApp's window is offered to its channel again this often: the author
# may have written since, or the organiser named a template.
WAITING_RECHECK = timedelta(hours=1)
FORGOTTEN = "forgotten"  # `problem` of a notice whose author erased their address

_READY = (NoticeState.QUEUED, NoticeState.WAITING)
_DUPLICATE = aliased(Proposal)
# The outboxes these mechanics serve: authors' notices, the posts of moderators' chats
# (`core.moderation.chat`) and the broadcasts' messages (`core.broadcasts`); all have the same
# state columns.
Outbox = type[Notice] | type[ChatPost] | type[BroadcastMessage]


class Handover(StrEnum):
    """What became of one send, as the channel tells it."""

    SENT = "sent"
    REFUSED = "refused"  # refused for good (unknown chat, bad request): not delivered
    UNREACHABLE = "unreachable"  # the recipient blocked the bot or left: skip them from now on
    RETRY = "retry"  # certainly not delivered (throttled, connection refused): try again later
    UNKNOWN = "unknown"  # the request may have reached the platform (a timeout): never resent
    NEEDS_TEMPLATE = "needs-template"  # WhatsApp outside the window, and no template named


@dataclass(frozen=True)
class Template:
    """A platform-approved message template: its name and language code."""

    name: str
    language: str


@dataclass(frozen=True)
class Outgoing:
    """A claimed notice, ready for its channel: where to, what, and what the channel needs to
    choose how (the author's last message, for WhatsApp's window; a template, if named)."""

    id: int
    channel: str
    address: str = field(repr=False)
    locale: str
    text: str
    last_seen_at: datetime | None = None
    template: Template | None = None


@dataclass(frozen=True)
class NoticeView:
    """A notice as an organiser sees it: no participant, no address."""

    id: int
    proposal_id: int
    kind: str
    channel: str | None
    state: str
    attempts: int
    problem: str | None
    created_at: datetime


def new_worker_id() -> str:
    return f"notices-{uuid.uuid4().hex}"


async def queue_notice(
    session: AsyncSession,
    proposal: Proposal,
    kind: NoticeKind,
    now: datetime,
    *,
    reason: str | None = None,
    duplicate_of: int | None = None,
) -> Notice | None:
    """Write, in the caller's (the decision's) transaction, that `proposal`'s author is to be
    told of `kind`; None for a proposal without an author (the organiser's seeds). An author
    with no address left (/forget) gets a notice that has failed already, saying so."""
    if proposal.author_id is None or proposal.id is None:
        return None
    found = (
        await session.exec(
            select(Participant.locale, ChannelIdentity.channel)
            .select_from(Participant)
            .outerjoin(ChannelIdentity, col(ChannelIdentity.participant_id) == Participant.id)
            .where(Participant.id == proposal.author_id)
            .order_by(col(ChannelIdentity.id))
            .limit(1)
        )
    ).first()
    locale, channel = found if found is not None else (None, None)
    notice = Notice(
        consultation_id=proposal.consultation_id,
        proposal_id=proposal.id,
        participant_id=proposal.author_id,
        channel=channel,
        kind=kind,
        reason=reason,
        duplicate_of=duplicate_of,
        locale=locale or proposal.locale,
        next_attempt_at=now,
        created_at=now,
    )
    if channel is None:
        notice.state, notice.problem = NoticeState.FAILED, FORGOTTEN
    session.add(notice)
    await session.flush()
    return notice


async def beat(session: AsyncSession, worker: str, now: datetime) -> None:
    """Say that `worker` is alive (the heartbeat `core.outbox` reads too)."""
    done = await session.exec(
        update(DeliveryWorker).where(col(DeliveryWorker.id) == worker).values(beat_at=now)
    )
    if done.rowcount == 0:
        await session.exec(insert(DeliveryWorker).values(id=worker, beat_at=now))


async def mark_unknown(
    session: AsyncSession, now: datetime, stale_after: timedelta, *, table: Outbox = Notice
) -> int:
    """Mark `unknown` the notices (or rows of another outbox `table`) claimed by workers
    silent for `stale_after` (or forgotten): each may have reached its author; how many."""
    alive = select(DeliveryWorker.id).where(col(DeliveryWorker.beat_at) >= now - stale_after)
    done = await session.exec(
        update(table)
        .where(
            col(table.state) == NoticeState.CLAIMED,
            col(table.claimed_by).not_in(alive),
        )
        .values(state=NoticeState.UNKNOWN, problem="worker-died")
    )
    return int(done.rowcount)


async def claim(
    session: AsyncSession,
    worker: str,
    channels: Collection[str],
    now: datetime,
    *,
    limit: int = 50,
) -> list[Outgoing]:
    """Claim for `worker` up to `limit` ready notices on `channels`, oldest first, and say what
    to send; the caller commits before sending. Notices whose author has no address any more
    fail here instead (not returned)."""
    if not channels:
        return []
    ids = await claim_ready(
        session, Notice, worker, now, limit, col(Notice.channel).in_(list(channels))
    )
    if not ids:
        return []
    rows = await session.exec(
        select(  # type: ignore[call-overload]  # six entities: beyond sqlmodel's overloads
            Notice,
            Proposal.text,
            _DUPLICATE.text,
            Consultation.settings,
            ChannelIdentity.address,
            ChannelIdentity.last_seen_at,
        )
        .join(Proposal, col(Proposal.id) == Notice.proposal_id)
        .join(Consultation, col(Consultation.id) == Notice.consultation_id)
        .outerjoin(_DUPLICATE, col(_DUPLICATE.id) == Notice.duplicate_of)
        .outerjoin(
            ChannelIdentity,
            and_(
                col(ChannelIdentity.participant_id) == Notice.participant_id,
                col(ChannelIdentity.channel) == Notice.channel,
            ),
        )
        .where(col(Notice.id).in_(ids))
        .order_by(col(Notice.id))
    )
    outgoing: list[Outgoing] = []
    forgotten: list[int] = []
    for notice, text, duplicate, settings, address, last_seen_at in rows:
        assert notice.id is not None and notice.channel is not None
        if address is None:
            forgotten.append(notice.id)
            continue
        consultation_settings = ConsultationSettings.model_validate(settings)
        outgoing.append(
            Outgoing(
                id=notice.id,
                channel=notice.channel,
                address=address,
                locale=notice.locale,
                text=notice_text(notice, text, duplicate),
                last_seen_at=last_seen_at,
                template=_template(consultation_settings, notice.locale),
            )
        )
    if forgotten:
        await session.exec(
            update(Notice)
            .where(col(Notice.id).in_(forgotten))
            .values(state=NoticeState.FAILED, problem=FORGOTTEN, claimed_by=None)
        )
    return outgoing


async def claim_ready(
    session: AsyncSession,
    table: Outbox,
    worker: str,
    now: datetime,
    limit: int,
    *where: ColumnElement[bool],
) -> list[int]:
    """Claim for `worker` up to `limit` ready rows of an outbox `table` (and `where`), oldest
    first; their ids. On PostgreSQL the rows are picked with `FOR UPDATE SKIP LOCKED`, so
    concurrent workers take different rows; SQLite holds the write lock already."""
    ready = (
        select(table.id)
        .where(col(table.state).in_(_READY), col(table.next_attempt_at) <= now, *where)
        .order_by(col(table.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = await session.exec(
        update(table)
        .where(col(table.id).in_(ready), col(table.state).in_(_READY))
        .values(state=NoticeState.CLAIMED, claimed_by=worker, claimed_at=now)
        .returning(col(table.id))
    )
    return sorted(claimed.scalars().all())


def _template(settings: ConsultationSettings, locale: str) -> Template | None:
    named = settings.whatsapp_notice_template
    if named is None:
        return None
    return Template(named.name, named.languages.get(locale, locale))


def notice_text(notice: Notice, text: str, duplicate: str | None) -> str:
    """What the author reads, in their language: the decision, their proposal quoted, the
    reason of a refusal, and for a duplicate the proposal that exists already."""
    t = Translator(notice.locale)
    if notice.kind == NoticeKind.ACCEPTED:
        return t("notice.accepted", text=text)
    if duplicate is not None:
        return t("notice.refused_duplicate", text=text, existing=duplicate)
    return t("notice.refused", text=text, reason=reason_label(t, notice.reason))


def reason_label(t: Translator, reason: str | None) -> str:
    """A refusal reason as the author reads it; a reason of the consultation's own, without a
    sentence in the catalogues, reads as a generic one."""
    msgid = f"notice.reason.{reason}"
    if reason is not None and (has_message(t.locale, msgid) or has_message("en", msgid)):
        return t(msgid)
    return t("notice.reason_unlisted")


def _retry_delay(attempts: int) -> timedelta:
    delay: timedelta = FIRST_RETRY * 2 ** max(0, attempts - 1)
    return min(LAST_RETRY, delay)


async def record(
    session: AsyncSession,
    worker: str,
    notice_id: int,
    handover: Handover,
    now: datetime,
    *,
    table: Outbox = Notice,
) -> NoticeState | None:
    """Record what became of `worker`'s send of a notice (or of a row of another outbox
    `table`); its new state, or None if the row is no longer `worker`'s (taken for dead
    meanwhile: it stays unknown, unless it was sent).

    A send that certainly did not arrive is queued again after a backoff, MAX_ATTEMPTS times at
    most; WhatsApp's window is looked at again after WAITING_RECHECK. `problem` gets a code an
    organiser's tools translate (`notice.problem.<code>`).
    """
    found = await session.exec(
        select(table).where(table.id == notice_id, table.claimed_by == worker).with_for_update()
    )
    notice = cast("Notice | ChatPost | None", found.first())  # a row of `table`
    ours = [NoticeState.CLAIMED] + ([NoticeState.UNKNOWN] if handover == Handover.SENT else [])
    if notice is None or notice.state not in ours:
        return None
    notice.problem = None
    if handover == Handover.SENT:
        notice.state, notice.sent_at = NoticeState.SENT, now
    elif handover == Handover.REFUSED:
        notice.state, notice.problem = NoticeState.FAILED, "refused"
    elif handover == Handover.UNREACHABLE:
        notice.state, notice.problem = NoticeState.FAILED, "unreachable"
    elif handover == Handover.UNKNOWN:
        notice.state, notice.problem = NoticeState.UNKNOWN, "no-answer"
    elif handover == Handover.NEEDS_TEMPLATE:
        notice.state, notice.problem = NoticeState.WAITING, "no-template"
        notice.next_attempt_at = now + WAITING_RECHECK
    else:
        notice.attempts += 1
        if notice.attempts >= MAX_ATTEMPTS:
            notice.state, notice.problem = NoticeState.FAILED, "attempts"
        else:
            notice.state = NoticeState.QUEUED
            notice.next_attempt_at = now + _retry_delay(notice.attempts)
    session.add(notice)
    await session.flush()
    return NoticeState(notice.state)


async def notice_counts(session: AsyncSession, consultation_id: int) -> dict[str, int]:
    """How many of a consultation's notices are in each state."""
    rows = await session.exec(
        select(Notice.state, func.count())
        .where(Notice.consultation_id == consultation_id)
        .group_by(col(Notice.state))
    )
    return {str(state): int(count) for state, count in rows}


async def notices_needing_attention(
    session: AsyncSession, consultation_id: int
) -> list[NoticeView]:
    """A consultation's notices an organiser should know of: waiting for WhatsApp's window
    (no template named) and unknown (their worker died mid-send), oldest first."""
    rows = await session.exec(
        select(Notice)
        .where(
            Notice.consultation_id == consultation_id,
            col(Notice.state).in_((NoticeState.WAITING, NoticeState.UNKNOWN)),
        )
        .order_by(col(Notice.id))
    )
    return [
        NoticeView(
            id=notice.id or 0,
            proposal_id=notice.proposal_id,
            kind=notice.kind,
            channel=notice.channel,
            state=notice.state,
            attempts=notice.attempts,
            problem=notice.problem,
            created_at=notice.created_at,
        )
        for notice in rows
    ]

"""The automatic reminders of a consultation, each with its off switch (`ReminderSettings`).

- stalled: once to a participant who stopped mid-sequence and has not voted for
  `stalled_after_hours`;
- digest: to a participant for whom proposals were accepted since their last vote, at most
  every `digest_days`;
- closing: once, `closing_before_hours` before the consultation ends, to every participant;
- results: once, when the results are published, to every participant.

Each kind is one `Broadcast` per consultation (kind stalled, digest, closing, results: an
organiser sees, pauses or cancels it like any other), written the first time it is needed; each
time it reaches someone is one occurrence, queued by `plan_occurrence` as the organisers'
broadcasts are, so the weekly cap and the quiet hours hold for reminders too. Everything is
decided from the database: running `plan_reminders` again at once creates nothing new. The
stalled and digest reminders look for whom to remind at most every CHECK_EVERY (each look
reads every participant of the consultation; the scheduler calls every few seconds).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, exists, func, literal, select
from sqlalchemy.orm import aliased
from sqlalchemy.sql import Select
from sqlmodel import col
from sqlmodel import select as select_rows
from sqlmodel.ext.asyncio.session import AsyncSession

from core.broadcasts.audience import parse_audience, participant_recipients
from core.broadcasts.planning import materialized, plan_occurrence
from core.definitions import settings_of
from core.i18n import Translator
from core.models import (
    Broadcast,
    BroadcastKind,
    BroadcastMessage,
    BroadcastState,
    Consultation,
    Participation,
    Proposal,
    ProposalStatus,
    Status,
    UTCDateTime,
    Vote,
)

# How often the stalled and digest reminders look for whom to remind: each look reads every
# participant, and the scheduler calls every few seconds.
CHECK_EVERY = timedelta(minutes=10)
REMINDER_AUTHOR = "reminders"  # `created_by` of the reminders' broadcasts: no organiser
MESSAGES = {
    BroadcastKind.STALLED: "broadcast.reminder.stalled",
    BroadcastKind.DIGEST: "broadcast.reminder.digest",
    BroadcastKind.CLOSING: "broadcast.reminder.closing",
    BroadcastKind.RESULTS: "broadcast.reminder.results",
}
_AUDIENCES = {
    BroadcastKind.STALLED: "unfinished",
    BroadcastKind.DIGEST: "all",
    BroadcastKind.CLOSING: "all",
    BroadcastKind.RESULTS: "all",
}
_RUNNING = (Status.OPEN, Status.VOTE_ONLY)


def reminder_texts(consultation: Consultation, kind: BroadcastKind) -> dict[str, str]:
    """The reminder's text in each of the consultation's locales, naming its question."""
    msgid = MESSAGES[kind]
    default = consultation.question.get(consultation.default_locale, "")
    return {
        locale: Translator(locale)(msgid, question=consultation.question.get(locale, default))
        for locale in consultation.locales
    }


async def plan_reminders(session: AsyncSession, consultation: Consultation, now: datetime) -> int:
    """Queue, in the caller's transaction, the reminders due at `now` for a consultation whose
    settings switch them on; how many messages were queued. Idempotent: what was queued is
    not queued again (stalled: once per participant; digest: once per `digest_days`; closing
    and results: once per consultation). A reminder an organiser paused or cancelled queues
    nothing."""
    assert consultation.id is not None
    # One planner per consultation at a time (PostgreSQL): two would each write the kind's
    # broadcast; SQLite holds the write lock already.
    await session.exec(
        select_rows(Consultation.id).where(Consultation.id == consultation.id).with_for_update()
    )
    switches = settings_of(consultation).broadcasts.reminders
    queued = 0
    if switches.stalled:
        queued += await _stalled(session, consultation, now, switches.stalled_after_hours)
    if switches.digest:
        queued += await _digest(session, consultation, now, switches.digest_days)
    if switches.closing:
        queued += await _closing(session, consultation, now, switches.closing_before_hours)
    if switches.results and settings_of(consultation).results_published:
        queued += await _results(session, consultation, now)
    return queued


async def reminder_broadcast(
    session: AsyncSession, consultation: Consultation, kind: BroadcastKind, now: datetime
) -> Broadcast | None:
    """The consultation's broadcast of reminder `kind`, written the first time; None while an
    organiser holds it (paused, cancelled)."""
    found = await session.exec(
        select_rows(Broadcast)
        .where(Broadcast.consultation_id == consultation.id, Broadcast.kind == kind)
        .order_by(col(Broadcast.id))
    )
    broadcast = found.first()
    if broadcast is None:
        assert consultation.id is not None
        broadcast = Broadcast(
            consultation_id=consultation.id,
            kind=kind,
            texts=reminder_texts(consultation, kind),
            button=True,
            audience=_AUDIENCES[kind],
            first_at=now,
            every=None,
            next_run_at=None,  # occurrences are the reminders' to decide, not plan_due's
            state=BroadcastState.SCHEDULED,
            created_by=REMINDER_AUTHOR,
            created_at=now,
            updated_at=now,
        )
        session.add(broadcast)
        await session.flush()
    if broadcast.state in (BroadcastState.PAUSED, BroadcastState.CANCELLED):
        return None
    return broadcast


def _narrowed(recipients: Select[Any], *where: Any) -> Select[Any]:
    chosen = materialized(recipients, "chosen")
    return select(chosen.c.participant_id, chosen.c.channel, chosen.c.locale).where(
        *(condition(chosen.c.participant_id) for condition in where)
    )


def _last_vote(consultation_id: int, participant: Any) -> Any:
    """When the participant last voted in the consultation (None if never)."""
    voted_on = aliased(Proposal)  # not the digest's Proposal, which it would correlate to
    return (
        select(func.max(col(Vote.updated_at)))
        .join(voted_on, col(voted_on.id) == col(Vote.proposal_id))
        .where(
            col(Vote.participant_id) == participant,
            col(voted_on.consultation_id) == consultation_id,
        )
        .correlate_except(Vote, voted_on)
        .scalar_subquery()
    )


def _joined(consultation_id: int, participant: Any) -> Any:
    return (
        select(col(Participation.created_at))
        .where(
            col(Participation.participant_id) == participant,
            col(Participation.consultation_id) == consultation_id,
        )
        .correlate_except(Participation)
        .scalar_subquery()
    )


def _reminded(broadcast_id: int, participant: Any, since: datetime | None = None) -> Any:
    """Whether the participant had a message of `broadcast_id` (since `since`), as 1 or 0.
    Only their own index is read (the broadcast is matched by CASE, as the weekly cap does):
    the statistics of a table that just grew cannot lead the database to read every message
    of the broadcast for each participant."""
    mine = col(BroadcastMessage.broadcast_id) == broadcast_id
    if since is not None:
        mine = and_(mine, col(BroadcastMessage.created_at) > since)
    return (
        select(func.coalesce(func.max(case((mine, 1), else_=0)), 0))
        .where(col(BroadcastMessage.participant_id) == participant)
        .scalar_subquery()
    )


def _checked(broadcast: Broadcast, now: datetime) -> bool:
    """Whether a reminder looks for whom to remind at `now`: at most every CHECK_EVERY (its
    `updated_at` says when it last looked), since looking reads every participant."""
    if broadcast.created_at != now and now - broadcast.updated_at < CHECK_EVERY:
        return False
    broadcast.updated_at = now
    return True


async def _stalled(
    session: AsyncSession, consultation: Consultation, now: datetime, hours: int
) -> int:
    broadcast = await reminder_broadcast(session, consultation, BroadcastKind.STALLED, now)
    if broadcast is None or broadcast.id is None or consultation.status not in _RUNNING:
        return 0
    if not _checked(broadcast, now):
        return 0
    cid, bid = consultation.id or 0, broadcast.id
    since = now - timedelta(hours=hours)
    recipients = _narrowed(
        participant_recipients(
            consultation, parse_audience(_AUDIENCES[BroadcastKind.STALLED]), now
        ),
        lambda p: func.coalesce(_last_vote(cid, p), _joined(cid, p)) <= since,
        lambda p: _reminded(bid, p) == 0,
    )
    return await _occur(session, broadcast, consultation, now, recipients)


async def _digest(
    session: AsyncSession, consultation: Consultation, now: datetime, days: int
) -> int:
    broadcast = await reminder_broadcast(session, consultation, BroadcastKind.DIGEST, now)
    if broadcast is None or broadcast.id is None or consultation.status not in _RUNNING:
        return 0
    if not _checked(broadcast, now):
        return 0
    cid, bid = consultation.id or 0, broadcast.id
    latest = (
        await session.exec(
            select_rows(func.max(col(Proposal.updated_at))).where(
                col(Proposal.consultation_id) == cid,
                col(Proposal.status) == ProposalStatus.ACCEPTED,
            )
        )
    ).one()
    if latest is None:
        return 0

    # When each participant last looked: their last vote here, or when they joined; once per
    # participant (a CTE computed first), not once per proposal compared with it.
    chosen = materialized(
        participant_recipients(consultation, parse_audience("all"), now), "chosen"
    )
    participant = chosen.c.participant_id
    seen = materialized(
        select(
            participant,
            chosen.c.channel,
            chosen.c.locale,
            func.coalesce(_last_vote(cid, participant), _joined(cid, participant)).label("at"),
        ),
        "seen",
    )
    # News: a proposal accepted (its last decision) since then, that someone else wrote. The
    # newest acceptance is compared first: for who is up to date, no proposal is read.
    news = exists().where(
        col(Proposal.consultation_id) == cid,
        col(Proposal.status) == ProposalStatus.ACCEPTED,
        col(Proposal.updated_at) > seen.c.at,
        func.coalesce(col(Proposal.author_id), 0) != seen.c.participant_id,
    )
    recipients = select(seen.c.participant_id, seen.c.channel, seen.c.locale).where(
        seen.c.at < literal(latest, UTCDateTime()),
        news,
        _reminded(bid, seen.c.participant_id, now - timedelta(days=days)) == 0,
    )
    return await _occur(session, broadcast, consultation, now, recipients)


async def _closing(
    session: AsyncSession, consultation: Consultation, now: datetime, hours: int
) -> int:
    ends_at = consultation.ends_at
    if ends_at is None or consultation.status not in _RUNNING:
        return 0
    fire_at = ends_at - timedelta(hours=hours)
    if not fire_at <= now < ends_at:
        return 0
    broadcast = await reminder_broadcast(session, consultation, BroadcastKind.CLOSING, now)
    if broadcast is None:
        return 0
    recipients = participant_recipients(consultation, parse_audience("all"), now)
    return await _occur(session, broadcast, consultation, now, recipients, fire_at=fire_at)


async def _results(session: AsyncSession, consultation: Consultation, now: datetime) -> int:
    broadcast = await reminder_broadcast(session, consultation, BroadcastKind.RESULTS, now)
    if broadcast is None:
        return 0
    recipients = participant_recipients(consultation, parse_audience("all"), now)
    # One occurrence, at the moment the reminder was first written: a second call finds it.
    first = broadcast.first_at
    return await _occur(session, broadcast, consultation, now, recipients, fire_at=first)


async def _occur(
    session: AsyncSession,
    broadcast: Broadcast,
    consultation: Consultation,
    now: datetime,
    recipients: Select[Any],
    *,
    fire_at: datetime | None = None,
) -> int:
    once = fire_at is not None  # closing and results: one occurrence, even with nobody in it
    planned = await plan_occurrence(
        session,
        broadcast,
        consultation,
        fire_at or now,
        now,
        recipients,
        keep_empty=once,
    )
    return 0 if planned is None else planned.queued


__all__ = ["MESSAGES", "plan_reminders", "reminder_broadcast", "reminder_texts"]

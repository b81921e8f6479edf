"""A consultation's crowd for the dashboard's tests: two camps of participants who vote in
opposite ways (so that opinion groups form), recruited from two sources, on two channels, over
two days, with their age answered; and the scheduler's lease held by the test, so that the
server's own scheduler computes nothing the test did not ask for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bots.scheduler import LEASE
from core.models import (
    ChannelIdentity,
    Consultation,
    Participant,
    Participation,
    Proposal,
    ResultSnapshot,
    SchedulerLease,
    VoteKey,
)
from core.results.recompute import recompute_results
from core.voting import record_vote
from tests.support import Clock

Sessions = async_sessionmaker[AsyncSession]
CAMP = 12  # people per camp
SECRET_ADDRESS = "+33600000042"  # a delivery address that must never reach a page


async def hold_the_scheduler(sessions: Sessions) -> None:
    """Hold the scheduler's lease as another process would (until 2100)."""
    until = datetime(2100, 1, 1, tzinfo=UTC)
    async with sessions() as session, session.begin():
        lease = await session.get(SchedulerLease, LEASE)
        lease = lease or SchedulerLease(name=LEASE, holder="", expires_at=until)
        lease.holder, lease.expires_at = "the-test", until
        session.add(lease)


async def crowd(
    sessions: Sessions,
    consultation: Consultation,
    clock: Clock,
    *,
    hasty: int | None = None,
    offset: int = 0,
) -> None:
    """2 x CAMP participants: camp A agrees with p1..p7 and disagrees with p8..p14 (English
    texts), camp B the other way round; half come by "poster" on Telegram the first day, half
    by "radio" on WhatsApp the next. `hasty`: only that many, all agreeing, each answering
    every card at the same instant (faster than anyone reads: untrusted). `offset` keeps
    identities apart between calls."""
    assert consultation.id is not None
    async with sessions() as session, session.begin():
        found = await session.exec(
            select(Proposal).where(
                Proposal.consultation_id == consultation.id, Proposal.locale == "en"
            )
        )
        by_ref = {p.ref: p.id for p in found}
        for n in range(hasty or 2 * CAMP):
            camp_a = n % 2 == 0
            second_day = n >= CAMP
            when = clock() if not second_day else clock().replace(day=clock().day + 1)
            participant = Participant(created_at=when)
            session.add(participant)
            await session.flush()
            assert participant.id is not None
            session.add(
                ChannelIdentity(
                    channel="whatsapp" if second_day else "telegram",
                    identity_hash=f"{n + offset:064x}",
                    address=SECRET_ADDRESS if n == 0 else None,
                    participant_id=participant.id,
                    created_at=when,
                )
            )
            session.add(
                Participation(
                    participant_id=participant.id,
                    consultation_id=consultation.id,
                    source="radio" if second_day else "poster",
                    consented_at=when,
                    profile={"age": "young" if n % 3 else "old"},
                    created_at=when,
                    updated_at=when,
                )
            )
            for i in range(1, 15):
                agrees = (i <= 7) == camp_a
                if hasty:
                    key = VoteKey.AGREE
                elif i == 14 and n % 4 == 0:
                    key = VoteKey.NEUTRAL  # some spread within a camp
                else:
                    key = VoteKey.AGREE if agrees else VoteKey.DISAGREE
                proposal_id = by_ref[f"p{i}.en"]
                assert proposal_id is not None
                at = when if hasty else when + timedelta(seconds=20 * i)  # as a person reads
                await record_vote(session, participant.id, proposal_id, key, trusted=True, now=at)


async def compute(sessions: Sessions, consultation: Consultation, clock: Clock) -> None:
    """The results computed and stored, as the scheduler's job does."""
    async with sessions() as session, session.begin():
        await recompute_results(session, consultation, clock())


async def snapshots(sessions: Sessions) -> int:
    async with sessions() as session:
        return len(list(await session.exec(select(ResultSnapshot))))

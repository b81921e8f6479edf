"""The moderation queue: the next pending proposal for a moderator, locked for them a while.

A lock is two columns of the proposal's row (`locked_by`, `locked_until`), written by the
transaction that serves it. On PostgreSQL the served row is taken with
`SELECT ... FOR UPDATE SKIP LOCKED`: a second moderator asking at the same moment passes over
it, and one whose query started before the first committed re-reads the row (PostgreSQL
re-checks a row updated meanwhile) and finds it locked. On SQLite every transaction takes the
write lock as it begins (`core.sqlite`), so servings run one after the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import case, func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.definitions import settings_of
from core.models import Consultation, Proposal, ProposalEvent, ProposalStatus
from core.moderation.errors import AlreadyDecided, Locked, UnknownProposal
from core.moderation.flags import Flag, flagged, flags_of, has_flag

QUEUE_PAGE = 50


class QueueOrder(StrEnum):
    """Which pending proposal comes next.

    `oldest`: the oldest first. `flagged`: the oldest flagged one first (`core.moderation.flags`),
    then the oldest. `author-batch`: the author of the proposal the moderator decided last goes
    on, their next pending proposal first (a series read together), then the oldest.
    """

    OLDEST = "oldest"
    FLAGGED = "flagged"
    AUTHOR_BATCH = "author-batch"


@dataclass(frozen=True)
class Served:
    """A pending proposal as a moderator sees it: no author, only what deciding needs."""

    id: int
    text: str
    locale: str
    created_at: datetime
    locked_by: str | None
    locked_until: datetime | None
    flags: tuple[Flag, ...]


def _served(proposal: Proposal) -> Served:
    assert proposal.id is not None
    return Served(
        proposal.id,
        proposal.text,
        proposal.locale,
        proposal.created_at,
        proposal.locked_by,
        proposal.locked_until,
        flags_of(proposal),
    )


def lock_time(consultation: Consultation) -> timedelta:
    """How long a served proposal stays with its moderator (the consultation's setting)."""
    return timedelta(seconds=settings_of(consultation).moderation_lock_seconds)


def held_by_another(proposal: Proposal, organiser: str, now: datetime) -> bool:
    """Whether someone else was served `proposal` and their lock still runs."""
    return (
        proposal.locked_by is not None
        and proposal.locked_by != organiser
        and proposal.locked_until is not None
        and proposal.locked_until > now
    )


def _pending(consultation_id: int) -> Any:
    return select(Proposal).where(
        Proposal.consultation_id == consultation_id,
        Proposal.status == ProposalStatus.PENDING,
    )


def _free_for(query: Any, organiser: str, now: datetime) -> Any:
    """Rows of `query` nobody else holds, oldest first, the first one locked for this
    transaction (others' transactions pass over it)."""
    return (
        query.where(
            or_(
                col(Proposal.locked_until).is_(None),
                col(Proposal.locked_until) <= now,
                col(Proposal.locked_by) == organiser,
            )
        )
        .order_by(col(Proposal.created_at), col(Proposal.id))
        .limit(1)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )


async def _last_author(session: AsyncSession, consultation_id: int, organiser: str) -> int | None:
    """The author of the proposal this organiser decided last in the consultation."""
    found = await session.exec(
        select(Proposal.author_id)
        .join(ProposalEvent, col(ProposalEvent.proposal_id) == col(Proposal.id))
        .where(ProposalEvent.moderator == organiser, Proposal.consultation_id == consultation_id)
        .order_by(col(ProposalEvent.id).desc())
        .limit(1)
    )
    return found.first()


async def _preferences(
    session: AsyncSession, consultation_id: int, organiser: str, now: datetime, order: QueueOrder
) -> list[Any]:
    """The queries to try in turn, each the pending proposals it prefers."""
    pending = _pending(consultation_id)
    # What this organiser holds already comes first: asking `next` again (a reload, a lost
    # answer) gives the same proposal instead of piling up locks.
    held = pending.where(Proposal.locked_by == organiser, col(Proposal.locked_until) > now)
    preferences = [held]
    if order is QueueOrder.FLAGGED:
        preferences.append(pending.where(flagged()))
    if order is QueueOrder.AUTHOR_BATCH:
        author = await _last_author(session, consultation_id, organiser)
        if author is not None:
            preferences.append(pending.where(Proposal.author_id == author))
    preferences.append(pending)
    return preferences


async def next_for(
    session: AsyncSession,
    consultation_id: int,
    organiser: str,
    now: datetime,
    *,
    order: QueueOrder = QueueOrder.OLDEST,
) -> Served | None:
    """Serve `organiser` the next pending proposal nobody else holds and lock it for them
    (the consultation's `moderation_lock_seconds`); None when there is none.

    Runs in the caller's transaction: the lock holds once it commits.
    """
    consultation = await session.get(Consultation, consultation_id)
    if consultation is None:
        return None
    for query in await _preferences(session, consultation_id, organiser, now, order):
        proposal = (await session.exec(_free_for(query, organiser, now))).first()
        if proposal is not None:
            proposal.locked_by = organiser
            proposal.locked_until = now + lock_time(consultation)
            session.add(proposal)
            await session.flush()
            return _served(proposal)
    return None


async def locked_proposal(session: AsyncSession, proposal_id: int) -> Proposal:
    """The proposal, its row locked until the caller's transaction ends (PostgreSQL; SQLite's
    transactions are serial already) and read afresh. Raises UnknownProposal."""
    found = await session.exec(
        select(Proposal)
        .where(Proposal.id == proposal_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    proposal = found.first()
    if proposal is None:
        raise UnknownProposal(proposal_id)
    return proposal


async def renew_lock(
    session: AsyncSession, proposal_id: int, organiser: str, now: datetime
) -> datetime:
    """Keep a served proposal for `organiser` another lock time; returns the new end.

    Raises UnknownProposal, AlreadyDecided (it is no longer pending), Locked (another
    moderator holds it). A lapsed lock nobody took meanwhile is taken again.
    """
    proposal = await locked_proposal(session, proposal_id)
    if proposal.status != ProposalStatus.PENDING:
        raise AlreadyDecided(proposal.status)
    if held_by_another(proposal, organiser, now):
        assert proposal.locked_by is not None and proposal.locked_until is not None
        raise Locked(proposal.locked_by, proposal.locked_until)
    consultation = await session.get(Consultation, proposal.consultation_id)
    assert consultation is not None
    proposal.locked_by = organiser
    proposal.locked_until = now + lock_time(consultation)
    session.add(proposal)
    return proposal.locked_until


async def pending_proposals(
    session: AsyncSession,
    consultation_id: int,
    *,
    limit: int = QUEUE_PAGE,
    offset: int = 0,
    flag: Flag | None = None,
    flagged_first: bool = False,
) -> tuple[list[Served], int]:
    """A page of the consultation's pending proposals, oldest first (the flagged ones before
    the others if `flagged_first`), and how many are pending; only those with `flag` if given."""
    condition = [
        Proposal.consultation_id == consultation_id,
        Proposal.status == ProposalStatus.PENDING,
    ]
    if flag is not None:
        condition.append(has_flag(flag))
    total = (await session.exec(select(func.count()).where(*condition))).one()
    order: list[Any] = [col(Proposal.created_at), col(Proposal.id)]
    if flagged_first:
        order.insert(0, case((flagged(), 0), else_=1))
    found = await session.exec(
        select(Proposal).where(*condition).order_by(*order).limit(limit).offset(offset)
    )
    return [_served(p) for p in found], int(total)

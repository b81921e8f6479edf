"""What the organisers' console reads of a consultation besides the queue: its figures, a
filtered list of proposals for bulk decisions, and an author's other proposals.

Nothing here names a participant: an author is reached through one of their proposals and
only their other proposals come back (ids, texts, statuses), never who wrote them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, literal
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Participation, Proposal, ProposalStatus

LIST_PAGE = 50
LIST_PAGE_MAX = 200
OTHERS_SHOWN = 10


@dataclass(frozen=True)
class Overview:
    """A consultation's figures: participants, votes, proposals by status, the backlog.

    `votes` counts every vote on the consultation's proposals (from their counters);
    `oldest_pending_age` is None when nothing waits for moderation.
    """

    participants: int
    votes: int
    by_status: dict[str, int]
    pending: int
    oldest_pending_age: timedelta | None


@dataclass(frozen=True)
class Listed:
    """A proposal in a list: what a moderator reads and decides on, no author."""

    id: int
    text: str
    locale: str
    status: str
    created_at: datetime
    flags: tuple[str, ...]


async def consultation_overview(
    session: AsyncSession, consultation_id: int, now: datetime
) -> Overview:
    """The consultation's figures as of `now` (four small aggregate queries)."""
    participants = (
        await session.exec(
            select(func.count())
            .select_from(Participation)
            .where(Participation.consultation_id == consultation_id)
        )
    ).one()
    votes = (
        await session.exec(
            select(func.coalesce(func.sum(Proposal.vote_count), 0)).where(
                Proposal.consultation_id == consultation_id
            )
        )
    ).one()
    grouped = await session.exec(
        select(Proposal.status, func.count())
        .where(Proposal.consultation_id == consultation_id)
        .group_by(col(Proposal.status))
    )
    by_status = {status.value: 0 for status in ProposalStatus}
    for status, count in grouped:
        by_status[status] = int(count)
    oldest = (
        await session.exec(
            select(func.min(Proposal.created_at)).where(
                Proposal.consultation_id == consultation_id,
                Proposal.status == ProposalStatus.PENDING,
            )
        )
    ).one()
    age = None if oldest is None else max(now - oldest, timedelta(0))
    return Overview(
        int(participants), int(votes), by_status, by_status[ProposalStatus.PENDING], age
    )


def _listed(proposal: Proposal) -> Listed:
    assert proposal.id is not None
    return Listed(
        proposal.id,
        proposal.text,
        proposal.locale,
        proposal.status,
        proposal.created_at,
        tuple(proposal.flags.split()),
    )


def _escaped(search: str) -> str:
    return search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def proposals_matching(
    session: AsyncSession,
    consultation_id: int,
    *,
    status: str | None = ProposalStatus.PENDING,
    search: str | None = None,
    flag: str | None = None,
    ids: tuple[int, ...] | None = None,
    limit: int = LIST_PAGE,
    offset: int = 0,
) -> tuple[list[Listed], int]:
    """A page of the consultation's proposals with `status` (None: any) whose text contains
    `search` (case-insensitive) and which carry `flag`, oldest first, and how many match;
    `ids` narrows to those."""
    where: list[Any] = [Proposal.consultation_id == consultation_id]
    if status is not None:
        where.append(Proposal.status == status)
    if search:
        where.append(col(Proposal.text).ilike(f"%{_escaped(search)}%", escape="\\"))
    if flag:
        # `flags` holds the values separated by spaces: padded, a value matches whole.
        padded = literal(" ") + col(Proposal.flags) + literal(" ")
        where.append(padded.like(f"% {_escaped(flag)} %", escape="\\"))
    if ids is not None:
        where.append(col(Proposal.id).in_(ids))
    total = (await session.exec(select(func.count()).select_from(Proposal).where(*where))).one()
    limit = max(1, min(limit, LIST_PAGE_MAX))
    found = await session.exec(
        select(Proposal)
        .where(*where)
        .order_by(col(Proposal.created_at), col(Proposal.id))
        .limit(limit)
        .offset(max(0, offset))
    )
    return [_listed(p) for p in found], int(total)


async def author_other_proposals(
    session: AsyncSession, proposal_id: int, *, limit: int = OTHERS_SHOWN
) -> list[Listed]:
    """The newest other proposals of this proposal's author in the same consultation (none for
    a seed proposal, which has no author)."""
    proposal = await session.get(Proposal, proposal_id)
    if proposal is None or proposal.author_id is None:
        return []
    found = await session.exec(
        select(Proposal)
        .where(
            Proposal.author_id == proposal.author_id,
            Proposal.consultation_id == proposal.consultation_id,
            Proposal.id != proposal_id,
        )
        .order_by(col(Proposal.id).desc())
        .limit(limit)
    )
    return [_listed(p) for p in found]


async def pending_counts(
    session: AsyncSession, consultation_ids: frozenset[int] | None
) -> dict[int, int]:
    """How many proposals wait for moderation in each consultation (all when None)."""
    query = select(Proposal.consultation_id, func.count()).where(
        Proposal.status == ProposalStatus.PENDING
    )
    if consultation_ids is not None:
        query = query.where(col(Proposal.consultation_id).in_(consultation_ids))
    found = await session.exec(query.group_by(col(Proposal.consultation_id)))
    return {consultation_id: int(count) for consultation_id, count in found}

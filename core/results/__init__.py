"""What participants are told about how others voted."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Proposal, ProposalStatus, VoteKey
from core.voting import tallies_of


@dataclass(frozen=True)
class Split:
    """Shares of agree / disagree / neutral among a proposal's votes."""

    proposal: Proposal
    votes: int
    agree: float
    disagree: float
    neutral: float


async def splits(session: AsyncSession, proposals: list[Proposal]) -> list[Split]:
    """The vote split of each proposal, read from its counters (never from the votes)."""
    counts = await tallies_of(session, [p.id for p in proposals if p.id is not None])
    result = []
    for proposal in proposals:
        assert proposal.id is not None
        tally = counts[proposal.id]
        votes = sum(tally[key] for key in VoteKey)
        if votes == 0:
            continue
        result.append(
            Split(
                proposal=proposal,
                votes=votes,
                agree=tally[VoteKey.AGREE] / votes,
                disagree=tally[VoteKey.DISAGREE] / votes,
                neutral=tally[VoteKey.NEUTRAL] / votes,
            )
        )
    return result


async def top_agreed(
    session: AsyncSession, consultation_id: int, locale: str, min_votes: int, limit: int
) -> list[Split]:
    """The most agreed-upon accepted proposals with at least `min_votes` votes."""
    found = await session.exec(
        select(Proposal).where(
            Proposal.consultation_id == consultation_id,
            Proposal.status == ProposalStatus.ACCEPTED,
            Proposal.locale == locale,
            col(Proposal.vote_count) >= min_votes,
        )
    )
    ranked = sorted(await splits(session, list(found)), key=lambda s: (-s.agree, -s.votes))
    return ranked[:limit]

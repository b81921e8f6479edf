"""Which proposals a participant is shown next.

For now a simple fair order: fewest votes first (ties broken at random, so that two participants
starting together do not see the same cards), only accepted proposals in the participant's
language, never one they already voted on, never their own. The sequencing issue replaces the
body of `next_proposals_for`; the flow only calls this function.
"""

from __future__ import annotations

import random

from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Consultation, Proposal, ProposalStatus, Vote

_CANDIDATES_PER_CARD = 5


async def next_proposals_for(
    session: AsyncSession,
    participant_id: int,
    consultation: Consultation,
    locale: str,
    n: int,
    *,
    exclude: frozenset[int] = frozenset(),
    rng: random.Random,
) -> list[Proposal]:
    """Up to `n` proposals for the participant's next cards, best first.

    `exclude` holds proposals already shown in this sequence (skipped ones, for instance).
    """
    voted = select(Vote.proposal_id).where(Vote.participant_id == participant_id)
    query = (
        select(Proposal)
        .where(
            Proposal.consultation_id == consultation.id,
            Proposal.status == ProposalStatus.ACCEPTED,
            Proposal.locale == locale,
            or_(col(Proposal.author_id).is_(None), col(Proposal.author_id) != participant_id),
            col(Proposal.id).not_in(voted),
        )
        .order_by(col(Proposal.vote_count), col(Proposal.id))
        .limit(n * _CANDIDATES_PER_CARD + len(exclude))
    )
    candidates = [p for p in await session.exec(query) if p.id not in exclude]
    keyed = [(p.vote_count, rng.random(), p) for p in candidates]
    keyed.sort(key=lambda item: (item[0], item[1]))
    return [p for _, _, p in keyed[:n]]

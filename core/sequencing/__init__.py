"""Which proposals a participant is shown next.

`next_proposals_for` gathers the eligible proposals with their sequence-vote counters, then
lets the consultation's algorithm (`settings.sequencing`, see `algorithms`) fill the sequence
under the hard rules of `rules`: only accepted proposals, in the participant's language, never
one they voted on or already saw in this sequence, never their own, at most one per author and
no two near-duplicates in a sequence.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.definitions import settings_of
from core.i18n import Translator
from core.models import Consultation, Proposal, ProposalStatus, Tally, Vote
from core.sequencing.algorithms import ALGORITHMS
from core.sequencing.rules import Candidate, SequenceBuilder

__all__ = ["ALGORITHMS", "Candidate", "SequenceBuilder", "next_proposals_for"]

FRESH_BELOW = 10  # votes: proposals below it are "new" for every algorithm's purposes
FRESH_LIMIT = 64
SAMPLE_LIMIT = 512


async def _candidates(
    session: AsyncSession, proposals: Sequence[Proposal], prefix: str
) -> list[Candidate]:
    ids = [p.id for p in proposals if p.id is not None]
    counts: dict[int, dict[str, int]] = {pid: {} for pid in ids}
    if ids:
        rows = await session.exec(
            select(Tally).where(col(Tally.proposal_id).in_(ids), col(Tally.trusted).is_(True))
        )
        for row in rows:
            counts[row.proposal_id][row.key] = row.count
    return [
        Candidate(
            id=p.id,
            author_id=p.author_id,
            created=p.created_at.timestamp(),
            text=p.text,
            counts=counts[p.id],
            prefix=prefix,
        )
        for p in proposals
        if p.id is not None
    ]


async def next_proposals_for(
    session: AsyncSession,
    participant_id: int,
    consultation: Consultation,
    locale: str,
    n: int,
    *,
    shown: Sequence[int] = (),
    rng: random.Random,
) -> list[Proposal]:
    """Up to `n` proposals for the participant's next cards, in the order to show them.

    `shown` are the proposals already shown in this sequence (voted on or skipped). The pool
    is bounded whatever the size of the consultation: the oldest proposals that still need
    votes (fewer than FRESH_BELOW) and a uniform sample of the others, read from a random
    point of the shuffle index, so one selection costs the same with 100 or 100,000 proposals.
    """
    settings = settings_of(consultation)
    prefix = settings.prefix.get(locale) or Translator(locale)("proposal.prefix")
    voted = select(Vote.proposal_id).where(Vote.participant_id == participant_id)
    eligible = select(Proposal).where(
        Proposal.consultation_id == consultation.id,
        Proposal.status == ProposalStatus.ACCEPTED,
        Proposal.locale == locale,
        or_(col(Proposal.author_id).is_(None), col(Proposal.author_id) != participant_id),
        col(Proposal.id).not_in(voted),
        col(Proposal.id).not_in(list(shown)),
    )
    fresh = await session.exec(
        eligible.where(col(Proposal.vote_count) < FRESH_BELOW)
        .order_by(col(Proposal.created_at), col(Proposal.id))
        .limit(FRESH_LIMIT)
    )
    tested = eligible.where(col(Proposal.vote_count) >= FRESH_BELOW)
    pivot = rng.random()
    sample = list(
        await session.exec(
            tested.where(col(Proposal.shuffle) >= pivot)
            .order_by(col(Proposal.shuffle))
            .limit(SAMPLE_LIMIT)
        )
    )
    if len(sample) < SAMPLE_LIMIT:  # wrap around the index
        sample += await session.exec(
            tested.where(col(Proposal.shuffle) < pivot)
            .order_by(col(Proposal.shuffle))
            .limit(SAMPLE_LIMIT - len(sample))
        )
    pool = [*fresh, *sample]
    by_id = {p.id: p for p in pool}
    already = await session.exec(select(Proposal).where(col(Proposal.id).in_(list(shown))))
    builder = SequenceBuilder(n, await _candidates(session, list(already), prefix))
    candidates = await _candidates(session, list(by_id.values()), prefix)
    ALGORITHMS[settings.sequencing](builder, candidates, rng)
    return [by_id[card.id] for card in builder.cards]

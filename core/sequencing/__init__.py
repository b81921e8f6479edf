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
from datetime import datetime

from sqlmodel import SQLModel, col, or_, select
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


# What an algorithm needs of a proposal, read as plain rows: a pool holds hundreds of them and
# their counters thousands, which as ORM objects cost a hundred times what SQLite does.
_PROPOSAL = SQLModel.metadata.tables["proposal"].c
_CANDIDATE_COLUMNS = (_PROPOSAL.id, _PROPOSAL.author_id, _PROPOSAL.created_at, _PROPOSAL.text)
_Row = tuple[int, int | None, datetime, str]


async def _candidates(session: AsyncSession, rows: Sequence[_Row], prefix: str) -> list[Candidate]:
    """`rows` as candidates with their trusted counters (the ones at zero are not read)."""
    counts: dict[int, dict[str, int]] = {row[0]: {} for row in rows}
    if counts:
        tallies = await session.exec(
            select(col(Tally.proposal_id), col(Tally.key), col(Tally.count)).where(
                col(Tally.proposal_id).in_(list(counts)),
                col(Tally.trusted).is_(True),
                col(Tally.count) != 0,
            )
        )
        for proposal_id, key, count in tallies:
            counts[proposal_id][key] = count
    return [
        Candidate(pid, author, created.timestamp(), text, counts[pid], prefix)
        for pid, author, created, text in rows
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
    eligible = select(*_CANDIDATE_COLUMNS).where(
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
    pool = list({row[0]: row for row in [*fresh, *sample]}.values())
    already = await session.exec(
        select(*_CANDIDATE_COLUMNS).where(col(Proposal.id).in_(list(shown)))
    )
    builder = SequenceBuilder(n, await _candidates(session, list(already), prefix))
    ALGORITHMS[settings.sequencing](builder, await _candidates(session, pool, prefix), rng)
    chosen = [card.id for card in builder.cards]
    if not chosen:
        return []
    found = {
        p.id: p for p in await session.exec(select(Proposal).where(col(Proposal.id).in_(chosen)))
    }
    return [found[pid] for pid in chosen if pid in found]

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

from sqlalchemy import select as rows_of  # SQLModel's select takes at most 4 columns
from sqlmodel import SQLModel, col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.definitions import settings_of
from core.i18n import Translator
from core.models import Consultation, Proposal, ProposalStatus, QualificationKey, Tally, Vote
from core.sequencing.algorithms import ALGORITHMS, READS_QUALIFICATIONS
from core.sequencing.rules import Candidate, SequenceBuilder

__all__ = ["ALGORITHMS", "Candidate", "SequenceBuilder", "next_proposals_for"]

FRESH_BELOW = 10  # votes: proposals below it are "new" for every algorithm's purposes
FRESH_LIMIT = 64
SAMPLE_LIMIT = 512


# What an algorithm needs of a proposal, read as plain rows with the pool (the proposal keeps
# its trusted vote counts): a pool holds hundreds of proposals, which as ORM objects, with their
# counters' rows, cost a hundred times what the database does.
_PROPOSAL = SQLModel.metadata.tables["proposal"].c
_CANDIDATE_COLUMNS = (
    _PROPOSAL.id,
    _PROPOSAL.author_id,
    _PROPOSAL.created_at,
    _PROPOSAL.text,
    _PROPOSAL.agree_count,
    _PROPOSAL.disagree_count,
    _PROPOSAL.neutral_count,
)
_Row = tuple[int, int | None, datetime, str, int, int, int]


async def _candidates(
    session: AsyncSession, rows: Sequence[_Row], prefix: str, qualifications: bool
) -> list[Candidate]:
    """`rows` as candidates; with their trusted qualification counters if `qualifications`
    (those at zero are not read)."""
    counts: dict[int, dict[str, int]] = {
        pid: {"agree": agree, "disagree": disagree, "neutral": neutral}
        for pid, _, _, _, agree, disagree, neutral in rows
    }
    if counts and qualifications:
        tallies = await session.exec(
            select(col(Tally.proposal_id), col(Tally.key), col(Tally.count)).where(
                col(Tally.proposal_id).in_(list(counts)),
                col(Tally.key).in_(list(QualificationKey)),
                col(Tally.trusted).is_(True),
                col(Tally.count) != 0,
            )
        )
        for proposal_id, key, count in tallies:
            counts[proposal_id][key] = count
    return [
        Candidate(pid, author, created.timestamp(), text, counts[pid], prefix)
        for pid, author, created, text, *_ in rows
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
    eligible = rows_of(*_CANDIDATE_COLUMNS).where(
        col(Proposal.consultation_id) == consultation.id,
        col(Proposal.status) == ProposalStatus.ACCEPTED,
        col(Proposal.locale) == locale,
        or_(col(Proposal.author_id).is_(None), col(Proposal.author_id) != participant_id),
        col(Proposal.id).not_in(voted),
        col(Proposal.id).not_in(list(shown)),
    )
    await session.flush()  # the rows below are read past the session: what it holds goes first
    connection = await session.connection()  # rows, not entities: see _CANDIDATE_COLUMNS
    fresh = await connection.execute(
        eligible.where(col(Proposal.vote_count) < FRESH_BELOW)
        .order_by(col(Proposal.created_at), col(Proposal.id))
        .limit(FRESH_LIMIT)
    )
    tested = eligible.where(col(Proposal.vote_count) >= FRESH_BELOW)
    pivot = rng.random()
    sample = list(
        await connection.execute(
            tested.where(col(Proposal.shuffle) >= pivot)
            .order_by(col(Proposal.shuffle))
            .limit(SAMPLE_LIMIT)
        )
    )
    if len(sample) < SAMPLE_LIMIT:  # wrap around the index
        sample += await connection.execute(
            tested.where(col(Proposal.shuffle) < pivot)
            .order_by(col(Proposal.shuffle))
            .limit(SAMPLE_LIMIT - len(sample))
        )
    pool: list[_Row] = list({row[0]: tuple(row) for row in [*fresh, *sample]}.values())
    already = await connection.execute(
        rows_of(*_CANDIDATE_COLUMNS).where(col(Proposal.id).in_(list(shown)))
    )
    shown_rows: list[_Row] = [tuple(row) for row in already]
    builder = SequenceBuilder(n, await _candidates(session, shown_rows, prefix, False))
    qualifications = settings.sequencing in READS_QUALIFICATIONS
    pool_candidates = await _candidates(session, pool, prefix, qualifications)
    ALGORITHMS[settings.sequencing](builder, pool_candidates, rng)
    chosen = [card.id for card in builder.cards]
    if not chosen:
        return []
    found = {
        p.id: p for p in await session.exec(select(Proposal).where(col(Proposal.id).in_(chosen)))
    }
    return [found[pid] for pid in chosen if pid in found]

"""Which proposals a participant is shown next.

`next_proposals_for` gathers the eligible proposals with their sequence-vote counters, then
lets the consultation's algorithm (`settings.sequencing`, see `algorithms`) fill the sequence
under the hard rules of `rules`: only accepted proposals, in the participant's language, never
one they voted on or already saw in this sequence, never their own, at most one per author and
no two near-duplicates in a sequence.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import (
    CompoundSelect,
    DateTime,
    Integer,
    Select,
    bindparam,
    literal,
    or_,
    select,
    text,
    type_coerce,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from core.definitions import settings_of
from core.i18n import Translator
from core.models import Consultation, ProposalStatus, QualificationKey
from core.scoring import TESTED_FROM
from core.sequencing.algorithms import ALGORITHMS, READS_CONTENDERS, READS_QUALIFICATIONS
from core.sequencing.rules import Candidate, SequenceBuilder, choose_cards

__all__ = [
    "ALGORITHMS",
    "READS_CONTENDERS",
    "Candidate",
    "SequenceBuilder",
    "next_proposals_for",
]

FRESH_BELOW = TESTED_FROM  # votes: proposals below it are "new" for every algorithm's purposes
FRESH_LIMIT = 64
# With the contenders in the pool, the sample only has to find the outsiders worth a look.
# `consult bench sequencing --quick --large --sample-limit N` compares limits on a consultation
# of 2,000 proposals. At 10 votes per participant, `adaptive` reached P@10 >= 0.9 after a median
# 144,000 votes with 128 against 168,000 with 512 (3 seeds: a signal, not a proof), and a
# selection with its reads took about half as long (4-6 ms against 9, alternating runs).
SAMPLE_LIMIT = 128
# The current leaders by the stored contender scores (core.scoring.contender_scores), read next
# to the sample for the algorithms that rank them (READS_CONTENDERS): a sample of a large
# consultation holds few of its top 10, and an algorithm cannot settle a set it does not see.
CONSENSUS_CONTENDERS = 32
CONTROVERSY_CONTENDERS = 16


# What an algorithm needs of a proposal, read as plain rows with the pool (the proposal keeps
# its trusted vote counts): a pool holds hundreds of proposals, which as ORM objects, with their
# counters' rows, cost a hundred times what the database does. The pool's columns are all in
# the indexes that find it (ix_proposal_fair_order, ix_proposal_shuffle), so that the database
# answers from the index alone; texts are read apart, only for the candidates the algorithm
# compares (see rules.choose_cards). The statements are built once, with bound parameters:
# building their WHERE clauses anew cost more than running them.
_PROPOSALS, _VOTES, _TALLIES = (SQLModel.metadata.tables[t] for t in ("proposal", "vote", "tally"))
_PROPOSAL, _VOTE, _TALLY = _PROPOSALS.c, _VOTES.c, _TALLIES.c
_POOL_COLUMNS = (
    _PROPOSAL.id,
    _PROPOSAL.author_id,
    # As the driver gives it (naive on SQLite), converted by _seconds: making each an aware
    # datetime first (models.UTCDateTime) cost a millisecond a pool.
    type_coerce(_PROPOSAL.created_at, DateTime(timezone=True)),
    _PROPOSAL.agree_count,
    _PROPOSAL.disagree_count,
    _PROPOSAL.neutral_count,
)
_Row = tuple[int, int | None, datetime, int, int, int]

_ELIGIBLE = select(*_POOL_COLUMNS).where(
    _PROPOSAL.consultation_id == bindparam("b_consultation"),
    _PROPOSAL.status == ProposalStatus.ACCEPTED.value,
    _PROPOSAL.locale == bindparam("b_locale"),
    or_(_PROPOSAL.author_id.is_(None), _PROPOSAL.author_id != bindparam("b_participant")),
    _PROPOSAL.id.not_in(
        select(_VOTE.proposal_id).where(_VOTE.participant_id == bindparam("b_participant"))
    ),
    _PROPOSAL.id.not_in(bindparam("b_shown", expanding=True)),
)
_FRESH = (  # the oldest proposals that still need votes
    _ELIGIBLE.where(_PROPOSAL.vote_count < FRESH_BELOW)
    .order_by(_PROPOSAL.created_at, _PROPOSAL.id)
    .limit(FRESH_LIMIT)
)
_TESTED = _ELIGIBLE.where(_PROPOSAL.vote_count >= FRESH_BELOW)
_SAMPLE_FROM = (  # the others, from a random point of the shuffle index...
    _TESTED.where(_PROPOSAL.shuffle >= bindparam("b_pivot"))
    .order_by(_PROPOSAL.shuffle)
    .limit(SAMPLE_LIMIT)
)
_SAMPLE_BEFORE = (  # ...wrapping around it
    _TESTED.where(_PROPOSAL.shuffle < bindparam("b_pivot"))
    .order_by(_PROPOSAL.shuffle)
    .limit(bindparam("b_limit", type_=Integer))
)
# The current leaders of each ranking (their scores are kept by core.voting), walking a score
# index from the top: the order is the index's own (ties go to the better-measured proposal),
# so neither database sorts. New proposals score 0 (core.scoring.contender_scores): the walk
# stops above them, however many there are.
_CONTENDERS = tuple(
    _ELIGIBLE.where(score > 0)
    .order_by(score.desc(), _PROPOSAL.vote_count.desc(), _PROPOSAL.id.desc())
    .limit(limit)
    for score, limit in (
        (_PROPOSAL.agree_score, CONSENSUS_CONTENDERS),
        (_PROPOSAL.split_score, CONTROVERSY_CONTENDERS),
    )
)


def _in_one_statement(*parts: Select[Any]) -> tuple[CompoundSelect[Any], int]:
    """`parts` read by one statement, each row led by its part's number, and the last part's
    number: one round trip to the database instead of one per part (a millisecond less per
    selection on PostgreSQL, a third of one on SQLite). Each part keeps its own order and
    limit. The caller regroups the rows by part, so it relies only on each part's rows coming
    in that part's order; a test holds the pool equal to the one the benchmark builds, part
    by part, on both databases."""
    numbered = [
        select(literal(number).label("part"), *part.subquery().c)
        for number, part in enumerate(parts)
    ]
    return union_all(*numbered), len(parts) - 1


# The pool in one read, the sample last; all of it but the wrap around the shuffle index,
# which needs a pivot within SAMPLE_LIMIT tested proposals of its end (every selection, in a
# consultation with fewer tested proposals than that).
_POOLS = {
    False: _in_one_statement(_FRESH, _SAMPLE_FROM),
    True: _in_one_statement(_FRESH, *_CONTENDERS, _SAMPLE_FROM),  # for READS_CONTENDERS
}
# PostgreSQL plans a prepared statement anew at each execution as long as its estimates say a
# plan for the values at hand is cheaper than one for any value ("custom" plans). For the pool
# it chooses the same index walks whatever the values, and planning them cost as much as
# running them (0.54 ms against 0.52 on `consult bench sequencing`'s 30,000 proposals,
# EXPLAIN ANALYZE; 0.03 ms to plan once planned for any value). So the selection tells the
# turn's transaction to keep one plan per statement for every value, for the rest of it too:
# what follows in a turn are lookups and writes by primary key or by a list of ids (a card,
# the participant's position, the end of a sequence's summary), planned the same for any
# value. The SET costs a round trip of its own, about a tenth of a millisecond.
_ONE_PLAN = text("SET LOCAL plan_cache_mode = force_generic_plan")
_SHOWN = select(*_POOL_COLUMNS, _PROPOSAL.text).where(
    _PROPOSAL.id.in_(bindparam("b_shown", expanding=True))
)
_TEXTS = select(_PROPOSAL.id, _PROPOSAL.text).where(
    _PROPOSAL.id.in_(bindparam("b_proposals", expanding=True))
)
_QUALIFICATIONS = select(_TALLY.proposal_id, _TALLY.key, _TALLY.count).where(
    _TALLY.proposal_id.in_(bindparam("b_proposals", expanding=True)),
    _TALLY.key.in_([key.value for key in QualificationKey]),
    _TALLY.trusted.is_(True),
    _TALLY.count != 0,
)


_EPOCH = datetime(1970, 1, 1)


def _seconds(created: datetime) -> float:
    """The timestamp of a UTC datetime as the database returns it (naive from SQLite)."""
    return created.timestamp() if created.tzinfo else (created - _EPOCH).total_seconds()


async def _candidates(
    connection: AsyncConnection,
    rows: Sequence[_Row],
    prefix: str,
    qualifications: bool,
    texts: Mapping[int, str] | None = None,
) -> list[Candidate]:
    """`rows` as candidates, with their `texts` if given (else unread); with their trusted
    qualification counters if `qualifications` (those at zero are not read)."""
    counts: dict[int, dict[str, int]] = {
        pid: {"agree": agree, "disagree": disagree, "neutral": neutral}
        for pid, _, _, agree, disagree, neutral in rows
    }
    if counts and qualifications:
        tallies = await connection.execute(_QUALIFICATIONS, {"b_proposals": list(counts)})
        for proposal_id, key, count in tallies:
            counts[proposal_id][key] = count
    texts = texts or {}
    return [
        Candidate(pid, author, _seconds(created), texts.get(pid), counts[pid], prefix)
        for pid, author, created, *_ in rows
    ]


async def _read_texts(connection: AsyncConnection, candidates: Sequence[Candidate]) -> None:
    read = await connection.execute(_TEXTS, {"b_proposals": [c.id for c in candidates]})
    found: dict[int, str] = dict(read.all())
    for candidate in candidates:
        candidate.text = found.get(candidate.id, "")  # gone meanwhile: it resembles nothing


async def next_proposals_for(
    session: AsyncSession,
    participant_id: int,
    consultation: Consultation,
    locale: str,
    n: int,
    *,
    shown: Sequence[int] = (),
    rng: random.Random,
) -> list[Candidate]:
    """Up to `n` proposals for the participant's next cards, in the order to show them.

    `shown` are the proposals already shown in this sequence (voted on or skipped). The pool
    is bounded whatever the size of the consultation: the oldest proposals that still need
    votes (fewer than FRESH_BELOW), the current contenders of the consensus and controversy
    rankings (for the algorithms in READS_CONTENDERS), and a uniform sample of the others, read
    from a random point of the shuffle index, so one selection costs the same with 100 or
    100,000 proposals.
    The proposals come as the `Candidate`s the algorithm chose (id, author, text, counters),
    not as ORM objects: the caller needs their ids, and loading them would double the cost.
    """
    settings = settings_of(consultation)
    prefix = settings.prefix.get(locale) or Translator(locale)("proposal.prefix")
    await session.flush()  # the rows below are read past the session: what it holds goes first
    connection = await session.connection()  # rows, not entities: see _POOL_COLUMNS
    parameters = {
        "b_consultation": consultation.id,
        "b_locale": locale,
        "b_participant": participant_id,
        "b_shown": list(shown),
        "b_pivot": rng.random(),
    }
    statement, sample_part = _POOLS[settings.sequencing in READS_CONTENDERS]
    dialect = connection.dialect
    if dialect.name == "postgresql" and (dialect.server_version_info or ()) >= (12,):
        await connection.execute(_ONE_PLAN)  # plan_cache_mode: PostgreSQL 12 and newer
    parts: list[list[Sequence[Any]]] = [[] for _ in range(sample_part + 1)]
    # Rows taken all at once (`all`): iterating a result fetches them from the driver one by one.
    for part, *row in (await connection.execute(statement, parameters)).all():
        parts[part].append(row)  # in their part's order, whichever part the database ran first
    first = [row for rows in parts[:sample_part] for row in rows]
    sample = parts[sample_part]
    if len(sample) < SAMPLE_LIMIT:  # wrap around the index
        parameters["b_limit"] = SAMPLE_LIMIT - len(sample)
        sample += (await connection.execute(_SAMPLE_BEFORE, parameters)).all()
    pool: list[_Row] = list({row[0]: tuple(row) for row in [*first, *sample]}.values())
    in_sequence: list[Candidate] = []
    if shown:
        found = (await connection.execute(_SHOWN, parameters)).all()
        texts = {row[0]: row[-1] for row in found}
        rows: list[_Row] = [tuple(row[:-1]) for row in found]
        in_sequence = await _candidates(connection, rows, prefix, False, texts)
    qualifications = settings.sequencing in READS_QUALIFICATIONS
    candidates = await _candidates(connection, pool, prefix, qualifications)
    algorithm = ALGORITHMS[settings.sequencing]
    read_texts = partial(_read_texts, connection)
    return await choose_cards(algorithm, n, in_sequence, candidates, rng, read_texts)

"""Votes, qualifications and the per-proposal counters they keep up to date.

Every function here runs inside the caller's transaction: a vote and its counters are written
together or not at all (invariant 4).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Float, bindparam, case, func, insert, literal, or_, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import SQLModel, col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import (
    QUALIFICATIONS,
    Proposal,
    Qualification,
    QualificationKey,
    Tally,
    Vote,
    VoteKey,
)
from core.scoring import PRIOR, TESTED_FROM, contender_scores

COUNTED_KEYS: tuple[str, ...] = tuple(VoteKey) + tuple(QualificationKey)


class InvalidQualification(ValueError):
    """A qualification that does not go with the participant's vote on that proposal."""


async def add_proposal(session: AsyncSession, proposal: Proposal) -> Proposal:
    """Store a new proposal with its zeroed counters (so that votes only ever UPDATE them)."""
    session.add(proposal)
    await session.flush()
    assert proposal.id is not None
    for key in COUNTED_KEYS:
        for trusted in (True, False):
            session.add(Tally(proposal_id=proposal.id, key=key, trusted=trusted, count=0))
    await session.flush()
    return proposal


# The hot path's statements, built once: a vote is a handful of small statements, and building
# each WHERE clause anew cost more than running it. They are Core statements on the tables,
# which skip the ORM's unit of work; `_loaded` keeps objects already in the session in step.
_TALLIES = SQLModel.metadata.tables["tally"]
_PROPOSALS = SQLModel.metadata.tables["proposal"]
_VOTES = SQLModel.metadata.tables["vote"]
_TALLY, _PROPOSAL = _TALLIES.c, _PROPOSALS.c
_BUMP = (
    update(_TALLIES)
    .where(
        _TALLY.proposal_id == bindparam("b_proposal"),
        _TALLY.key == bindparam("b_key"),
        _TALLY.trusted == bindparam("b_trusted"),
    )
    .values(count=_TALLY.count + bindparam("b_by"))
)


def _scored(moved: dict[VoteKey, Any], votes: Any = _PROPOSAL.vote_count) -> dict[str, Any]:
    """The SET clause of a statement that gives the proposal's trusted counts the values in
    `moved` and its vote count the value `votes` (SQL expressions of the row as it was): those
    counts, and the contender scores they make. The scores are `core.scoring.contender_scores`,
    in SQL (tests hold the two exactly equal on both databases), so that one statement keeps
    the counts and their scores in step."""
    count = {key: moved.get(key, _PROPOSAL[f"{key}_count"]) for key in VoteKey}
    counted = count[VoteKey.AGREE] + count[VoteKey.DISAGREE] + count[VoteKey.NEUTRAL]
    counted += literal(1.0, Float)
    rate = (count[VoteKey.AGREE] + literal(PRIOR, Float)) / counted
    against = (count[VoteKey.DISAGREE] + literal(PRIOR, Float)) / counted
    new = votes < TESTED_FROM
    return {
        **{f"{key}_count": value for key, value in moved.items()},
        "agree_score": case((new, literal(0.0, Float)), else_=rate),
        "split_score": case((new, literal(0.0, Float)), (rate < against, rate), else_=against),
    }


# Per vote key: the proposal's vote count and its trusted count of that key (see Proposal).
_COUNT_VOTES = {
    key: update(_PROPOSALS)
    .where(_PROPOSAL.id == bindparam("b_proposal"))
    .values(
        vote_count=_PROPOSAL.vote_count + bindparam("b_votes"),
        **_scored(
            {key: _PROPOSAL[f"{key}_count"] + bindparam("b_trusted")},
            _PROPOSAL.vote_count + bindparam("b_votes"),
        ),
    )
    for key in VoteKey
}
_MOVE_VOTE = {
    (old, new): update(_PROPOSALS)
    .where(_PROPOSAL.id == bindparam("b_proposal"))
    .values(_scored({old: _PROPOSAL[f"{old}_count"] - 1, new: _PROPOSAL[f"{new}_count"] + 1}))
    for old in VoteKey
    for new in VoteKey
    if old != new
}
_RESCORED = _scored({})
_RESCORE = (  # the scores of the counts as they are, where they are not
    update(_PROPOSALS)
    .where(
        or_(
            _PROPOSAL.agree_score != _RESCORED["agree_score"],
            _PROPOSAL.split_score != _RESCORED["split_score"],
        )
    )
    .values(_RESCORED)
)
# A first vote is inserted and returns its id; a vote already there makes it return nothing.
_FIRST_VOTE = {
    dialect: insert_for(_VOTES)
    .on_conflict_do_nothing(index_elements=["participant_id", "proposal_id"])
    .returning(_VOTES.c.id)
    for dialect, insert_for in (("sqlite", sqlite_insert), ("postgresql", postgresql_insert))
}


def _held(session: AsyncSession, model: type[SQLModel], key: object) -> Any:
    """The object with primary key `key` if the session holds it, else None."""
    return session.sync_session.identity_map.get(session.sync_session.identity_key(model, key))


def _loaded(session: AsyncSession, model: type[SQLModel], key: object, name: str, by: int) -> None:
    """Move an attribute of the object with primary key `key` by `by`, if the session holds it
    (the statement above changed the row, not the object)."""
    found = _held(session, model, key)
    if found is not None:
        set_committed_value(found, name, getattr(found, name) + by)


def _loaded_proposal(session: AsyncSession, proposal_id: int, moved: dict[str, int]) -> None:
    """`_loaded` for a proposal whose counts moved by `moved` (attribute: change), with the
    contender scores those counts now make."""
    found = _held(session, Proposal, proposal_id)
    if found is None:
        return
    for name, by in moved.items():
        set_committed_value(found, name, getattr(found, name) + by)
    counts = found.agree_count, found.disagree_count, found.neutral_count
    scores = contender_scores(*counts, found.vote_count)
    set_committed_value(found, "agree_score", scores[0])
    set_committed_value(found, "split_score", scores[1])


async def _bump(session: AsyncSession, proposal_id: int, key: str, trusted: bool, by: int) -> None:
    parameters = {"b_proposal": proposal_id, "b_key": key, "b_trusted": trusted, "b_by": by}
    await session.exec(_BUMP, params=parameters)
    _loaded(session, Tally, (proposal_id, key, trusted), "count", by)


async def _count_votes(
    session: AsyncSession, proposal_id: int, key: str, votes: int, trusted: int
) -> None:
    """Move the proposal's vote count by `votes` and its trusted count of `key` by `trusted`."""
    parameters = {"b_proposal": proposal_id, "b_votes": votes, "b_trusted": trusted}
    await session.exec(_COUNT_VOTES[VoteKey(key)], params=parameters)
    _loaded_proposal(session, proposal_id, {"vote_count": votes, f"{key}_count": trusted})


async def _move_vote(session: AsyncSession, proposal_id: int, old: VoteKey, new: VoteKey) -> None:
    """A trusted vote changed from `old` to `new`: the proposal's counts of both keys move."""
    await session.exec(_MOVE_VOTE[old, new], params={"b_proposal": proposal_id})
    _loaded_proposal(session, proposal_id, {f"{old}_count": -1, f"{new}_count": +1})


async def record_vote(
    session: AsyncSession,
    participant_id: int,
    proposal_id: int,
    key: VoteKey,
    *,
    trusted: bool,
    now: datetime,
) -> bool:
    """Record or change a vote; returns False when it was already exactly this vote.

    Changing the key moves the counts and drops the qualifications of the old key.
    """
    first = _FIRST_VOTE[session.get_bind().dialect.name]
    values = {
        "participant_id": participant_id,
        "proposal_id": proposal_id,
        "key": key.value,
        "trusted": trusted,
        "created_at": now,
        "updated_at": now,
    }
    if (await session.exec(first, params=values)).first() is not None:
        await _bump(session, proposal_id, key, trusted, +1)
        await _count_votes(session, proposal_id, key, +1, +1 if trusted else 0)
        return True
    # The vote row is locked (PostgreSQL; SQLite's transactions are serial already) and read
    # afresh: two changes of one vote at once must not both take it from its old key.
    found = await session.exec(
        select(Vote)
        .where(Vote.participant_id == participant_id, Vote.proposal_id == proposal_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    vote = found.one()
    if vote.key == key:
        return False
    qualifications = await session.exec(
        select(Qualification).where(
            Qualification.participant_id == participant_id,
            Qualification.proposal_id == proposal_id,
        )
    )
    moves = [(q.key, q.trusted, -1) for q in qualifications]
    moves += [(vote.key, vote.trusted, -1), (key, vote.trusted, +1)]
    await session.exec(
        delete(Qualification).where(
            col(Qualification.participant_id) == participant_id,
            col(Qualification.proposal_id) == proposal_id,
        )
    )
    # Counter rows are locked in one order (by key), whoever changes which way: two opposite
    # changes on one proposal would otherwise each hold the row the other waits for.
    for moved_key, trusted, by in sorted(moves):
        await _bump(session, proposal_id, moved_key, trusted, by)
    if vote.trusted:
        await _move_vote(session, proposal_id, VoteKey(vote.key), key)
    vote.key = key
    vote.updated_at = now
    session.add(vote)
    return True


async def record_qualification(
    session: AsyncSession,
    participant_id: int,
    proposal_id: int,
    key: QualificationKey,
    *,
    now: datetime,
) -> bool:
    """Qualify the participant's vote; returns False if it already had this qualification.

    Raises InvalidQualification when there is no vote or `key` does not go with its key.
    """
    found = await session.exec(
        select(Vote).where(Vote.participant_id == participant_id, Vote.proposal_id == proposal_id)
    )
    vote = found.first()
    if vote is None or key not in QUALIFICATIONS[VoteKey(vote.key)]:
        raise InvalidQualification(key)
    already = await session.exec(
        select(Qualification).where(
            Qualification.participant_id == participant_id,
            Qualification.proposal_id == proposal_id,
            Qualification.key == key,
        )
    )
    if already.first() is not None:
        return False
    session.add(
        Qualification(
            participant_id=participant_id,
            proposal_id=proposal_id,
            key=key,
            trusted=vote.trusted,
            created_at=now,
        )
    )
    await _bump(session, proposal_id, key, vote.trusted, +1)
    return True


@dataclass(frozen=True)
class CastVote:
    """A vote to import: who, on what, which key, at which trust level, and its qualifications."""

    participant_id: int
    proposal_id: int
    key: VoteKey
    trusted: bool = True
    qualifications: tuple[QualificationKey, ...] = ()
    at: datetime | None = None  # when it was cast, if known (else the import's `now`)


async def import_votes(session: AsyncSession, votes: list[CastVote], now: datetime) -> None:
    """Insert many new votes at once, with their counters, in the caller's transaction.

    For seeding and imports: one UPDATE per counter instead of one per vote. A vote that
    already exists fails on the unique (participant, proposal) constraint; an unmatched
    qualification raises InvalidQualification before anything is written.
    """
    deltas: Counter[tuple[int, str, bool]] = Counter()
    per_key: Counter[tuple[int, VoteKey]] = Counter()
    trusted_per_key: Counter[tuple[int, VoteKey]] = Counter()
    for vote in votes:
        if any(q not in QUALIFICATIONS[vote.key] for q in vote.qualifications):
            raise InvalidQualification(vote.qualifications)
        per_key[vote.proposal_id, vote.key] += 1
        trusted_per_key[vote.proposal_id, vote.key] += vote.trusted
        deltas[vote.proposal_id, vote.key, vote.trusted] += 1
        for qualification in vote.qualifications:
            deltas[vote.proposal_id, qualification, vote.trusted] += 1
    # Core bulk inserts (one multi-row statement per batch), not one ORM object per vote.
    await session.exec(
        insert(Vote),
        params=[
            {
                "participant_id": v.participant_id,
                "proposal_id": v.proposal_id,
                "key": v.key.value,
                "trusted": v.trusted,
                "created_at": v.at or now,
                "updated_at": v.at or now,
            }
            for v in votes
        ],
    )
    qualifications = [
        {
            "participant_id": v.participant_id,
            "proposal_id": v.proposal_id,
            "key": q.value,
            "trusted": v.trusted,
            "created_at": v.at or now,
        }
        for v in votes
        for q in v.qualifications
    ]
    if qualifications:
        await session.exec(insert(Qualification), params=qualifications)
    for (proposal_id, key, trusted), count in deltas.items():
        await _bump(session, proposal_id, key, trusted, count)
    for (proposal_id, key), count in per_key.items():
        await _count_votes(session, proposal_id, key, count, trusted_per_key[proposal_id, key])


async def recount_votes(session: AsyncSession) -> int:
    """Set every proposal's vote count and trusted counts by key from its votes, and the
    contender scores of those counts; returns how many proposals had a count that was off.

    For a deployment that ran workers of an older version while a newer one had migrated
    (those keep only the counters they knew of): run it once every worker is up to date.
    """
    votes = _VOTES.c

    def counted(*conditions: Any) -> Any:
        return (
            select(func.count())
            .select_from(_VOTES)
            .where(votes.proposal_id == _PROPOSAL.id, *conditions)
            .scalar_subquery()
        )

    right = {
        "vote_count": counted(),
        **{f"{k}_count": counted(votes.key == k.value, votes.trusted.is_(True)) for k in VoteKey},
    }
    wrong = or_(*(_PROPOSAL[name] != value for name, value in right.items()))
    result = await session.exec(update(_PROPOSALS).where(wrong).values(right))
    await session.exec(_RESCORE)  # the scores of the counts as they now are
    return int(result.rowcount)


async def tallies_of(session: AsyncSession, proposal_ids: list[int]) -> dict[int, dict[str, int]]:
    """Counts by key (all trust levels together) for each proposal."""
    result: dict[int, dict[str, int]] = {
        pid: dict.fromkeys(COUNTED_KEYS, 0) for pid in proposal_ids
    }
    if not proposal_ids:
        return result
    rows = await session.exec(select(Tally).where(col(Tally.proposal_id).in_(proposal_ids)))
    for row in rows:
        result[row.proposal_id][row.key] += row.count
    return result

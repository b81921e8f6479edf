"""A consultation's votes read as columns (`core.results.votes`) are exactly its votes, on every
path: through the proposal index (a small part of the table) and walking the table by id in
spans read at once (most of it), with another consultation's votes interleaved."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.definitions import parse_consultation, upsert_consultation
from core.models import Consultation, Participant, Participation, Proposal, Vote
from core.results.matrix import vote_matrix
from core.results.votes import KEYS, VoteColumns, read_votes
from core.voting import recount_votes
from tests.conftest import consultation_data

Sessions = async_sessionmaker[AsyncSession]
# Just before midnight, votes microseconds apart: ties within a millisecond, and a day boundary.
T0 = datetime(2026, 3, 1, 23, 59, 59, 999_400, tzinfo=UTC)
Row = tuple[int, int, str, int, bool]


async def _two_consultations(sessions: Sessions) -> tuple[int, int]:
    """One consultation with 3 votes per person, another with 14, shuffled in the table."""
    rng = random.Random(3)
    async with sessions() as session, session.begin():
        small, _ = await upsert_consultation(session, parse_consultation(consultation_data()), T0)
        large, _ = await upsert_consultation(
            session, parse_consultation(consultation_data(slug="other")), T0
        )
        assert small.id is not None and large.id is not None
        proposals = {}
        for cid in (small.id, large.id):
            found = await session.exec(select(Proposal.id).where(Proposal.consultation_id == cid))
            proposals[cid] = [pid for pid in found.all() if pid is not None]
        people = [Participant(created_at=T0) for _ in range(30)]
        session.add_all(people)
        await session.flush()
        votes = []
        for person in people:
            assert person.id is not None
            for cid, count in ((small.id, 3), (large.id, 14)):
                session.add(
                    Participation(
                        participant_id=person.id,
                        consultation_id=cid,
                        created_at=T0,
                        updated_at=T0,
                    )
                )
                for proposal in rng.sample(proposals[cid], count):
                    at = T0 + timedelta(microseconds=rng.randrange(0, 3000))
                    votes.append(
                        Vote(
                            participant_id=person.id,
                            proposal_id=proposal,
                            key=rng.choice(KEYS),
                            trusted=rng.random() < 0.7,
                            created_at=at,
                            updated_at=at,
                        )
                    )
        rng.shuffle(votes)
        session.add_all(votes)
        await session.flush()
        await recount_votes(session)  # the counters tell how large a part of the table it is
    return small.id, large.id


async def _stored(sessions: Sessions, consultation_id: int) -> list[Row]:
    async with sessions() as session:
        found = await session.exec(
            select(Vote)
            .join(Proposal, col(Proposal.id) == col(Vote.proposal_id))
            .where(Proposal.consultation_id == consultation_id)
        )
        return [
            (
                v.participant_id,
                v.proposal_id,
                v.key,
                round(v.created_at.timestamp() * 1000),
                v.trusted,
            )
            for v in found.all()
        ]


def _rows(columns: VoteColumns) -> list[Row]:
    return list(
        zip(
            columns.participant.tolist(),
            columns.proposal.tolist(),
            [KEYS[k] for k in columns.key.tolist()],
            columns.at.tolist(),
            columns.in_sequence.tolist(),
            strict=True,
        )
    )


@pytest.mark.parametrize("span", [500_000, 7])  # one read, or many spans read at once
async def test_the_columns_are_the_consultations_votes_on_every_path(
    sessions: Sessions, span: int
) -> None:
    small, large = await _two_consultations(sessions)
    for consultation_id in (small, large):  # the index path, then walking the table
        async with sessions() as session:
            columns = await read_votes(session, consultation_id, span=span)
        rows = _rows(columns)
        assert sorted(rows) == sorted(await _stored(sessions, consultation_id))
        # Each participant's votes together, oldest first.
        order = [(pid, at) for pid, _, _, at, _ in rows]
        assert order == sorted(order)
        assert len(set(columns.participant.tolist())) == 30


async def test_the_matrix_leaves_out_the_participants_it_is_told_to_and_keeps_link_votes(
    sessions: Sessions,
) -> None:
    _, large = await _two_consultations(sessions)
    async with sessions() as session:
        consultation = await session.get(Consultation, large)
        assert consultation is not None
        columns = await read_votes(session, large)
        whole = await vote_matrix(session, consultation, votes=columns)
        left_out = int(columns.participant[0])
        without = await vote_matrix(session, consultation, votes=columns, without={left_out})
    assert left_out in whole.participants.tolist()
    assert left_out not in without.participants.tolist()
    row = whole.participants.tolist().index(left_out)
    assert without.votes == whole.votes - int((whole.rows == row).sum())
    # Votes cast outside a sequence (through a link) count in the groups all the same: every
    # participant's votes are in, one per idea (two translations of it make one column).
    assert not columns.in_sequence.all()
    assert len(whole.participants) == 30

"""Votes, qualifications and the counters kept in the same transaction."""

from __future__ import annotations

import random

import pytest
from sqlmodel import col, select, update

from core.identity import enrol
from core.models import (
    QUALIFICATIONS,
    Proposal,
    Qualification,
    QualificationKey,
    Tally,
    Vote,
    VoteKey,
)
from core.scoring import TESTED_FROM, contender_scores, counts_of, score
from core.voting import (
    CastVote,
    InvalidQualification,
    import_votes,
    record_qualification,
    record_vote,
    recount_votes,
    tallies_of,
)
from tests.conftest import SECRET


async def _people_and_proposals(sessions, load_consultation, clock, count: int):
    consultation = await load_consultation()
    async with sessions() as session, session.begin():
        people = [
            (await enrol(session, SECRET, "test", f"u{i}", None, clock())).participant.id
            for i in range(count)
        ]
        found = await session.exec(
            select(Proposal).where(Proposal.consultation_id == consultation.id)
        )
        proposals = [p.id for p in found]
    return people, proposals


async def test_changing_a_vote_moves_the_counts_and_drops_its_qualifications(
    sessions, load_consultation, clock
) -> None:
    (someone,), (proposal, *_) = await _people_and_proposals(sessions, load_consultation, clock, 1)
    async with sessions() as session, session.begin():
        assert await record_vote(
            session, someone, proposal, VoteKey.AGREE, trusted=True, now=clock()
        )
        assert await record_qualification(session, someone, proposal, "likeIt", now=clock())
        assert not await record_qualification(session, someone, proposal, "likeIt", now=clock())
        assert not await record_vote(
            session, someone, proposal, VoteKey.AGREE, trusted=True, now=clock()
        )
    async with sessions() as session, session.begin():
        assert await record_vote(
            session, someone, proposal, VoteKey.DISAGREE, trusted=True, now=clock()
        )
    async with sessions() as session:
        counts = (await tallies_of(session, [proposal]))[proposal]
        assert counts["agree"] == 0 and counts["disagree"] == 1 and counts["likeIt"] == 0
        assert (await session.exec(select(Qualification))).all() == []
        assert (await session.get(Proposal, proposal)).vote_count == 1


async def test_objects_already_in_the_session_see_the_counts_a_vote_changed(
    sessions, load_consultation, clock
) -> None:
    # The counters move by statements on the rows; a proposal or counter the transaction had
    # already read must not show the count from before the vote.
    (someone,), (proposal, *_) = await _people_and_proposals(sessions, load_consultation, clock, 1)
    async with sessions() as session, session.begin():
        shown = await session.get(Proposal, proposal)
        agree = await session.get(Tally, (proposal, "agree", True))
        disagree = await session.get(Tally, (proposal, "disagree", True))
        before = shown.vote_count, agree.count, disagree.count
        await record_vote(session, someone, proposal, VoteKey.AGREE, trusted=True, now=clock())
        assert (shown.vote_count, agree.count) == (before[0] + 1, before[1] + 1)
        await record_vote(session, someone, proposal, VoteKey.DISAGREE, trusted=True, now=clock())
        assert (agree.count, disagree.count) == (before[1], before[2] + 1)
        assert shown.vote_count == before[0] + 1
        assert (shown.agree_count, shown.disagree_count) == (before[1], before[2] + 1)
        counts = shown.agree_count, shown.disagree_count, shown.neutral_count
        scores = contender_scores(*counts, shown.vote_count)
        assert (shown.agree_score, shown.split_score) == scores
    async with sessions() as session:  # and the rows agree with them
        stored = await session.get(Proposal, proposal)
        assert stored.vote_count == before[0] + 1
        assert (await session.get(Tally, (proposal, "disagree", True))).count == before[2] + 1


async def test_a_qualification_must_match_the_vote(sessions, load_consultation, clock) -> None:
    (someone,), (proposal, *_) = await _people_and_proposals(sessions, load_consultation, clock, 1)
    async with sessions() as session, session.begin():
        with pytest.raises(InvalidQualification):
            await record_qualification(session, someone, proposal, "likeIt", now=clock())
        await record_vote(session, someone, proposal, VoteKey.NEUTRAL, trusted=False, now=clock())
        with pytest.raises(InvalidQualification):
            await record_qualification(session, someone, proposal, "noWay", now=clock())
        await record_qualification(session, someone, proposal, "noOpinion", now=clock())
    async with sessions() as session:
        untrusted = await session.get(Tally, (proposal, "noOpinion", False))
        assert untrusted is not None and untrusted.count == 1


async def test_counters_always_equal_a_recount_of_the_votes(
    sessions, load_consultation, clock
) -> None:
    people, proposals = await _people_and_proposals(sessions, load_consultation, clock, 16)
    proposals = proposals[:4]  # so that some pass TESTED_FROM votes, and get scores
    rng = random.Random(3)
    for _ in range(120):
        person, proposal = rng.choice(people), rng.choice(proposals)
        key = rng.choice(list(VoteKey))
        async with sessions() as session, session.begin():
            await record_vote(
                session, person, proposal, key, trusted=rng.random() < 0.7, now=clock()
            )
            qualification = rng.choice(QUALIFICATIONS[key])
            await record_qualification(session, person, proposal, qualification, now=clock())
    async with sessions() as session:
        counts = await tallies_of(session, proposals)
        votes = list(await session.exec(select(Vote)))
        scored = 0
        qualifications = list(await session.exec(select(Qualification)))
        for proposal in proposals:
            mine = [v for v in votes if v.proposal_id == proposal]
            for key in VoteKey:
                assert counts[proposal][key] == sum(v.key == key for v in mine)
            for key in {q.key for q in qualifications}:
                expected = sum(q.key == key and q.proposal_id == proposal for q in qualifications)
                assert counts[proposal][key] == expected
            stored = await session.get(Proposal, proposal)
            assert stored.vote_count == len(mine)
            # The proposal's own trusted counts, which sequencing reads, equal them too.
            mirrored = (stored.agree_count, stored.disagree_count, stored.neutral_count)
            assert mirrored == tuple(sum(v.key == k and v.trusted for v in mine) for k in VoteKey)
            # And the scores the statements computed from them are exactly the ones scoring
            # defines (equal counts must give equal scores: they order the contenders).
            scores = stored.agree_score, stored.split_score
            assert scores == contender_scores(*mirrored, stored.vote_count)
            scored += stored.vote_count >= TESTED_FROM
        assert scored  # the formula was checked on real scores, not only on zeros


async def test_importing_votes_in_bulk_keeps_the_counters_exact(
    sessions, load_consultation, clock
) -> None:
    people, proposals = await _people_and_proposals(sessions, load_consultation, clock, 3)
    batch = [
        CastVote(people[0], proposals[0], VoteKey.AGREE, True, (QualificationKey.LIKE_IT,)),
        CastVote(people[1], proposals[0], VoteKey.AGREE, False),
        CastVote(people[2], proposals[0], VoteKey.DISAGREE, True, (QualificationKey.NO_WAY,)),
        CastVote(people[0], proposals[1], VoteKey.NEUTRAL, True),
    ]
    async with sessions() as session, session.begin():
        await import_votes(session, batch, clock())
    async with sessions() as session:
        counts = await tallies_of(session, proposals[:2])
        assert counts[proposals[0]]["agree"] == 2 and counts[proposals[0]]["likeIt"] == 1
        assert counts[proposals[0]]["noWay"] == 1 and counts[proposals[1]]["neutral"] == 1
        untrusted = await session.get(Tally, (proposals[0], "agree", False))
        assert untrusted.count == 1
        first, second = [await session.get(Proposal, p) for p in proposals[:2]]
        assert (first.vote_count, first.agree_count, first.disagree_count) == (3, 1, 1)
        assert (second.vote_count, second.neutral_count, second.agree_count) == (1, 1, 0)
        # Fewer than TESTED_FROM votes: new, not contenders yet (scores follow in the test above).
        assert (first.agree_score, first.split_score, second.agree_score) == (0, 0, 0)
    mismatched = [
        CastVote(people[1], proposals[2], VoteKey.AGREE, True, (QualificationKey.NO_WAY,))
    ]
    async with sessions() as session, session.begin():
        with pytest.raises(InvalidQualification):
            await import_votes(session, mismatched, clock())


async def test_scoring_reads_the_counters_split_by_trust(
    sessions, load_consultation, clock
) -> None:
    people, proposals = await _people_and_proposals(sessions, load_consultation, clock, 2)
    async with sessions() as session, session.begin():
        await record_vote(
            session, people[0], proposals[0], VoteKey.AGREE, trusted=True, now=clock()
        )
        await record_vote(
            session, people[1], proposals[0], VoteKey.AGREE, trusted=False, now=clock()
        )
    async with sessions() as session:
        counts = (await counts_of(session, [proposals[0]]))[proposals[0]]
    assert counts.sequence["agree"] == 1 and counts.other["agree"] == 1
    assert score(counts).votes == 1.5


async def test_a_recount_repairs_the_vote_counts_of_proposals(
    sessions, load_consultation, clock
) -> None:
    """What an older worker, which knew nothing of the trusted counts, would have left."""
    people, proposals = await _people_and_proposals(sessions, load_consultation, clock, 4)
    async with sessions() as session, session.begin():
        for i, person in enumerate(people):
            key = list(VoteKey)[i % 3]
            await record_vote(session, person, proposals[0], key, trusted=i != 3, now=clock())
        await record_vote(
            session, people[0], proposals[1], VoteKey.AGREE, trusted=True, now=clock()
        )
    async with sessions() as session, session.begin():
        await session.exec(
            update(Proposal)
            .where(col(Proposal.id) == proposals[0])
            .values(agree_count=0, neutral_count=5, vote_count=1, agree_score=0.9)
        )
    async with sessions() as session, session.begin():
        assert await recount_votes(session) == 1  # the other proposals were right
    async with sessions() as session, session.begin():
        first = await session.get(Proposal, proposals[0])
        counts = (first.vote_count, first.agree_count, first.disagree_count, first.neutral_count)
        assert counts == (4, 1, 1, 1)  # the fourth vote (agree) is untrusted
        assert first.agree_score == 0  # rescored: 4 votes, a new proposal
        assert await recount_votes(session) == 0

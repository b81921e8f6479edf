"""Sequencing against the database: the hard rules hold whatever the algorithm."""

from __future__ import annotations

import random

from sqlmodel import select

from core.identity import enrol_participant
from core.models import Consultation, Proposal, ProposalStatus, VoteKey
from core.sequencing import next_proposals_for
from core.voting import record_vote
from tests.conftest import SECRET


async def test_new_proposals_first_never_voted_never_own_only_accepted_in_locale(
    sessions, load_consultation, clock
) -> None:
    consultation = await load_consultation()
    async with sessions() as session, session.begin():
        me = await enrol_participant(session, SECRET, "test", "me", None, clock())
        other = await enrol_participant(session, SECRET, "test", "other", None, clock())
        found = await session.exec(
            select(Proposal)
            .where(Proposal.consultation_id == consultation.id, Proposal.locale == "en")
            .order_by(Proposal.id)
        )
        p = list(found)
        p[0].author_id = me.id  # my own
        p[1].status = ProposalStatus.PENDING
        p[2].status = ProposalStatus.REFUSED
        await record_vote(session, me.id, p[3].id, VoteKey.AGREE, trusted=True, now=clock())
        for proposal in p[4:10]:  # popular ones
            await record_vote(
                session, other.id, proposal.id, VoteKey.AGREE, trusted=True, now=clock()
            )
        for proposal in p:
            session.add(proposal)
    async with sessions() as session:
        consultation = await session.get(Consultation, consultation.id)
        chosen = await next_proposals_for(
            session, me.id, consultation, "en", 4, rng=random.Random(1)
        )
        ids = [c.id for c in chosen]
        assert set(ids) == {q.id for q in p[10:14]}
        assert all(c.locale == "en" for c in chosen)
        more = await next_proposals_for(
            session, me.id, consultation, "en", 20, shown=ids, rng=random.Random(1)
        )
        assert {m.id for m in more} == {q.id for q in p[4:10]}


async def test_the_sample_of_tested_proposals_wraps_around_the_shuffle_index(
    sessions, load_consultation, clock
) -> None:
    consultation = await load_consultation(settings={"sequencing": "uniform"})
    async with sessions() as session, session.begin():
        me = await enrol_participant(session, SECRET, "test", "me", None, clock())
        found = await session.exec(select(Proposal).where(Proposal.locale == "en"))
        for proposal in found:
            proposal.vote_count = 50  # all "tested": they come from the shuffle sample
            session.add(proposal)
    for seed in range(5):
        async with sessions() as session:
            consultation = await session.get(Consultation, consultation.id)
            chosen = await next_proposals_for(
                session, me.id, consultation, "en", 20, rng=random.Random(seed)
            )
            assert len(chosen) == 14  # whatever the random starting point
            assert all(p.shuffle is not None and 0 <= p.shuffle < 1 for p in chosen)

"""Sequencing against the database: the hard rules hold whatever the algorithm."""

from __future__ import annotations

import random

import pytest
from sqlmodel import SQLModel, col, insert, select

from core.identity import enrol
from core.models import QUALIFICATIONS, Consultation, Proposal, ProposalStatus, Tally, VoteKey
from core.sequencing import (
    _CONTENDERS,
    _FRESH,
    _POOLS,
    _SAMPLE_BEFORE,
    _SAMPLE_FROM,
    CONSENSUS_CONTENDERS,
    CONTROVERSY_CONTENDERS,
    FRESH_BELOW,
    FRESH_LIMIT,
    SAMPLE_LIMIT,
    next_proposals_for,
)
from core.voting import record_qualification, record_vote
from tests.conftest import SECRET
from tests.support import record_pools, scored_proposal


async def test_new_proposals_first_never_voted_never_own_only_accepted_in_locale(
    sessions, load_consultation, clock
) -> None:
    consultation = await load_consultation()
    async with sessions() as session, session.begin():
        me = (await enrol(session, SECRET, "test", "me", None, clock())).participant
        other = (await enrol(session, SECRET, "test", "other", None, clock())).participant
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
        text_of = {q.id: q.text for q in p}
        assert [c.text for c in chosen] == [text_of[c.id] for c in chosen]  # and they say it
        more = await next_proposals_for(
            session, me.id, consultation, "en", 20, shown=ids, rng=random.Random(1)
        )
        assert {m.id for m in more} == {q.id for q in p[4:10]}


async def test_the_sample_of_tested_proposals_wraps_around_the_shuffle_index(
    sessions, load_consultation, clock
) -> None:
    consultation = await load_consultation(settings={"sequencing": "uniform"})
    async with sessions() as session, session.begin():
        me = (await enrol(session, SECRET, "test", "me", None, clock())).participant
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
            places = await session.exec(
                select(Proposal.shuffle).where(col(Proposal.id).in_([c.id for c in chosen]))
            )
            assert all(place is not None and 0 <= place < 1 for place in places)


@pytest.mark.parametrize(
    ("algorithm", "with_qualifications"), [("adaptive", False), ("makeorg", True)]
)
async def test_algorithms_get_the_trusted_counters_of_each_candidate(
    sessions, load_consultation, clock, monkeypatch, algorithm: str, with_qualifications: bool
) -> None:
    """Every algorithm sees each candidate's trusted vote counts (read with the proposal);
    the ones that use qualifications see those too. Untrusted votes count for neither."""
    consultation = await load_consultation(settings={"sequencing": algorithm})
    pools = record_pools(monkeypatch, algorithm)
    async with sessions() as session, session.begin():
        me = (await enrol(session, SECRET, "test", "me", None, clock())).participant
        voters = [
            (await enrol(session, SECRET, "test", f"v{i}", None, clock())).participant.id
            for i in range(6)
        ]
        found = await session.exec(
            select(Proposal).where(Proposal.consultation_id == consultation.id)
        )
        proposals = [p.id for p in found if p.locale == "en"][:2]
        rng = random.Random(5)
        for voter in voters:
            for proposal in proposals:
                key = rng.choice(list(VoteKey))
                trusted = rng.random() < 0.7
                await record_vote(session, voter, proposal, key, trusted=trusted, now=clock())
                await record_qualification(
                    session, voter, proposal, QUALIFICATIONS[key][0], now=clock()
                )
                if rng.random() < 0.5:  # a change of mind
                    changed = rng.choice([k for k in VoteKey if k != key])
                    await record_vote(
                        session, voter, proposal, changed, trusted=trusted, now=clock()
                    )
    async with sessions() as session:
        consultation = await session.get(Consultation, consultation.id)
        await next_proposals_for(session, me.id, consultation, "en", 4, rng=random.Random(1))
        trusted_tallies = await session.exec(
            select(Tally).where(col(Tally.proposal_id).in_(proposals), col(Tally.trusted))
        )
        counted = [(t.proposal_id, t.key, t.count) for t in trusted_tallies if t.count]
    assert any(key not in set(VoteKey) for _, key, _ in counted)  # qualifications were made
    expected: dict[int, dict[str, int]] = {p: {} for p in proposals}
    for proposal, key, count in counted:
        if with_qualifications or key in set(VoteKey):
            expected[proposal][key] = count
    seen = {c.id: {k: v for k, v in c.counts.items() if v} for c in pools[-1]}
    assert {p: seen[p] for p in proposals} == expected


@pytest.mark.parametrize("algorithm", ["adaptive", "uniform"])
async def test_the_pool_holds_the_leaders_of_a_consultation_larger_than_its_sample(
    sessions, load_consultation, clock, monkeypatch, algorithm: str
) -> None:
    """With more tested proposals than SAMPLE_LIMIT, a sample holds few of the leaders: the
    algorithms that rank proposals get the eligible leaders of each ranking (by the stored
    scores) in their pool as well; `uniform` gets its uniform sample alone."""
    consultation = await load_consultation(settings={"sequencing": algorithm})
    pools = record_pools(monkeypatch, algorithm)
    rng = random.Random(11)
    rows = []
    for i in range(SAMPLE_LIMIT + 300):  # tested ones: all from the sample, if it could
        votes = rng.randint(FRESH_BELOW, 400)
        agree = rng.randint(0, votes)
        disagree = rng.randint(0, votes - agree)
        counts = {"agree": agree, "disagree": disagree, "neutral": votes - agree - disagree}
        rows.append(scored_proposal(consultation.id, f"t{i}", counts, rng.random(), clock()))
    proposals = SQLModel.metadata.tables["proposal"]
    async with sessions() as session, session.begin():
        me = (await enrol(session, SECRET, "test", "me", None, clock())).participant
        await session.exec(insert(proposals), params=rows)
        found = await session.exec(
            select(Proposal).where(
                Proposal.consultation_id == consultation.id, Proposal.locale == "en"
            )
        )
        everything = list(found)
        tested = [p for p in everything if p.vote_count >= FRESH_BELOW]
        by_agree = sorted(tested, key=lambda p: (p.agree_score, p.vote_count, p.id))[::-1]
        by_split = sorted(tested, key=lambda p: (p.split_score, p.vote_count, p.id))[::-1]
        by_agree[0].author_id = me.id  # the leader is mine: never in my pool
        session.add(by_agree[0])
        for leader in (by_agree[1], by_split[0]):  # and I voted on these
            await record_vote(session, me.id, leader.id, VoteKey.AGREE, trusted=True, now=clock())
    excluded = {by_agree[0].id, by_agree[1].id, by_split[0].id}
    fresh = [p.id for p in everything if p.vote_count < FRESH_BELOW][:FRESH_LIMIT]
    leaders = {p.id for p in by_agree if p.id not in excluded}
    splitting = {p.id for p in by_split if p.id not in excluded}
    top_agree = [p.id for p in by_agree if p.id in leaders][:CONSENSUS_CONTENDERS]
    top_split = [p.id for p in by_split if p.id in splitting][:CONTROVERSY_CONTENDERS]
    assert (len(top_agree), len(top_split)) == (CONSENSUS_CONTENDERS, CONTROVERSY_CONTENDERS)
    for seed in range(4):
        async with sessions() as session:
            current = await session.get(Consultation, consultation.id)
            await next_proposals_for(session, me.id, current, "en", 12, rng=random.Random(seed))
        pool = {c.id for c in pools[-1]}
        assert len(pool) == len(pools[-1])  # each once
        assert not pool & excluded
        assert set(fresh) <= pool
        sampled = len(pool) - len(fresh)
        if algorithm == "uniform":
            assert sampled == SAMPLE_LIMIT
            assert not set(top_agree) <= pool  # 32 of the tested in a sample: almost never
        else:
            assert set(top_agree) | set(top_split) <= pool
            assert SAMPLE_LIMIT < sampled <= SAMPLE_LIMIT + len(set(top_agree) | set(top_split))


async def test_the_pool_is_read_from_its_indexes_alone_on_sqlite(engine) -> None:
    """The pool's queries find every column they read in the index they walk:
    ix_proposal_fair_order, ix_proposal_shuffle and the two score indexes (a column added to
    the pool belongs in all four); the contenders, walking a score index, are not sorted."""
    if engine.dialect.name != "sqlite":
        pytest.skip("query plans are SQLite's")
    parameters = {
        "b_consultation": 1,
        "b_locale": "en",
        "b_participant": 1,
        "b_shown": [1, 2],
        "b_pivot": 0.5,
        "b_limit": 10,
    }
    async with engine.connect() as connection:
        for statement in (_FRESH, _SAMPLE_FROM, _SAMPLE_BEFORE, *_CONTENDERS):
            compiled = statement.params(parameters).compile(
                dialect=engine.dialect, compile_kwargs={"literal_binds": True}
            )
            plan = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")
            steps = [row[-1] for row in plan]
            assert any("proposal USING COVERING INDEX ix_proposal_" in step for step in steps)
            if statement in _CONTENDERS:  # the leaders come in the index's order: no sort
                assert not any("TEMP B-TREE" in step for step in steps), steps
        # The pool's one read runs each part by its own index, sorting only the new proposals
        # (as _FRESH alone does).
        for statement, sample_part in _POOLS.values():
            compiled = statement.params(parameters).compile(
                dialect=engine.dialect, compile_kwargs={"literal_binds": True}
            )
            plan = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")
            steps = [row[-1] for row in plan]
            walks = [step for step in steps if "proposal USING COVERING INDEX ix_proposal_" in step]
            assert len(walks) == sample_part + 1, steps
            assert sum("TEMP B-TREE" in step for step in steps) == 1, steps


async def test_postgresql_keeps_one_plan_of_the_pool_for_every_value(
    engine, sessions, load_consultation, clock
) -> None:
    """PostgreSQL would plan the pool anew at each selection (custom plans), which cost as
    much as reading it: a selection runs it on a plan made once for any value instead."""
    if engine.dialect.name != "postgresql":
        pytest.skip("plan caching is PostgreSQL's")
    if engine.dialect.server_version_info < (14,):
        pytest.skip("pg_prepared_statements counts plans from PostgreSQL 14")
    consultation = await load_consultation()
    async with sessions() as session, session.begin():
        me = (await enrol(session, SECRET, "test", "me", None, clock())).participant
    async with sessions() as session, session.begin():
        current = await session.get(Consultation, consultation.id)
        for seed in range(7):  # past the 5 custom plans PostgreSQL makes before it compares
            await next_proposals_for(session, me.id, current, "en", 4, rng=random.Random(seed))
        connection = await session.connection()
        plans = (
            await connection.exec_driver_sql(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                " WHERE statement LIKE 'SELECT $1::INTEGER AS part%'"
            )
        ).all()
    assert plans, "the pool was not read by a prepared statement"
    assert all(custom == 0 and generic > 0 for generic, custom in plans), plans

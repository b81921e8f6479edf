"""Moderation in the core: the queue and its locks, decisions and their refusals, bulk,
history and audit, withdrawal, and two moderators racing, on both databases."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import col, select

from core.definitions import settings_of
from core.models import Participant, Proposal, ProposalStatus, Tally, Vote
from core.moderation import (
    Accept,
    Actor,
    AlreadyDecided,
    Archive,
    Decided,
    DuplicateNotExpected,
    DuplicateRequired,
    EditRefused,
    Locked,
    NotAccepted,
    Postpone,
    QueueOrder,
    Refuse,
    Source,
    UnknownDuplicate,
    UnknownProposal,
    UnknownReason,
    Withdraw,
    audit_log,
    decide,
    decide_many,
    next_for,
    pending_proposals,
    proposal_history,
    renew_lock,
)
from core.proposals import submit_proposal
from core.report import consultation_report

ANA = Actor("ana@example.org", Source.CLI)
BEN = Actor("ben@example.org", Source.CONSOLE)


async def _propose(sessions, clock, consultation, texts: list[tuple[str, str]]) -> list[int]:
    """Pending proposals by the named authors (a participant each), a minute apart."""
    ids = []
    authors: dict[str, int] = {}
    for author, typed in texts:
        async with sessions() as session, session.begin():
            if author not in authors:
                participant = Participant(created_at=clock())
                session.add(participant)
                await session.flush()
                assert participant.id is not None
                authors[author] = participant.id
            proposal = await submit_proposal(
                session,
                authors[author],
                consultation.id,
                typed,
                "en",
                settings_of(consultation),
                clock(),
            )
            ids.append(proposal.id)
        clock.advance(minutes=1)
    return ids


async def _next(sessions, consultation, actor, clock, **options):
    async with sessions() as session, session.begin():
        served = await next_for(session, consultation.id, actor.organiser, clock(), **options)
    return None if served is None else served.id


async def _decide(sessions, proposal_id, decision, clock, actor=ANA):
    async with sessions() as session, session.begin():
        return await decide(session, proposal_id, decision, actor, clock())


async def _proposal(sessions, proposal_id) -> Proposal:
    async with sessions() as session:
        found = await session.get(Proposal, proposal_id)
        assert found is not None
        return found


async def test_the_queue_serves_the_oldest_and_locks_it_for_one_moderator(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation()
    first, second, third = await _propose(
        sessions,
        clock,
        consultation,
        [
            ("x", "We should open libraries late"),
            ("y", "We should plant trees"),
            ("z", "We should fix roads"),
        ],
    )
    assert await _next(sessions, consultation, ANA, clock) == first
    assert await _next(sessions, consultation, BEN, clock) == second  # ana holds the first
    assert await _next(sessions, consultation, ANA, clock) == first  # asking again: the same
    clock.advance(seconds=31)  # ana's lock (30 s by default) lapsed, ben's too
    carl = Actor("carl@example.org", Source.API)
    assert await _next(sessions, consultation, carl, clock) == first
    assert await _next(sessions, consultation, ANA, clock) == second
    async with sessions() as session:
        page, total = await pending_proposals(session, consultation.id)
    assert total == 3 and [p.id for p in page] == [first, second, third]
    assert page[0].locked_by == "carl@example.org"


async def test_a_renewed_lock_keeps_others_out_and_an_author_batch_comes_together(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation(
        settings={"sequence_size": 4, "moderation_lock_seconds": 60}
    )
    x1, y1, x2 = await _propose(
        sessions,
        clock,
        consultation,
        [
            ("x", "We should open libraries late"),
            ("y", "We should plant trees"),
            ("x", "We should fix roads"),
        ],
    )
    assert await _next(sessions, consultation, ANA, clock) == x1
    clock.advance(seconds=50)
    async with sessions() as session, session.begin():
        until = await renew_lock(session, x1, ANA.organiser, clock())
    assert until == clock() + timedelta(seconds=60)
    clock.advance(seconds=50)  # past the first lock, within the renewed one
    assert await _next(sessions, consultation, BEN, clock) == y1
    async with sessions() as session, session.begin():
        with pytest.raises(Locked) as locked:
            await renew_lock(session, x1, BEN.organiser, clock())
    assert (locked.value.holder, locked.value.expires_at) == (ANA.organiser, until)

    await _decide(sessions, x1, Accept(), clock)
    clock.advance(seconds=61)  # ben's lock on y1 lapsed: y1 is the oldest again
    assert await _next(sessions, consultation, ANA, clock, order=QueueOrder.AUTHOR_BATCH) == x2
    assert await _next(sessions, consultation, BEN, clock) == y1


async def test_every_decision_and_what_it_records(load_consultation, sessions, clock) -> None:
    consultation = await load_consultation()
    texts = ["We should open libraries late", "We should plant trees", "We should fix roads"]
    edited, refused, shelved = await _propose(
        sessions, clock, consultation, [("x", t) for t in texts]
    )
    await _decide(sessions, edited, Accept(text="open public libraries until midnight"), clock)
    await _decide(sessions, refused, Refuse("off-topic"), clock, BEN)
    await _decide(sessions, shelved, Postpone(), clock)
    await _decide(sessions, shelved, Archive(), clock)

    accepted = await _proposal(sessions, edited)
    assert accepted.status == ProposalStatus.ACCEPTED
    assert accepted.text == "We should open public libraries until midnight"  # prefix added
    assert (await _proposal(sessions, refused)).refusal_reason == "off-topic"
    assert (await _proposal(sessions, shelved)).status == ProposalStatus.ARCHIVED
    async with sessions() as session:
        history = await proposal_history(session, edited)
        assert [(e.action, e.original_text, e.moderator, e.source) for e in history] == [
            ("accept", "We should open libraries late", ANA.organiser, "cli")
        ]
        shelf = await proposal_history(session, shelved)
        assert [e.action for e in shelf] == ["postpone", "archive"]
        log = await audit_log(session, consultation.id)
        first_page = await audit_log(session, consultation.id, limit=2)
        rest = await audit_log(session, consultation.id, before=first_page[-1].id, limit=2)
    assert [(a.action, a.target) for a in log] == [
        ("proposal.archive", f"proposal:{shelved}"),
        ("proposal.postpone", f"proposal:{shelved}"),
        ("proposal.refuse", f"proposal:{refused}"),
        ("proposal.accept", f"proposal:{edited}"),
    ]
    assert first_page + rest == log
    assert log[2].detail == {"status": "refused", "reason": "off-topic"}
    assert log[2].actor == BEN.organiser and log[2].source == "console"
    assert log[3].detail == {"status": "accepted", "edited": True}


async def test_refusals_change_nothing_and_say_why(load_consultation, sessions, clock) -> None:
    consultation = await load_consultation()
    pending, taken, other = await _propose(
        sessions,
        clock,
        consultation,
        [
            ("x", "We should open libraries late"),
            ("y", "We should plant trees"),
            ("z", "We should fix roads"),
        ],
    )
    async with sessions() as session:
        seed = (await session.exec(select(Proposal).where(Proposal.ref == "p1.en"))).one()
    assert await _next(sessions, consultation, BEN, clock) == pending
    wrong = [
        (123456, Accept(), UnknownProposal),
        (pending, Accept(), Locked),  # ben holds it
        (taken, Accept(text="go " * 80), EditRefused),
        (taken, Refuse("boring"), UnknownReason),
        (taken, Refuse("already-exists"), DuplicateRequired),
        (taken, Refuse("already-exists", duplicate_of=other), UnknownDuplicate),  # pending
        (taken, Refuse("already-exists", duplicate_of=taken), UnknownDuplicate),
        (taken, Refuse("off-topic", duplicate_of=seed.id), DuplicateNotExpected),
        (taken, Withdraw(), NotAccepted),
        (seed.id, Accept(), AlreadyDecided),
    ]
    for proposal_id, decision, error in wrong:
        with pytest.raises(error) as raised:
            await _decide(sessions, proposal_id, decision, clock)
        if error is UnknownReason:
            assert "already-exists" in raised.value.allowed and "boring" not in raised.value.allowed
        if error is EditRefused:
            assert raised.value.problem.msgid == "propose.error.too_long"
        if error is Locked:
            assert raised.value.holder == BEN.organiser
    assert (await _proposal(sessions, taken)).status == ProposalStatus.PENDING
    assert (await _proposal(sessions, taken)).text == "We should plant trees"
    async with sessions() as session:
        assert await audit_log(session, consultation.id) == []

    await _decide(sessions, taken, Refuse("already-exists", duplicate_of=seed.id), clock)
    with pytest.raises(AlreadyDecided) as again:
        await _decide(sessions, taken, Accept(), clock)
    assert again.value.status == "refused"
    await _decide(sessions, other, Postpone(), clock)
    with pytest.raises(AlreadyDecided):
        await _decide(sessions, other, Postpone(), clock)
    async with sessions() as session:
        (event,) = await proposal_history(session, taken)
    assert (event.reason, event.duplicate_of) == ("already-exists", seed.id)


async def test_bulk_applies_what_it_can_and_says_why_for_the_rest(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation()
    ids = await _propose(
        sessions,
        clock,
        consultation,
        [
            ("x", "We should open libraries late"),
            ("y", "We should plant trees"),
            ("z", "We should fix roads"),
        ],
    )
    held, free, decided = ids
    assert await _next(sessions, consultation, BEN, clock) == held
    await _decide(sessions, decided, Archive(), clock)
    async with sessions() as session, session.begin():
        outcome = await decide_many(
            session, [decided, free, 98765, held, free], Refuse("rudeness"), ANA, clock()
        )
    assert list(outcome) == sorted({held, free, decided, 98765})
    assert isinstance(outcome[free], Decided) and outcome[free].status == "refused"
    assert isinstance(outcome[held], Locked)
    assert isinstance(outcome[decided], AlreadyDecided)
    assert isinstance(outcome[98765], UnknownProposal)
    assert (await _proposal(sessions, held)).status == ProposalStatus.PENDING
    async with sessions() as session:
        log = await audit_log(session, consultation.id)
    assert [a.target for a in log] == [f"proposal:{free}", f"proposal:{decided}"]


async def test_a_withdrawn_proposal_leaves_sequences_keeps_its_votes_and_results_say_so(
    load_consultation, sessions, chat, clock
) -> None:
    consultation = await load_consultation(settings={"sequence_size": 4, "moderation": "post"})
    author = await chat("author", "en").enrol()
    await author.command("propose")
    await author.type("open libraries until midnight")
    await author.tap("confirm")
    async with sessions() as session:
        query = select(Proposal).where(col(Proposal.author_id).is_not(None))
        mine = (await session.exec(query)).one()
    assert mine.status == ProposalStatus.ACCEPTED  # post-moderation: shown at once
    assert mine.id in await (await chat("voter", "en").enrol()).vote_everything()

    await _decide(sessions, mine.id, Withdraw(), clock)
    shown = await (await chat("latecomer", "en").enrol()).vote_everything()
    assert mine.id not in shown
    assert len(shown) == 14  # every English seed

    async with sessions() as session:
        tally = await session.get(Tally, (mine.id, "agree", True))
        votes = list(await session.exec(select(Vote).where(Vote.proposal_id == mine.id)))
        report = await consultation_report(session, consultation, locale="en", now=clock())
    assert tally is not None and tally.count == 1 and len(votes) == 1  # kept for the record
    assert (await _proposal(sessions, mine.id)).vote_count == 1
    assert report.proposals_by_status["withdrawn"] == 1
    assert f"#{mine.id}" not in [result.ref for result in report.proposals]


async def test_a_proposal_accepted_by_a_moderator_comes_up_in_sequences(
    load_consultation, sessions, chat, clock
) -> None:
    await load_consultation()
    author = await chat("author", "en").enrol()
    await author.command("propose")
    await author.type("open libraries until midnight")
    await author.tap("confirm")
    async with sessions() as session:
        query = select(Proposal).where(col(Proposal.author_id).is_not(None))
        mine = (await session.exec(query)).one()
    assert mine.id not in await (await chat("early", "en").enrol()).vote_everything()
    await _decide(sessions, mine.id, Accept(), clock)
    assert mine.id in await (await chat("reader", "en").enrol()).vote_everything()


async def _race(sessions, barrier: asyncio.Barrier, proposal_id, decision, actor, clock):
    async with sessions() as session, session.begin():
        await barrier.wait()  # both transactions are open: neither has touched the row yet
        try:
            return await decide(session, proposal_id, decision, actor, clock())
        except AlreadyDecided as conflict:
            return conflict


async def test_two_moderators_deciding_at_once_one_wins_the_other_is_told(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation()
    (contested,) = await _propose(
        sessions, clock, consultation, [("x", "We should open libraries late")]
    )
    barrier = asyncio.Barrier(2)
    outcomes = await asyncio.gather(
        _race(sessions, barrier, contested, Accept(), ANA, clock),
        _race(sessions, barrier, contested, Refuse("other"), BEN, clock),
    )
    won = [o for o in outcomes if isinstance(o, Decided)]
    lost = [o for o in outcomes if isinstance(o, AlreadyDecided)]
    assert len(won) == 1 and len(lost) == 1
    assert lost[0].status == won[0].status
    assert (await _proposal(sessions, contested)).status == won[0].status
    async with sessions() as session:
        assert len(await proposal_history(session, contested)) == 1


async def test_two_moderators_asking_at_once_get_two_proposals(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation()
    ids = await _propose(
        sessions,
        clock,
        consultation,
        [("x", "We should open libraries late"), ("y", "We should plant trees")],
    )
    async with sessions() as first, first.begin():
        served = await next_for(first, consultation.id, ANA.organiser, clock())
        assert served is not None and served.id == ids[0]
        if first.get_bind().dialect.name == "sqlite":
            return  # one writer at a time: the second moderator's turn comes after this one's
        # Ana's transaction is still open, her row locked: Ben's query passes over it rather
        # than waiting (a wait here would be a failure, hence the lock timeout) or taking it.
        async with sessions() as second, second.begin():
            await second.exec(text("SET LOCAL lock_timeout = '5s'"))
            other = await next_for(second, consultation.id, BEN.organiser, clock())
        assert other is not None and other.id == ids[1]


async def test_two_moderators_racing_for_the_queue_get_two_proposals(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation()
    ids = await _propose(
        sessions,
        clock,
        consultation,
        [("x", "We should open libraries late"), ("y", "We should plant trees")],
    )
    barrier = asyncio.Barrier(2)

    async def ask(actor):
        async with sessions() as session, session.begin():
            await barrier.wait()  # both open, neither has read the queue yet
            served = await next_for(session, consultation.id, actor.organiser, clock())
            return None if served is None else served.id

    assert sorted(await asyncio.gather(ask(ANA), ask(BEN))) == ids

"""Two workers (two engines on one database) receiving the same deliveries at the same time."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import func, select

from core.flow import Flow
from core.identity import Enrolment, enrol
from core.messages import Choice, Start
from core.models import (
    ChannelIdentity,
    Consultation,
    Participant,
    Participation,
    ProcessedEvent,
    Proposal,
    Vote,
    VoteKey,
)
from core.sqlite import begin_immediate
from core.storage import create_engine, session_factory
from core.voting import record_vote, tallies_of
from tests.conftest import SECRET
from tests.support import Clock


async def test_a_duplicate_delivered_to_two_workers_at_once_is_processed_once(
    database_url, engine, load_consultation, clock
) -> None:
    await load_consultation()
    other_engine = create_engine(database_url)
    try:
        worker_a = Flow(session_factory(engine), SECRET, clock=clock, rng=random.Random(1))
        worker_b = Flow(session_factory(other_engine), SECRET, clock=clock, rng=random.Random(2))
        sender = {"channel": "test", "user_id": "twin", "locale_hint": "en"}

        # Two first messages of one new participant, racing to create them.
        first = await asyncio.gather(
            worker_a.receive(Start(key="s1", **sender)),
            worker_b.receive(Start(key="s2", **sender)),
        )
        assert all(first)
        await worker_a.receive(Choice(key="c1", option="accept", **sender))
        card = (await worker_a.receive(Choice(key="c2", option="old", **sender)))[-1].card

        vote = Choice(key="v1", option=f"agree.{card}", **sender)
        results = await asyncio.gather(*(w.receive(vote) for w in (worker_a, worker_b) * 3))
        assert sum(1 for replies in results if replies) == 1

        async with session_factory(engine)() as session:
            count = select(func.count())
            assert (await session.exec(count.select_from(Participant))).one() == 1
            assert (await session.exec(count.select_from(ChannelIdentity))).one() == 1
            assert (await session.exec(count.select_from(Vote))).one() == 1
            assert (await session.exec(count.select_from(ProcessedEvent))).one() == 5
    finally:
        await other_engine.dispose()


class LockWait:
    """Tells a test holding a transaction open when the other worker waits for its lock.

    On SQLite the other worker waits in its `BEGIN IMMEDIATE` (retried asynchronously by
    `core.sqlite`): a listener run just before that begin marks the moment, and the attempt
    follows on the same thread before anything else runs. On PostgreSQL it waits inside the
    server on its `SELECT ... FOR UPDATE`: a listener marks the moment that statement is handed
    to the driver, which writes it to the server before this test's task runs again.
    """

    def __init__(self, database_url: str, waiter: AsyncEngine) -> None:
        self.reached = asyncio.Event()
        if database_url.startswith("sqlite"):
            # Listeners run in the order they were added (`insert=True` does not put one ahead
            # of an engine's own): take the waiting begin off, add this one, put it back after.
            event.remove(waiter.sync_engine, "begin", begin_immediate)
            event.listen(waiter.sync_engine, "begin", self.on_begin)
            event.listen(waiter.sync_engine, "begin", begin_immediate)
        else:
            event.listen(waiter.sync_engine, "before_cursor_execute", self.on_statement)

    def on_begin(self, connection: Any) -> None:
        self.reached.set()

    def on_statement(self, connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FOR UPDATE" in statement:
            self.reached.set()


async def test_two_workers_changing_one_vote_at_once_move_it_once_each(
    database_url, engine, load_consultation, clock
) -> None:
    """The second change waits for the first and starts from its key, not the one before."""
    consultation = await load_consultation()
    other_engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            person = (await enrol(session, SECRET, "test", "p", None, clock())).participant.id
            proposal = (
                await session.exec(
                    select(Proposal.id).where(Proposal.consultation_id == consultation.id)
                )
            ).first()
            await record_vote(session, person, proposal, VoteKey.AGREE, trusted=True, now=clock())
        changed = asyncio.Event()
        lock_wait = LockWait(database_url, other_engine)

        async def first_change() -> None:
            async with session_factory(engine)() as session, session.begin():
                await record_vote(
                    session, person, proposal, VoteKey.DISAGREE, trusted=True, now=clock()
                )
                changed.set()
                await lock_wait.reached.wait()  # holds its transaction open until the other waits

        async def second_change() -> None:
            await changed.wait()
            async with session_factory(other_engine)() as session, session.begin():
                await record_vote(
                    session, person, proposal, VoteKey.NEUTRAL, trusted=True, now=clock()
                )

        await asyncio.gather(first_change(), second_change())
        async with session_factory(engine)() as session:
            counts = (await tallies_of(session, [proposal]))[proposal]
            assert (counts["agree"], counts["disagree"], counts["neutral"]) == (0, 0, 1)
            stored = await session.get(Proposal, proposal)
            assert (stored.agree_count, stored.disagree_count, stored.neutral_count) == (0, 0, 1)
    finally:
        await other_engine.dispose()


async def _while_another_holds_the_participant(
    database_url: str, engine: AsyncEngine, clock: Clock, change: Callable[[Enrolment], None]
) -> Enrolment:
    """What a worker's lookup of participant "p" returns when it starts while another worker's
    transaction holds the participant and makes `change` before committing."""
    other_engine = create_engine(database_url)
    locked = asyncio.Event()
    lock_wait = LockWait(database_url, other_engine)

    async def holder() -> None:
        async with session_factory(engine)() as session, session.begin():
            enrolment = await enrol(session, SECRET, "test", "p", None, clock())
            locked.set()
            await lock_wait.reached.wait()  # the other lookup has started and waits for this one
            change(enrolment)
            session.add_all([enrolment.participant, *filter(None, [enrolment.participation])])

    async def waiter() -> Enrolment:
        await locked.wait()
        async with session_factory(other_engine)() as session, session.begin():
            return await enrol(session, SECRET, "test", "p", None, clock())

    try:
        _, seen = await asyncio.gather(holder(), waiter())
        return seen
    finally:
        await other_engine.dispose()


async def _participant_in(engine: AsyncEngine, clock: Clock, consultation: Consultation) -> None:
    """Participant "p", taking part in `consultation`."""
    async with session_factory(engine)() as session, session.begin():
        participant = (await enrol(session, SECRET, "test", "p", None, clock())).participant
        participant.current_consultation_id = consultation.id
        assert participant.id is not None and consultation.id is not None
        joined = {"participant_id": participant.id, "consultation_id": consultation.id}
        session.add_all(
            [participant, Participation(**joined, created_at=clock(), updated_at=clock())]
        )


async def test_a_lookup_that_waited_sees_the_consultation_switched_meanwhile(
    database_url, engine, load_consultation, clock
) -> None:
    first = await load_consultation()
    second = await load_consultation(slug="second")
    await _participant_in(engine, clock, first)

    def switch(enrolment: Enrolment) -> None:
        enrolment.participant.current_consultation_id = second.id

    seen = await _while_another_holds_the_participant(database_url, engine, clock, switch)
    assert seen.participant.current_consultation_id == second.id
    assert seen.consultation is not None and seen.consultation.id == second.id
    assert seen.participation is None  # not yet consented there


async def test_a_lookup_that_waited_sees_the_answers_given_meanwhile(
    database_url, engine, load_consultation, clock
) -> None:
    consultation = await load_consultation()
    await _participant_in(engine, clock, consultation)

    def answer(enrolment: Enrolment) -> None:
        assert enrolment.participation is not None
        enrolment.participation.profile = {"age": "65+"}
        enrolment.participation.consented_at = clock()

    seen = await _while_another_holds_the_participant(database_url, engine, clock, answer)
    assert seen.participation is not None
    assert seen.participation.profile == {"age": "65+"}
    assert seen.participation.consented_at is not None

"""Replies owed to participants outlive the worker that owed them (core.outbox, Flow.resume)."""

from __future__ import annotations

import asyncio
import random

from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.flow import Flow, Outcome
from core.messages import Choice, Command, Event, Start
from core.models import OwedReply
from core.outbox import Ledger
from tests.conftest import SECRET, Loader
from tests.support import Clock

STALE = 10.0
CHANNELS = ("telegram",)


def worker(
    sessions: async_sessionmaker[AsyncSession], clock: Clock, name: str, *, seed: int = 7
) -> Flow:
    ledger = Ledger(worker=name, stale_after=STALE)
    return Flow(sessions, SECRET, clock=clock, rng=random.Random(seed), ledger=ledger)


class Participant:
    """One Telegram-like participant whose events carry their address."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.keys = 0

    def event(self, kind: type[Event] = Start, **fields: object) -> Event:
        self.keys += 1
        key = f"{self.user_id}-{self.keys}"
        return kind(channel="telegram", user_id=self.user_id, key=key, address="42", **fields)  # type: ignore[arg-type]


async def owed_rows(sessions: async_sessionmaker[AsyncSession]) -> list[OwedReply]:
    async with sessions() as session:
        return list((await session.exec(select(OwedReply))).all())


async def to_first_card(flow: Flow, person: Participant) -> Outcome:
    """Start, consent, skip the profile question: the outcome that shows the first card."""
    outcome = await flow.handle(person.event(Start, payload="elders"))
    for _ in range(3):
        if outcome.replies[-1].card is not None:
            break
        pick = outcome.replies[-1].pick
        assert pick is not None
        outcome = await flow.handle(person.event(Choice, option=pick.options[0].id))
    assert outcome.replies[-1].card is not None
    return outcome


async def test_an_events_replies_are_owed_until_sent(
    sessions: async_sessionmaker[AsyncSession], clock: Clock, load_consultation: Loader
) -> None:
    await load_consultation()
    flow = worker(sessions, clock, "a")
    outcome = await flow.handle(Participant("ann").event(Start, payload="elders"))
    assert outcome.owed is not None
    assert [row.id for row in await owed_rows(sessions)] == [outcome.owed]

    flow.sent(outcome.owed)
    assert await flow.settle(CHANNELS) == []
    assert await owed_rows(sessions) == []


async def test_a_dead_workers_participants_get_their_current_question_again(
    sessions: async_sessionmaker[AsyncSession], clock: Clock, load_consultation: Loader
) -> None:
    await load_consultation()
    dead, alive = worker(sessions, clock, "dead"), worker(sessions, clock, "alive")
    await dead.settle(CHANNELS)  # it beat once, then owed a card it never sent
    card = await to_first_card(dead, Participant("bob"))
    assert await alive.settle(CHANNELS) == []  # the dead worker's beat is still recent

    clock.advance(seconds=STALE + 1)
    stranded = await alive.settle(CHANNELS)
    assert [owed.id for owed in stranded] == [
        row.id for row in await owed_rows(sessions) if row.owner == "alive"
    ]
    resumed = [await alive.resume(owed) for owed in stranded]
    # Every event of the dead worker was owed, but only the last one's turn is where the
    # participant still is: earlier ones are overtaken (and settled), it alone asks again.
    asking = [outcome for outcome in resumed if outcome.replies]
    assert len(stranded) > 1 and len(asking) == 1
    assert asking[0].replies[-1].text == card.replies[-1].text and asking[0].address == "42"
    alive.sent(asking[0].owed)
    assert await alive.settle(CHANNELS) == []
    assert await owed_rows(sessions) == []


async def test_an_event_delivered_again_resumes_once_and_only_if_its_worker_died(
    sessions: async_sessionmaker[AsyncSession], clock: Clock, load_consultation: Loader
) -> None:
    await load_consultation()
    first, second = worker(sessions, clock, "first"), worker(sessions, clock, "second")
    await first.settle(CHANNELS)
    await second.settle(CHANNELS)
    person = Participant("cy")
    card = await to_first_card(first, person)
    tap = person.event(Choice, option=card.replies[-1].pick.options[0].id)  # type: ignore[union-attr]
    handled = await first.handle(tap)
    assert handled.owed is not None and not handled.duplicate

    # The first worker is alive and sending: the copy sends nothing.
    assert (await second.handle(tap)).replies == []

    clock.advance(seconds=STALE + 1)
    async with sessions() as session, session.begin():
        await second.ledger.settle(session, clock())  # type: ignore[union-attr]  # a beat alone
    again = await second.handle(tap)
    assert again.duplicate and again.replies[-1].text == handled.replies[-1].text
    assert again.address == "42" and again.owed == handled.owed
    # Taken over by a live worker: a third copy sends nothing.
    copy = await worker(sessions, clock, "third").handle(tap)
    assert copy.duplicate and copy.replies == []


async def test_two_workers_taking_over_the_same_rows_share_them_out(
    sessions: async_sessionmaker[AsyncSession], clock: Clock, load_consultation: Loader
) -> None:
    await load_consultation()
    dead = worker(sessions, clock, "dead")
    await dead.settle(CHANNELS)
    for name in ("dee", "eve", "fay"):
        await to_first_card(dead, Participant(name))
    owed = len(await owed_rows(sessions))
    clock.advance(seconds=STALE + 1)
    one, other = worker(sessions, clock, "one"), worker(sessions, clock, "other")
    taken = await asyncio.gather(one.settle(CHANNELS), other.settle(CHANNELS))
    ids = [owed.id for batch in taken for owed in batch]
    assert len(ids) == len(set(ids)) == owed


async def test_a_forgotten_participant_is_owed_nothing(
    sessions: async_sessionmaker[AsyncSession], clock: Clock, load_consultation: Loader
) -> None:
    await load_consultation()
    dead, alive = worker(sessions, clock, "dead"), worker(sessions, clock, "alive")
    person = Participant("gus")
    await to_first_card(dead, person)
    forget = await dead.handle(person.event(Command, name="forget"))
    await dead.handle(person.event(Choice, option=forget.replies[-1].pick.options[0].id))  # type: ignore[union-attr]
    async with sessions() as session:
        assert (await session.exec(select(func.count()).select_from(OwedReply))).one() > 0

    clock.advance(seconds=STALE + 1)
    resumed = [await alive.resume(owed) for owed in await alive.settle(CHANNELS)]
    assert all(outcome.replies == [] for outcome in resumed)
    await alive.settle(CHANNELS)
    assert await owed_rows(sessions) == []


async def test_without_a_ledger_nothing_is_owed(
    flow: Flow, sessions: async_sessionmaker[AsyncSession], load_consultation: Loader
) -> None:
    await load_consultation()
    outcome = await flow.handle(Participant("hal").event(Start, payload="elders"))
    assert outcome.replies and outcome.owed is None
    assert await owed_rows(sessions) == []


async def test_a_question_overtaken_by_a_newer_turn_is_not_asked_again(
    sessions: async_sessionmaker[AsyncSession], clock: Clock, load_consultation: Loader
) -> None:
    """The dead worker owed a reply; the participant, hearing nothing, wrote again to a live
    worker, which answered: the dead worker's reply is settled without being sent."""
    await load_consultation()
    dead, alive = worker(sessions, clock, "dead"), worker(sessions, clock, "alive")
    person = Participant("ida")
    await alive.settle(CHANNELS)  # it beats, as a server does before it takes events
    await to_first_card(alive, person)
    await dead.settle(CHANNELS)
    lost = await dead.handle(person.event(Command, name="help"))
    answered = await alive.handle(person.event(Command, name="help"))
    alive.sent(answered.owed)
    clock.advance(seconds=STALE + 1)
    stranded = await alive.settle(CHANNELS)
    assert [owed.id for owed in stranded] == [lost.owed]
    assert (await alive.resume(stranded[0])).replies == []
    await alive.settle(CHANNELS)
    left = {row.id for row in await owed_rows(sessions)}
    assert lost.owed not in left and answered.owed not in left  # both settled


async def test_a_row_its_own_live_worker_failed_to_send_is_taken_up_again(
    sessions: async_sessionmaker[AsyncSession], clock: Clock, load_consultation: Loader
) -> None:
    await load_consultation()
    flow = worker(sessions, clock, "live")
    await flow.settle(CHANNELS)
    person = Participant("joe")
    card = await to_first_card(flow, person)
    for owed in await owed_rows(sessions):  # all but the last were sent
        if owed.id != card.owed:
            flow.sent(owed.id)
    assert await flow.settle(CHANNELS) == []  # in flight: someone is sending it
    flow.release(card.owed)  # ...until that resend fails
    clock.advance(seconds=STALE + 1)
    again = await flow.settle(CHANNELS)
    assert [owed.id for owed in again] == [card.owed]
    resumed = await flow.resume(again[0])
    assert resumed.replies[-1].text == card.replies[-1].text


async def test_a_settle_that_does_not_commit_is_written_by_the_next(
    sessions: async_sessionmaker[AsyncSession], clock: Clock, load_consultation: Loader
) -> None:
    await load_consultation()
    flow = worker(sessions, clock, "live")
    outcome = await flow.handle(Participant("kim").event(Start, payload="elders"))
    flow.sent(outcome.owed)
    ledger = flow.ledger
    assert ledger is not None
    async with sessions() as session:
        transaction = await session.begin()
        await ledger.settle(session, clock())
        await transaction.rollback()
    ledger.settle_failed()
    assert len(await owed_rows(sessions)) == 1
    await flow.settle(CHANNELS)
    assert await owed_rows(sessions) == []

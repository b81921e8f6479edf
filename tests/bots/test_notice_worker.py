"""The delivery worker of `consult deliver --once` (NoticeWorker.drain), on both databases: it
beats for the whole drain, so a round that lasts (pacing, a slow platform) never looks dead to
a `consult serve` running meanwhile, which would mark its notices unknown."""

from __future__ import annotations

import asyncio

from sqlmodel import select

from bots.notices import NoticeWorker
from core.definitions import settings_of
from core.identity import enrol
from core.models import Notice
from core.moderation import Accept, Actor, Source, decide
from core.notices import Handover
from core.proposals import submit_proposal
from tests.conftest import SECRET

ANA = Actor("ana@example.org", Source.CLI)


class SlowChannel:
    """A platform that answers only when the test says so, then "try again later"."""

    name = "telegram"

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.go_on = asyncio.Event()

    async def notify(self, notice) -> Handover:
        self.started.set()
        await self.go_on.wait()
        return Handover.RETRY


class Metronome:
    """The pause between two beats, ticked by the test: `waiting` holds one item each time the
    beating task starts to wait, so the test knows the beat before it is done."""

    def __init__(self) -> None:
        self.waiting: asyncio.Queue[None] = asyncio.Queue()
        self._tick = asyncio.Event()

    async def pause(self, seconds: float) -> None:
        self._tick.clear()
        self.waiting.put_nowait(None)
        await self._tick.wait()

    def tick(self) -> None:
        self._tick.set()


async def test_a_drain_beats_while_a_long_round_is_sent(sessions, clock, load_consultation):
    consultation = await load_consultation()
    async with sessions() as session, session.begin():
        author = (await enrol(session, SECRET, "telegram", "u1", "addr-u1", clock())).participant
        assert author.id is not None
        proposal = await submit_proposal(
            session,
            author.id,
            consultation.id,
            "We should open libraries on Sundays",
            "en",
            settings_of(consultation),
            clock(),
        )
        assert proposal.id is not None
    async with sessions() as session, session.begin():
        await decide(session, proposal.id, Accept(), ANA, clock())
    slow, metronome = SlowChannel(), Metronome()
    once = NoticeWorker(
        sessions, {"telegram": slow}, clock=clock, stale_after=10, pause=metronome.pause
    )
    draining = asyncio.create_task(once.drain())
    await slow.started.wait()
    await metronome.waiting.get()  # the beating task is between two beats
    clock.advance(seconds=11)  # a long round: longer than the delay after which a worker is dead
    metronome.tick()
    await metronome.waiting.get()  # it beat, and waits for the next one
    serve = NoticeWorker(sessions, {}, clock=clock, stale_after=10)
    await serve.beat()
    await serve.round()  # consult serve's round, running meanwhile: the drain is alive
    slow.go_on.set()
    assert (await draining)[Handover.RETRY] == 1
    async with sessions() as session:
        state = (await session.exec(select(Notice.state))).one()
    assert state == "queued", state  # to try again, not unknown

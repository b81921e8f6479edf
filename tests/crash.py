"""`consult serve` killed with SIGKILL under load, for any channel: the participants' side (each
request posted until the webhook answers 200, each answer waiting for the question it leads to),
the kill and the restart, and what the database must hold afterwards.

A channel's crash test supplies only what is its own, as a `Channel`: how it builds and signs a
request, how it reads the questions a participant was shown and the option they choose, and its
fake platform.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

import httpx
from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bench.processes import Served, consult_process
from core.models import DeliveryWorker, OwedReply, ProcessedEvent, Proposal, Vote

PARTICIPANTS = 30
VOTES = 5  # each participant's, after onboarding, each with its qualification
# How long a participant waits for their next question: long enough for a restart and for the
# dead worker's replies to be taken over (TAKEOVER).
PATIENCE = 60.0
# The server's settings under which a restarted server takes over the replies a dead worker owed
# within a second or two.
TAKEOVER = {"CONSULT_DELIVERY_BEAT_SECONDS": "0.2", "CONSULT_DELIVERY_STALE_SECONDS": "1"}


async def silence_dead_workers(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Make the delivery workers that beat so far (their servers were killed: all dead) look
    silent for long, as they will once CONSULT_DELIVERY_STALE_SECONDS have passed: the next
    server's first round then finds them dead, before it sends anything, instead of a test
    reading rows until a silence has lasted."""
    async with sessions() as session, session.begin():
        await session.exec(update(DeliveryWorker).values(beat_at=datetime(2000, 1, 1, tzinfo=UTC)))


Who = TypeVar("Who", bound=Hashable)  # a participant, as the channel's test names them
Message = TypeVar("Message")  # a message that asks something, as the channel's fake keys it
Question = TypeVar("Question")  # what that message offers to choose from
T = TypeVar("T")


@dataclass(frozen=True)
class Request:
    """A request to the webhook: `send` posts it (again), returning the answer or raising
    httpx.TransportError when no server is there; `key` names it as the server keys its
    idempotency."""

    key: Hashable
    send: Callable[[], Awaitable[httpx.Response]]


@dataclass(frozen=True)
class Answer:
    """A participant's answer to the question shown last."""

    request: Request
    option: str  # what they chose, for a failure's message
    agreed: int | None  # the proposal they agreed to, if that is what they chose


class Channel(Protocol[Who, Message, Question]):
    """What a channel's crash test supplies: its requests, its fake, what its participants see."""

    def server_at(self, url: str) -> None:
        """Post to the server at `url` from now on (a restarted one listens on another port)."""

    def listen(self, heard: Callable[[Who], None]) -> None:
        """Have the fake call `heard(who)`, on any thread, after each call the bot makes for
        `who` (once the fake recorded what it changes)."""

    def start(self, who: Who) -> Request:
        """The request with which `who` starts the consultation."""

    def questions(self, who: Who) -> dict[Message, Question]:
        """The messages `who` was sent that ask something, as they are now (edits included), in
        the order they were first shown."""

    def answer(self, who: Who, message: Message, question: Question) -> Answer:
        """`who`'s preferred answer to `question`, asked in `message`."""

    def recent(self, who: Who) -> str:
        """The bot's last calls for `who`, for a failure's message."""


class Load(Generic[Who, Message, Question]):
    """The participants' side: the server they talk to through `channel`, and what they saw.

    Each takes `onboarding` answers before their first card, then answers VOTES cards and their
    qualifications; the server is killed once a third of all those answers were acknowledged."""

    def __init__(self, channel: Channel[Who, Message, Question], *, onboarding: int) -> None:
        self.channel = channel
        self.taps = onboarding + 2 * VOTES
        self.kill_after = PARTICIPANTS * self.taps // 3  # acknowledged requests before the kill
        self.loop = asyncio.get_running_loop()
        self.up = asyncio.Event()  # a server listens
        self.killed = asyncio.Event()
        self.enough = asyncio.Event()  # kill_after requests were acknowledged
        self.killed_at = 0  # requests acknowledged when the server was killed
        self.answered: set[Hashable] = set()  # the requests the webhook answered 200, by key
        self.shown: dict[Who, tuple[Message, Question]] = {}  # the question to answer next
        self.voted: dict[Who, set[int]] = {}  # the proposals each agreed to
        self.stranded: list[Who] = []
        self.waking: dict[Who, asyncio.Event] = {}  # set when the bot calls the fake for them
        channel.listen(self.heard)

    @property
    def acknowledged(self) -> int:
        return len(self.answered)

    async def play_through_a_kill(self, env: dict[str, str], participants: Iterable[Who]) -> None:
        """Run `consult serve` with `env` while `participants` play, kill it (SIGKILL: no
        shutdown, no flush) once `kill_after` requests were acknowledged, start it again, and
        wait until everyone is through; every server is stopped on return.

        Servers start and stop in a thread, so that this loop keeps serving a fake that runs in
        it (a server stopping gracefully sends what it still has)."""
        async with contextlib.AsyncExitStack() as servers:

            async def start() -> Served:
                served = await servers.enter_async_context(in_thread(consult_process(env)))
                self.channel.server_at(served.url)
                self.up.set()
                return served

            first = await start()
            playing = asyncio.gather(*(self.play(who) for who in participants))
            waiting: set[asyncio.Future[Any]] = {asyncio.ensure_future(self.enough.wait()), playing}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            assert not playing.done(), "the load ended before the kill"
            self.up.clear()
            os.kill(first.pid, signal.SIGKILL)
            self.killed.set()
            self.killed_at = self.acknowledged
            await start()
            await playing

    async def post(self, request: Request) -> None:
        """Send `request` until the webhook answers 200, across the restart, as the platform
        redelivers it (or the person tries again)."""
        while True:
            await self.up.wait()
            try:
                answer: httpx.Response | None = await request.send()
            except httpx.TransportError:  # killed under us: the request stands
                answer = None
            if answer is not None and answer.status_code == 200:
                break
            if answer is not None and answer.status_code not in (500, 502, 503):
                raise AssertionError(f"webhook answered {answer.status_code}: {answer.text}")
            if not self.killed.is_set():  # only the kill may make an answer fail
                shown = "no answer" if answer is None else f"{answer.status_code}: {answer.text}"
                raise AssertionError(f"the webhook failed before the kill: {shown}")
        self.answered.add(request.key)
        if self.acknowledged >= self.kill_after:
            self.enough.set()

    def heard(self, who: Who) -> None:
        """The fake's listener, on whichever thread it runs: wake whoever waits on `who`."""
        waking = self.waking.get(who)
        if waking is not None:
            self.loop.call_soon_threadsafe(waking.set)

    async def play(self, who: Who) -> None:
        await self.post(self.channel.start(who))
        assert await self.new_question(who, {}), f"{who} was not welcomed"
        for _ in range(self.taps * 3):
            if len(self.voted.get(who, ())) == VOTES:
                return
            # The question shown last: after a crash it may be one asked again, that the
            # participant had already answered; they answer it, as people do.
            await self.answer(who)
        raise AssertionError(f"{who} did not get through {VOTES} votes")

    async def answer(self, who: Who) -> None:
        """Answer the question shown last, and wait for the question it leads to: the answered
        message edited into it, or a new message (one asked again after the crash)."""
        message, question = self.shown[who]
        before = self.channel.questions(who)
        answer = self.channel.answer(who, message, question)
        await self.post(answer.request)
        if answer.agreed is not None:
            self.voted.setdefault(who, set()).add(answer.agreed)
        if not await self.new_question(who, before):
            self.stranded.append(who)
            recent = self.channel.recent(who)
            raise AssertionError(f"{who} got no question after {answer.option!r}: {recent}")

    async def new_question(self, who: Who, before: dict[Message, Question]) -> bool:
        """Whether a question other than those `before` shows within PATIENCE, woken by the
        fake's listener, never by time; the last one shown becomes the one `who` answers next."""
        waking = self.waking.setdefault(who, asyncio.Event())

        def asked() -> bool:
            questions = self.channel.questions(who).items()
            changed = [
                (message, question)
                for message, question in questions
                if before.get(message) != question
            ]
            if changed:
                self.shown[who] = changed[-1]
            return bool(changed)

        try:
            async with asyncio.timeout(PATIENCE):
                while not asked():
                    waking.clear()
                    if asked():  # a call landed before the clear
                        break
                    await waking.wait()
        except TimeoutError:
            return False
        return True


async def assert_nothing_lost(
    load: Load[Any, Any, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Nobody was stranded, the kill came mid-load, and the database holds every vote tapped,
    counted once, every request answered as processed once, and no reply still owed."""
    assert load.stranded == [], f"left without their next question: {load.stranded}"
    assert PARTICIPANTS * 3 // 2 < load.killed_at < load.acknowledged, (
        f"killed at {load.killed_at} of {load.acknowledged} acknowledged, not mid-load"
    )
    async with sessions() as session:
        votes = (await session.exec(select(Vote.proposal_id))).all()
        counted = (await session.exec(select(func.sum(Proposal.vote_count)))).one()
        events = (await session.exec(select(func.count()).select_from(ProcessedEvent))).one()
        owed = (await session.exec(select(func.count()).select_from(OwedReply))).one()
    tapped = Counter(proposal for agreed in load.voted.values() for proposal in agreed)
    saved = Counter(votes)
    assert saved == tapped, f"votes lost: {tapped - saved}, made up: {saved - tapped}"
    assert counted == len(votes) == PARTICIPANTS * VOTES, (  # none counted twice
        f"{counted} counted, {len(votes)} saved, {PARTICIPANTS * VOTES} cast"
    )
    assert events == len(load.answered), (  # every request answered was processed, once
        f"{events} events processed, {len(load.answered)} requests answered"
    )
    assert owed == 0, f"{owed} replies still owed"  # the killed server's included


@contextlib.asynccontextmanager
async def in_thread(manager: contextlib.AbstractContextManager[T]) -> AsyncIterator[T]:
    """`manager` entered and left in a thread, so that this loop keeps running meanwhile."""
    value = await asyncio.to_thread(manager.__enter__)
    try:
        yield value
    except BaseException as error:
        if not await asyncio.to_thread(manager.__exit__, type(error), error, error.__traceback__):
            raise
    else:
        await asyncio.to_thread(manager.__exit__, None, None, None)

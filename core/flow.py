"""The core's front door: one inbound event in, the replies out, in one transaction.

The event's idempotency key is recorded in the same transaction as its effects, so a duplicate
delivery (a retried webhook, two workers receiving the same update) is a no-op: the unique
constraint on `ProcessedEvent` makes the second insert fail and that copy answers nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from core.conversation import Conversation
from core.identity import enrol, enrolment_by_id
from core.messages import Event, Option, Reply, Resume
from core.models import ProcessedEvent
from core.moderation.similarity import DEFAULT as DEFAULT_SIMILARITY
from core.moderation.similarity import Similarity
from core.outbox import Ledger, Owed
from core.sqlite import one_writer_at_a_time

Clock = Callable[[], datetime]
_ATTEMPTS = 3
# A Core insert (no ORM unit of work): the first statement of every event's transaction.
_RECORD_EVENT = insert(SQLModel.metadata.tables["processedevent"])
_PARTICIPANTS = SQLModel.metadata.tables["participant"]
_POSITION = select(_PARTICIPANTS.c.state).where(_PARTICIPANTS.c.id == bindparam("b_participant"))


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Position:
    """Where a participant is in their conversation: the number of their last turn."""

    participant_id: int
    turn: int


async def _position(session: AsyncSession, participant_id: int) -> Position | None:
    connection = await session.connection()
    state = (await connection.execute(_POSITION, {"b_participant": participant_id})).scalar()
    return None if state is None else Position(participant_id, int(state.get("turn", 0)))


@dataclass(frozen=True)
class Outcome:
    """What one event led to: the replies, and the option taken if the event was a choice.

    `chosen` lets a channel that can edit messages replace a tapped card's buttons with the
    choice; it is None when the tap was refused (a stale button) or the event was not a choice.
    `duplicate` is True when the event had already been processed: then there are no replies,
    unless the worker that handled it died before sending them (`core.outbox`), in which case the
    replies ask the participant's current question again.
    `locale` is the language the replies are in, for what a channel adds around them (a list's
    button label, say). `refusal` is the reason the conversation refused what the participant
    typed or submitted and asks for it again (a proposal too short, say), for a channel that
    shows it beside the input (a form's error); None when nothing was refused.
    """

    replies: list[Reply] = field(default_factory=list)
    chosen: Option | None = None
    duplicate: bool = False
    locale: str | None = None
    refusal: str | None = None
    # The answer just given, as the first line of the message a channel edits the tapped one
    # into ("✓ Agree: We should…"); None when the event chose nothing.
    recall: str | None = None
    # The owed reply to settle once the replies went out (`Flow.sent`); None when nothing is
    # owed (no ledger, or no reply).
    owed: int | None = None
    # Where to send the replies of a participant resumed without an event of theirs
    # (`Flow.resume`): their address on the channel, and their position in the conversation
    # then (`Flow.still_current`).
    address: str | None = None
    position: Position | None = None


class Flow:
    """Runs participants' conversations over a database; safe to share between tasks."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        secret: bytes,
        *,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
        ledger: Ledger | None = None,
        similarity: Similarity = DEFAULT_SIMILARITY,
    ) -> None:
        """With a `ledger`, every event's replies are owed until `sent` (see `core.outbox`).
        `similarity` finds the accepted proposals a new one resembles (an operator's own
        model may stand in for the offline default)."""
        self.sessions = sessions
        self.similarity = similarity
        self.secret = secret
        self.clock = clock
        self.rng = rng or random.Random()
        self.ledger = ledger
        # SQLite has one writer at a time: queueing this process's transactions here, rather
        # than polling for the write lock (core.sqlite), keeps latency flat under load. Other
        # processes on the same file are waited for by that polling.
        bind = sessions.kw.get("bind")
        serial = bind is not None and one_writer_at_a_time(bind.dialect)
        self._one_writer = asyncio.Lock() if serial else None

    async def receive(self, event: Event) -> list[Reply]:
        """Apply `event` to its sender's conversation; [] if this event was already processed."""
        return (await self.handle(event)).replies

    async def handle(self, event: Event) -> Outcome:
        """Apply `event` to its sender's conversation and say what came of it.

        A race with another event of the same participant (two first messages creating the
        participant, say) makes the transaction fail on a unique constraint; it is retried.
        """
        for attempt in range(_ATTEMPTS):
            try:
                return await self._handle_once(event)
            except IntegrityError:
                if await self._already_processed(event):
                    return await self._redelivered(event)
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def _handle_once(self, event: Event) -> Outcome:
        async with self._writing():
            return await self._transaction(event)

    def _writing(self) -> contextlib.AbstractAsyncContextManager[object]:
        return self._one_writer or contextlib.nullcontext()

    async def _transaction(self, event: Event) -> Outcome:
        now = self.clock()
        async with self.sessions() as session, session.begin():
            seen = {"channel": event.channel, "key": event.key, "processed_at": now}
            await session.exec(_RECORD_EVENT, params=seen)
            enrolment = await enrol(
                session, self.secret, event.channel, event.user_id, event.address, now
            )
            conversation = Conversation(
                session, enrolment, event, now=now, rng=self.rng, similarity=self.similarity
            )
            replies = await conversation.run()
            owed = None
            if self.ledger is not None and replies:
                participant = conversation.participant_id
                owed = await self.ledger.record(
                    session,
                    event.channel,
                    event.key,
                    participant,
                    conversation.locale,
                    conversation.number,
                    now,
                )
            return Outcome(
                replies,
                conversation.chosen,
                locale=conversation.locale,
                refusal=conversation.refusal,
                recall=conversation.recall,
                owed=owed,
            )

    async def _already_processed(self, event: Event) -> bool:
        async with self.sessions() as session:
            found = await session.get(ProcessedEvent, (event.channel, event.key))
            return found is not None

    async def _redelivered(self, event: Event) -> Outcome:
        """An event handled already: nothing again, unless its replies were lost with the
        worker that owed them; then the participant's current question, once."""
        if self.ledger is None:
            return Outcome(duplicate=True)
        async with self._writing(), self.sessions() as session, session.begin():
            owed = await self.ledger.take_over_event(
                session, event.channel, event.key, self.clock()
            )
        if owed is None:
            return Outcome(duplicate=True)
        try:
            return await self.resume(owed, duplicate=True)
        except BaseException:  # the platform delivers it again, or the sweep takes it up
            self.release(owed.id)
            raise

    async def resume(self, owed: Owed, *, duplicate: bool = False) -> Outcome:
        """Ask the participant of `owed` their current question again, to their address on its
        channel. Nothing is asked, and the row is settled, if they can no longer be reached
        (forgotten, say) or have had a turn since: its replies carry them forward."""
        now = self.clock()
        async with self._writing(), self.sessions() as session, session.begin():
            found = await enrolment_by_id(session, owed.participant_id, owed.channel)
            overtaken = (
                found is not None
                and owed.turn is not None
                and (int(found[0].participant.state.get("turn", 0)) != owed.turn)
            )
            if found is None or overtaken:
                self.sent(owed.id)
                return Outcome(duplicate=duplicate)
            enrolment, address = found
            event = Resume(
                channel=owed.channel,
                user_id="",
                key=f"resume:{owed.id}",
                locale_hint=owed.locale,
            )
            conversation = Conversation(
                session, enrolment, event, now=now, rng=self.rng, similarity=self.similarity
            )
            replies = await conversation.run()
            position = Position(owed.participant_id, conversation.number)
        return Outcome(
            replies,
            duplicate=duplicate,
            locale=conversation.locale,
            owed=owed.id,
            address=address,
            position=position,
        )

    async def still_current(self, outcome: Outcome) -> bool:
        """Whether the participant of a resumed outcome is still where it left them: if an
        event of theirs moved them on meanwhile, that event's replies carry them forward, and
        this question asked again would come after a newer one."""
        if outcome.position is None:
            return True
        async with self.sessions() as session:
            now = await _position(session, outcome.position.participant_id)
        return now == outcome.position

    def sent(self, owed: int | None) -> None:
        """The replies of an outcome went out (or were refused for good): settle what they owed.

        Written in batches by `settle`, so that a send costs no transaction of its own.
        """
        if owed is not None and self.ledger is not None:
            self.ledger.sent(owed)

    def release(self, owed: int | None) -> None:
        """The replies of `owed` could not be sent, for a reason that may pass (the network, the
        database): a later `settle` takes it up again once it is stale."""
        if owed is not None and self.ledger is not None:
            self.ledger.release(owed)

    async def settle(self, channels: Collection[str]) -> list[Owed]:
        """Beat, write the replies sent since the last call, and take up what is owed on
        `channels` and nobody sends: dead workers' rows, and this worker's own left behind. The
        caller sends those (`resume`)."""
        if self.ledger is None:
            return []
        now = self.clock()
        taken: list[Owed] = []
        try:
            async with self._writing(), self.sessions() as session, session.begin():
                await self.ledger.settle(session, now)
                if channels:
                    taken = await self.ledger.take_over_stranded(session, now, channels)
        except BaseException:
            self.ledger.settle_failed()
            for owed in taken:  # taken in a transaction that did not commit
                self.ledger.release(owed.id)
            raise
        self.ledger.settled()
        return taken

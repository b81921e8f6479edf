"""Two workers (two engines on one database) receiving the same deliveries at the same time."""

from __future__ import annotations

import asyncio
import random

from sqlmodel import func, select

from core.flow import Flow
from core.messages import Choice, Start
from core.models import ChannelIdentity, Participant, ProcessedEvent, Vote
from core.storage import create_engine, session_factory
from tests.conftest import SECRET


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

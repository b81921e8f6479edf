"""Notices through PTB and the fake Bot API over real HTTP: two workers draining one outbox at
the same moment send each notice once (on PostgreSQL they claim with SKIP LOCKED), a throttled
chat is waited out, and a Bot API that cannot be reached leaves the notice to try again later."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import count

from sqlmodel import col, select

from adapters.pacing import Pacer
from adapters.telegram.sender import ATTEMPTS, TelegramSender
from adapters.telegram.webhook import TelegramChannel, TelegramConfig, bot_for
from bench.fakes.telegram_api import FakeTelegram, RateLimits
from bench.processes import free_port
from bots.notices import NoticeWorker
from core.definitions import settings_of
from core.identity import enrol
from core.models import Notice
from core.moderation import Accept, Actor, Source, decide_many
from core.notices import Handover
from core.proposals import submit_proposal
from tests.adapters.telegram.test_telegram_http import SECRET as WEBHOOK_SECRET
from tests.adapters.telegram.test_telegram_http import TOKEN
from tests.conftest import SECRET

ANA = Actor("ana@example.org", Source.CLI)
FIRST_CHAT = 82_001
_chats = count(FIRST_CHAT)


@asynccontextmanager
async def opened(flow, api_url: str, **limits: float) -> AsyncIterator[TelegramChannel]:
    channel = TelegramChannel(TelegramConfig(TOKEN, WEBHOOK_SECRET, api_url=api_url, **limits))
    await channel.open(flow)
    try:
        yield channel
    finally:
        await channel.close()


async def _accepted(sessions, clock, consultation, authors: int) -> list[int]:
    """`authors` Telegram participants' proposals, accepted together; their chats."""
    chats, ids = [], []
    async with sessions() as session, session.begin():
        for _ in range(authors):
            chat = next(_chats)
            enrolment = await enrol(session, SECRET, "telegram", str(chat), str(chat), clock())
            assert enrolment.participant.id is not None
            proposal = await submit_proposal(
                session,
                enrolment.participant.id,
                consultation.id,
                f"We should ring {chat}",
                "en",
                settings_of(consultation),
                clock(),
            )
            chats.append(chat)
            ids.append(proposal.id)
        await decide_many(session, ids, Accept(), ANA, clock())
    return chats


async def test_two_workers_at_once_send_each_notice_once(
    load_consultation, sessions, clock, flow
) -> None:
    consultation = await load_consultation()
    chats = await _accepted(sessions, clock, consultation, 40)
    with FakeTelegram(TOKEN, bot_username="elders_bot", limits=None) as fake:
        fast = {"messages_per_second": 1000.0, "chat_messages_per_second": 1000.0}
        async with opened(flow, fake.url, **fast) as one, opened(flow, fake.url, **fast) as two:
            workers = [
                NoticeWorker(sessions, {"telegram": channel}, clock=clock) for channel in (one, two)
            ]
            done = await asyncio.gather(*(worker.drain() for worker in workers))
    assert done[0][Handover.SENT] + done[1][Handover.SENT] == 40
    for chat in chats:
        assert len(fake.calls("sendMessage", chat_id=chat)) == 1, f"chat {chat}"
    async with sessions() as session:
        states = (await session.exec(select(Notice.state).order_by(col(Notice.id)))).all()
    assert set(states) == {"sent"}


async def test_a_throttled_chat_is_waited_out(load_consultation, sessions, clock, flow) -> None:
    consultation = await load_consultation()
    (throttled,) = await _accepted(sessions, clock, consultation, 1)
    limits = RateLimits(per_chat_per_second=1.0, per_chat_burst=1.0)
    with FakeTelegram(TOKEN, bot_username="elders_bot", limits=limits) as fake:
        # Our pacing lifted: the fake's 429 (retry after 1 s) is what slows the second send.
        fast = {"messages_per_second": 1000.0, "chat_messages_per_second": 1000.0}
        async with opened(flow, fake.url, **fast) as channel:
            fake.chat(throttled)
            assert (await channel.sender.notify(throttled, "first")) == Handover.SENT
            worker = NoticeWorker(sessions, {"telegram": channel}, clock=clock)
            assert await worker.drain() == {Handover.SENT: 1}
    assert [call.status for call in fake.calls("sendMessage")] == [200, 429, 200]


async def test_a_bot_api_that_cannot_be_reached_is_tried_again_not_taken_as_sent() -> None:
    waits: list[float] = []

    async def wait(seconds: float) -> None:  # the backoff, recorded instead of waited
        waits.append(seconds)

    bot = bot_for(TOKEN, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    await bot.request.initialize()  # not bot.initialize(): its getMe would fail first
    try:
        sender = TelegramSender(bot, Pacer(1000.0, 1000.0), sleep=wait)
        assert await sender.notify(FIRST_CHAT, "hello") == Handover.RETRY
    finally:
        await bot.request.shutdown()
    assert len(waits) == ATTEMPTS

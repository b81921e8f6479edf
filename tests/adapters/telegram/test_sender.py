"""The paced sender against the fake Bot API, through the real PTB client: Telegram's limits
are kept, a 429 that still comes is waited out, and a refused request is dropped, not retried."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from adapters.pacing import Pacer
from adapters.telegram.render import TelegramMessage
from adapters.telegram.sender import TelegramSender
from adapters.telegram.webhook import bot_for
from bench.fakes.telegram_api import FakeTelegram, RateLimits

TOKEN = "123456789:AAH-sender_test"


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    # One message of slack over the pacer's burst below: on a busy machine two requests paced
    # half a second apart can reach the fake closer together than they left.
    limits = RateLimits(per_chat_per_second=2.0, per_chat_burst=3.0)
    with FakeTelegram(TOKEN, limits=limits) as telegram:
        yield telegram


async def test_a_429_is_waited_out_and_every_message_arrives(fake: FakeTelegram) -> None:
    # Our pacer is told the limit is much looser than it is, so Telegram's 429s come back.
    async with bot_for(TOKEN, fake.url) as bot:
        sender = TelegramSender(bot, Pacer(1000, 1000))
        for index in range(6):
            await sender.send(4242, TelegramMessage(f"message {index}"))
    assert fake.sent_texts(4242) == [f"message {index}" for index in range(6)]
    assert sender.throttled > 0 and fake.count("sendMessage", ok=False) == sender.throttled
    assert sender.failures == 0


async def test_pacing_keeps_under_the_limit_without_a_429(fake: FakeTelegram) -> None:
    async with bot_for(TOKEN, fake.url) as bot:
        sender = TelegramSender(bot, Pacer(30, 2, per_key_burst=2))
        started = time.monotonic()
        for index in range(6):
            await sender.send(4242, TelegramMessage(f"message {index}"))
    assert fake.count("sendMessage", ok=False) == 0 and sender.throttled == 0
    assert time.monotonic() - started >= 1.5  # 2 at once, then 2 per second
    assert len(fake.sent_texts(4242)) == 6


async def test_a_refused_request_is_logged_and_dropped(fake: FakeTelegram) -> None:
    fake.blocked.add(777)  # the participant blocked the bot: 403 on every send
    async with bot_for(TOKEN, fake.url) as bot:
        sender = TelegramSender(bot, Pacer(30, 1))
        await sender.send(777, TelegramMessage("hello"))
        await sender.edit(4242, 999, "no such message")
    assert sender.failures == 2
    assert fake.count("sendMessage") == 1 and fake.count("editMessageText") == 1  # no retries

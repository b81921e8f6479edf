"""The embeddable aiogram router: a real aiogram 3 Dispatcher and Bot, our fake Bot API.

Updates are built by the fake (so that taps carry the message ids it really sent) and fed to
the Dispatcher as a bot's webhook or polling loop would; what the bot did is read back from the
fake's record of calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import Command
from aiogram.types import Message, Update
from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from adapters.telegram.aiogram import consultation_router
from bench.fakes.telegram_api import FakeTelegram
from core.flow import Flow
from core.models import Proposal, Qualification
from tests.conftest import Loader

TOKEN = "987654321:AAF-aiogram_test_token"
ALICE = 5151


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    # No rate limits here: flood control has a test of its own below.
    with FakeTelegram(TOKEN, bot_username="elders_bot", limits=None) as telegram:
        yield telegram


@asynccontextmanager
async def aiogram_bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    """aiogram's Bot talking to the fake (closing its aiohttp session on exit)."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake.url))
    async with Bot(TOKEN, session=session) as bot:
        yield bot


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    async with aiogram_bot(fake) as bot:
        yield bot


def ping_router() -> Router:
    """A team's own router, with a command of its own."""
    router = Router(name="team")

    @router.message(Command("ping"))
    async def ping(message: Message) -> None:
        await message.answer("pong")

    return router


class Player:
    """One participant talking to `dispatcher` through the fake."""

    def __init__(self, fake: FakeTelegram, dispatcher: Dispatcher, bot: Bot, chat: int) -> None:
        self.fake, self.dispatcher, self.bot, self.chat = fake, dispatcher, bot, chat

    async def feed(self, update: dict[str, Any], expect: str | None = None) -> None:
        """Feed an update and check that a new message containing `expect` was sent."""
        before = len(self.fake.shown_texts(self.chat))
        parsed = Update.model_validate(update, context={"bot": self.bot})
        await self.dispatcher.feed_update(self.bot, parsed)
        if expect is not None:
            sent = self.fake.shown_texts(self.chat)[before:]
            assert any(expect in text for text in sent), f"no {expect!r} in {sent}"

    async def say(self, text: str, expect: str) -> None:
        await self.feed(self.fake.text_update(self.chat, text, language_code="en"), expect)

    async def tap(self, button: str, expect: str) -> dict[str, Any]:
        update = self.fake.tap_update(self.chat, button)
        await self.feed(update, expect)
        return update


async def test_a_conversation_through_an_aiogram_dispatcher(
    fake: FakeTelegram,
    bot: Bot,
    flow: Flow,
    load_consultation: Loader,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await load_consultation()
    dispatcher = Dispatcher()
    dispatcher.include_router(ping_router())  # the team's routers first, ours after
    dispatcher.include_router(consultation_router(flow))
    alice = Player(fake, dispatcher, bot, ALICE)

    fake.user(ALICE, first_name="Alice", language_code="en")
    await alice.feed(fake.start_update(ALICE, "elders", language_code="en"), "Do you agree?")
    await alice.tap("I agree", "Your age?")
    await alice.tap("Under 40", "Proposal 1/4")
    taps = 2
    for index, (vote, qualification) in enumerate(
        [("Agree", "I love it"), ("Disagree", "Platitude")], start=1
    ):
        card_id = max(fake.messages[ALICE])
        tapped = await alice.tap(vote, "Noted. Want to say more?")
        # The card became its qualification in place, and then the next card.
        card = fake.messages[ALICE][card_id]
        assert card["text"].startswith(f"✓ {vote}: We should") and "reply_markup" in card
        await alice.tap(qualification, f"Proposal {index + 1}/4")
        assert max(fake.messages[ALICE]) == card_id
        assert f"✓ {vote} · {qualification}: " in fake.messages[ALICE][card_id]["text"]
        taps += 2
    assert fake.count("answerCallbackQuery", ok=True) == taps
    assert fake.count("answerCallbackQuery", ok=False) == 0

    # aiogram sees the same update again (a webhook retry, two pollers): nothing happens.
    before = len(fake.calls())
    await alice.feed(tapped)
    assert len(fake.calls()) == before

    # The team's command stays theirs; the consultation's commands still reach us.
    sent = len(fake.sent_texts(ALICE))
    await alice.say("/ping", "pong")
    assert fake.sent_texts(ALICE)[sent:] == ["pong"]  # and nothing from the consultation
    await alice.say("/help", "/forget")
    assert "pong" not in fake.sent_texts(ALICE)[-1]

    async with sessions() as session:
        counted = await session.exec(select(func.sum(Proposal.vote_count)))
        assert counted.one() == 2  # each vote once, the repeated tap included
        assert len((await session.exec(select(Qualification))).all()) == 2


async def test_group_messages_are_left_to_the_bot(
    fake: FakeTelegram, bot: Bot, flow: Flow, load_consultation: Loader
) -> None:
    """A consultation never runs in a group: its messages fall through our router unhandled."""
    await load_consultation()
    dispatcher = Dispatcher()
    seen: list[str] = []
    dispatcher.include_router(consultation_router(flow))
    fallback = Router(name="fallback")

    @fallback.message(F.text)
    async def remember(message: Message) -> None:
        seen.append(message.text or "")

    dispatcher.include_router(fallback)
    group = fake.text_update(ALICE, "/start elders", chat_id=-100123, language_code="en")
    await dispatcher.feed_update(bot, Update.model_validate(group, context={"bot": bot}))
    assert seen == ["/start elders"]
    assert fake.calls("sendMessage") == []


async def test_flood_control_delays_replies_without_losing_them(
    flow: Flow, load_consultation: Loader
) -> None:
    """Telegram answers 429 past ~1 message per second in a chat (the fake too, after a burst of
    3): the router waits retry_after and sends again, so every reply arrives, in order."""
    await load_consultation()
    with FakeTelegram(TOKEN) as fake:
        async with aiogram_bot(fake) as bot:
            dispatcher = Dispatcher()
            dispatcher.include_router(consultation_router(flow))
            alice = Player(fake, dispatcher, bot, ALICE)
            await alice.feed(fake.start_update(ALICE, "elders", language_code="en"))
            await alice.tap("I agree", "Your age?")
            await alice.tap("Under 40", "Proposal 1/4")
            await alice.tap("Agree", "Noted. Want to say more?")
        assert fake.count(ok=False) > 0  # flood control did bite
        refused = [call.error for call in fake.calls() if not call.ok]
        assert all(error and error.startswith("Too Many Requests") for error in refused)
        assert fake.count("answerCallbackQuery", ok=True) == 3
        assert fake.count("editMessageText", ok=True) == 3

"""A broadcast end to end on Telegram, on both databases: `consult serve` runs against the fake
Bot API over real HTTP, two participants join in French and in English (chosen with
/language), the core plans a broadcast to a segment (`channel:telegram`), and the server's
delivery worker sends it: once to each, in their language, with a URL button to the bot's
deep link. Tapping it (Telegram then sends /start with the payload) brings back the question
each was on: their sequence resumes, it does not start over."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.fakes.telegram_api import FakeTelegram
from core.broadcasts.messages import parse_message
from core.broadcasts.planning import create_broadcast, plan_due
from tests.adapters.telegram.test_telegram_http import TOKEN, environment, until
from tests.bots.test_notices import _serving, join
from tests.conftest import consultation_data

AMELIE, BOB = 5501, 6601
TEXTS = {"fr": "Revenez voter, de nouvelles idées vous attendent !", "en": "New ideas await you!"}


def never(expression: str, after: datetime, zone: str) -> datetime | None:
    return None  # sent once


@pytest.fixture
def fake() -> FakeTelegram:
    with FakeTelegram(TOKEN, bot_username="elders_bot") as telegram:
        yield telegram  # type: ignore[misc]


async def test_a_broadcast_arrives_once_in_each_language_and_its_button_resumes(
    database_url: str, tmp_path: Path, fake: FakeTelegram, load_consultation, sessions
) -> None:
    always = {"quiet_start": None, "quiet_end": None}  # no quiet hours: sent at once
    settings = {**consultation_data()["settings"], "broadcasts": always}
    consultation = await load_consultation(settings=settings)
    env = {**environment(database_url, tmp_path, fake), "CONSULT_BROADCASTS_EVERY_SECONDS": "0.2"}
    with _serving(env, fake):
        await asyncio.to_thread(join, fake, AMELIE, "fr")
        await asyncio.to_thread(join_in_english, fake, BOB)
        # The question each is on (the tapped message became it, under the answer's recall).
        asked = {chat: fake.shown_texts(chat)[-1].split("\n\n", 1)[-1] for chat in (AMELIE, BOB)}
        content = parse_message({"text": TEXTS, "button": True}, consultation)
        now = datetime.now(UTC)
        async with sessions() as session, session.begin():
            await create_broadcast(
                session, consultation, content, "channel:telegram", now, None, never, "ana", now
            )
            (run,) = await plan_due(session, now, never)
        assert run.queued == 2
        await asyncio.to_thread(
            until, fake, lambda: all(_told(fake, chat) for chat in (AMELIE, BOB))
        )
        for chat, locale in ((AMELIE, "fr"), (BOB, "en")):
            (told,) = _told(fake, chat)  # once
            assert told.params["text"] == TEXTS[locale]
            (row,) = told.params["reply_markup"]["inline_keyboard"]
            assert row[0]["url"] == "https://t.me/elders_bot?start=elders"
        # Amélie taps the button: Telegram sends /start elders, and her question comes back.
        before = len(fake.shown_texts(AMELIE))
        fake.deliver(fake.start_update(AMELIE, "elders", language_code="fr"))
        await asyncio.to_thread(
            until, fake, lambda: asked[AMELIE] in fake.shown_texts(AMELIE)[before:]
        )
        assert not any("Comment mieux prendre soin" in t for t in fake.shown_texts(AMELIE)[before:])


def join_in_english(fake: FakeTelegram, chat: int) -> None:
    """`chat` joins, then chooses English for good with /language."""
    join(fake, chat, "en")
    before = len(fake.shown_texts(chat))
    assert fake.deliver(fake.text_update(chat, "/language", language_code="en")).status_code == 200
    until(fake, lambda: "English" in [label for label, _ in fake.last_keyboard(chat)])
    assert fake.tap(chat, "English").status_code == 200
    until(fake, lambda: len(fake.shown_texts(chat)) > before + 1)


def _told(fake: FakeTelegram, chat: int) -> list:
    return [
        call
        for call in fake.calls("sendMessage", chat_id=chat)
        if call.ok and call.params.get("text") in TEXTS.values()
    ]

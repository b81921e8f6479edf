"""`consult serve` killed with SIGKILL under load: no vote lost, none counted twice, and no
participant left without their next question.

Participants tap through their cards over the real webhook, each tap waiting for the question it
leads to, as people do. Midway the server is killed (`kill -9`: no shutdown, no flush) and
started again. A tap whose webhook answer never came is posted again with the same update, as
Telegram redelivers it; a tap whose answer came but whose next question was lost with the
process must still get that question, from the restarted server (`core.outbox`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bench.fakes.telegram_api import Call, FakeTelegram
from tests.adapters.telegram.test_telegram_http import SECRET, environment
from tests.conftest import Loader
from tests.crash import PARTICIPANTS, TAKEOVER, Answer, Load, Request, assert_nothing_lost

TOKEN = "123456789:AAH-test_token"
ONBOARDING = 2  # answers before the first card
# What a participant taps, among the buttons of the question shown last.
PREFERENCE = ("Agree", "Next proposal", "I agree", "I'd rather not say")
FIRST_CHAT = 90_001

Buttons = list[tuple[str, str]]  # (label, callback data)


class Telegram:
    """Telegram's side of the crash test: updates delivered by the fake, chats by their id."""

    def __init__(self, fake: FakeTelegram, client: httpx.AsyncClient) -> None:
        self.fake = fake
        self.client = client

    def server_at(self, url: str) -> None:
        self.fake.webhook_url = f"{url}/webhooks/telegram"

    def listen(self, heard: Callable[[int], None]) -> None:
        def called(call: Call) -> None:  # on the fake's server thread
            chat = call.params.get("chat_id")
            if isinstance(chat, int):
                heard(chat)

        self.fake.listeners.append(called)

    def delivered(self, update: dict[str, Any]) -> Request:
        """`update`, delivered again as it is (same update id) until it is answered 200."""
        return Request(update["update_id"], lambda: self.fake.adeliver(update, client=self.client))

    def start(self, chat: int) -> Request:
        return self.delivered(self.fake.start_update(chat, "elders", language_code="en"))

    def questions(self, chat: int) -> dict[int, Buttons]:
        """The chat's messages that ask something: message id -> its buttons."""
        asking = {}
        for message_id, message in dict(self.fake.messages.get(chat, {})).items():
            rows = message.get("reply_markup", {}).get("inline_keyboard")
            if rows:
                asking[message_id] = [(b["text"], b["callback_data"]) for row in rows for b in row]
        return asking

    def answer(self, chat: int, message_id: int, buttons: Buttons) -> Answer:
        labels = [label for label, _ in buttons]
        button = next((b for b in PREFERENCE if b in labels), None)
        assert button is not None, f"nothing to tap among {labels} in chat {chat}"
        data = next(data for label, data in buttons if label == button)
        agreed = int(data.partition(".")[2]) if button == "Agree" else None  # "agree.<proposal>"
        update = self.fake.callback_update(chat, message_id, data)
        return Answer(self.delivered(update), button, agreed)

    def recent(self, chat: int) -> str:
        calls = [(c.method, c.params.get("text"), c.ok) for c in self.fake.calls(chat_id=chat)]
        return str(calls[-4:])


async def test_a_killed_server_loses_no_vote_and_strands_nobody(
    database_url: str,
    tmp_path: Path,
    load_consultation: Loader,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await load_consultation(settings={"sequence_size": 8, "summary_min_votes": 1})
    with FakeTelegram(TOKEN, bot_username="elders_bot", limits=None) as fake:
        env = {
            **environment(database_url, tmp_path, fake),
            **TAKEOVER,
            "CONSULT_TELEGRAM_CHAT_MESSAGES_PER_SECOND": "100",
            "CONSULT_TELEGRAM_MESSAGES_PER_SECOND": "1000",
            "CONSULT_WEBHOOK_HANDLING_TIMEOUT": "60",
        }
        fake.webhook_secret = SECRET
        async with httpx.AsyncClient(timeout=60) as client:
            load = Load(Telegram(fake, client), onboarding=ONBOARDING)
            await load.play_through_a_kill(env, range(FIRST_CHAT, FIRST_CHAT + PARTICIPANTS))
    await assert_nothing_lost(load, sessions)

"""`consult serve` killed with SIGKILL under load: no vote lost, none counted twice, and no
participant left without their next question.

Participants tap through their cards over the real webhook, each tap waiting for the question it
leads to, as people do. Midway the server is killed (`kill -9`: no shutdown, no flush) and
started again. A tap whose webhook answer never came is posted again with the same update, as
Telegram redelivers it; a tap whose answer came but whose next question was lost with the
process must still get that question, from the restarted server (`core.outbox`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bench.fakes.telegram_api import Call, FakeTelegram
from bench.processes import Served, consult_process
from core.models import OwedReply, ProcessedEvent, Proposal, Vote
from tests.adapters.telegram.test_telegram_http import SECRET, environment
from tests.conftest import Loader

TOKEN = "123456789:AAH-test_token"
PARTICIPANTS = 30
VOTES = 5  # after onboarding, each with its qualification
TAPS = 2 + 2 * VOTES
KILL_AFTER = PARTICIPANTS * TAPS // 3  # acknowledged taps before the kill
# What a participant taps, among the buttons of the question shown last.
PREFERENCE = ("Agree", "Next proposal", "I agree", "I'd rather not say")
FIRST_CHAT = 90_001
# How long a participant waits for their next question: long enough for a restart and for the
# dead worker's replies to be taken over (CONSULT_DELIVERY_STALE_SECONDS below).
PATIENCE = 60.0


class Load:
    """The participants' side: the server they talk to, and what they saw."""

    def __init__(self, fake: FakeTelegram) -> None:
        self.fake = fake
        self.loop = asyncio.get_running_loop()
        self.calls: dict[int, asyncio.Event] = {}  # set when the bot calls Telegram for a chat
        self.shown: dict[int, tuple[int, list[tuple[str, str]]]] = {}  # the question to answer
        fake.listeners.append(self.heard)
        self.up = asyncio.Event()
        self.acknowledged = 0
        self.updates: set[int] = set()  # the update ids the webhook answered 200
        self.voted: dict[int, set[int]] = {}  # chat -> proposals it tapped Agree on
        self.stranded: list[int] = []
        self.killed = asyncio.Event()
        self.enough = asyncio.Event()

    async def post(self, client: httpx.AsyncClient, update: dict[str, Any]) -> None:
        """Deliver `update` until the webhook answers 200, as Telegram does, across a restart."""
        while True:
            await self.up.wait()
            try:
                answer = await self.fake.adeliver(update, client=client)
            except httpx.TransportError:  # killed under us: Telegram keeps the update
                answer = None
            if answer is not None and answer.status_code == 200:
                break
            if answer is not None and answer.status_code not in (500, 502, 503):
                raise AssertionError(f"webhook answered {answer.status_code}: {answer.text}")
            await self.killed.wait()  # only a kill makes an answer fail here; then retry
        self.acknowledged += 1
        self.updates.add(update["update_id"])
        if self.acknowledged >= KILL_AFTER:
            self.enough.set()

    def heard(self, call: Call) -> None:
        """The fake's listener (on its server thread): wake whoever waits on that chat."""
        chat = call.params.get("chat_id")
        if isinstance(chat, int) and chat in self.calls:
            self.loop.call_soon_threadsafe(self.calls[chat].set)

    def questions(self, chat: int) -> dict[int, list[tuple[str, str]]]:
        """The chat's messages that ask something: message id -> its buttons (label, data)."""
        asking = {}
        for message_id, message in dict(self.fake.messages.get(chat, {})).items():
            rows = message.get("reply_markup", {}).get("inline_keyboard")
            if rows:
                asking[message_id] = [(b["text"], b["callback_data"]) for row in rows for b in row]
        return asking

    async def tap(self, client: httpx.AsyncClient, chat: int, button: str) -> None:
        """Tap `button` on the question shown last, and wait for the question it leads to: the
        tapped message edited into it, or a new message (one asked again after the crash)."""
        message_id, buttons = self.shown[chat]
        data = next((data for label, data in buttons if label == button), None)
        assert data is not None, f"no {button!r} among {buttons} in chat {chat}"
        before = self.questions(chat)
        await self.post(client, self.fake.callback_update(chat, message_id, data))
        if button == "Agree":  # the option is "agree.<proposal id>"
            self.voted.setdefault(chat, set()).add(int(data.partition(".")[2]))
        if not await self.new_question(chat, before):
            recent = [(c.method, c.params.get("text"), c.ok) for c in self.fake.calls(chat_id=chat)]
            self.stranded.append(chat)
            raise AssertionError(f"chat {chat} got no question after {button!r}: {recent[-4:]}")

    async def new_question(self, chat: int, before: dict[int, list[tuple[str, str]]]) -> bool:
        """Whether a question other than those `before` shows in the chat within PATIENCE; it
        becomes the one the participant answers next."""
        called = self.calls.setdefault(chat, asyncio.Event())
        deadline = self.loop.time() + PATIENCE

        def asked() -> bool:
            changed = [
                (message_id, buttons)
                for message_id, buttons in self.questions(chat).items()
                if before.get(message_id) != buttons
            ]
            if changed:
                self.shown[chat] = max(changed)
            return bool(changed)

        while not asked():
            called.clear()
            if asked():  # a call landed before the clear
                break
            try:
                await asyncio.wait_for(called.wait(), deadline - self.loop.time())
            except TimeoutError:
                return False
        return True

    async def play(self, client: httpx.AsyncClient, chat: int) -> None:
        await self.post(client, self.fake.start_update(chat, "elders", language_code="en"))
        assert await self.new_question(chat, {})
        for _ in range(TAPS * 3):
            if len(self.voted.get(chat, ())) == VOTES:
                return
            # The question shown last: after a crash it may be one asked again, that the
            # participant had already answered; they answer it, as people do.
            labels = [label for label, _ in self.shown[chat][1]]
            await self.tap(client, chat, next(b for b in PREFERENCE if b in labels))
        raise AssertionError(f"chat {chat} did not get through {VOTES} votes")


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
            "CONSULT_TELEGRAM_CHAT_MESSAGES_PER_SECOND": "100",
            "CONSULT_TELEGRAM_MESSAGES_PER_SECOND": "1000",
            "CONSULT_WEBHOOK_HANDLING_TIMEOUT": "60",
            "CONSULT_DELIVERY_BEAT_SECONDS": "0.2",
            "CONSULT_DELIVERY_STALE_SECONDS": "1",
        }
        fake.webhook_secret = SECRET
        load = Load(fake)
        with contextlib.ExitStack() as servers:

            async def start() -> Served:
                served = await asyncio.to_thread(servers.enter_context, consult_process(env))
                fake.webhook_url = f"{served.url}/webhooks/telegram"
                load.up.set()
                return served

            first = await start()
            async with httpx.AsyncClient(timeout=60) as client:
                chats = range(FIRST_CHAT, FIRST_CHAT + PARTICIPANTS)
                playing = asyncio.gather(*(load.play(client, chat) for chat in chats))
                await asyncio.wait(
                    {asyncio.ensure_future(load.enough.wait()), playing},
                    return_when=asyncio.FIRST_COMPLETED,
                )
                assert not playing.done(), "the load ended before the kill"
                load.up.clear()
                os.kill(first.pid, signal.SIGKILL)
                load.killed.set()
                killed_at = load.acknowledged
                await start()
                await playing

    assert load.stranded == []
    assert PARTICIPANTS * 3 // 2 < killed_at < load.acknowledged  # the kill came mid-load
    async with sessions() as session:
        votes = (await session.exec(select(Vote.proposal_id))).all()
        counted = (await session.exec(select(func.sum(Proposal.vote_count)))).one()
        events = (await session.exec(select(func.count()).select_from(ProcessedEvent))).one()
        owed = (await session.exec(select(func.count()).select_from(OwedReply))).one()
    tapped = Counter(proposal for chat in load.voted.values() for proposal in chat)
    assert Counter(votes) == tapped  # no vote lost, none made up
    assert counted == len(votes) == PARTICIPANTS * VOTES  # none counted twice
    assert events == len(load.updates)  # every update answered was processed, once
    assert owed == 0  # every reply sent was settled, the killed server's included

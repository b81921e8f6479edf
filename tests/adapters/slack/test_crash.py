"""`consult serve` killed with SIGKILL under Slack's load: no vote lost, none counted twice, and no
participant left without their next question.

Participants run /consult and tap through their cards over the real webhook, each tap waiting for
the question it leads to, as people do. Midway the server is killed (`kill -9`: no shutdown, no
flush) and started again. What got no answer is posted again: Slack delivers an event again, and
a person whose tap or command got no answer taps or types again (the same request stands for
it). A request answered 200 must have been committed (the listeners run before the answer), and
a participant whose next question was lost with the process must still get it, from the
restarted server (`core.outbox`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from adapters.slack import EVENTS_PATH
from bench.fakes import slack_api
from bench.fakes.slack_api import BOT_TOKEN, SIGNING_SECRET, TEAM, Call, FakeSlack
from bench.processes import Served, consult_process
from core.models import OwedReply, ProcessedEvent, Proposal, Vote
from tests.conftest import SECRET, Loader

PARTICIPANTS = 30
VOTES = 5  # after onboarding, each with its qualification
TAPS = 2 + 2 * VOTES
KILL_AFTER = PARTICIPANTS * TAPS // 3  # acknowledged requests before the kill
# What a participant taps (an option's key), among the buttons of the question shown last:
# Agree on a card, "I love it" to qualify it, consent, and no age given.
PREFERENCE = ("agree", "likeIt", "accept", "skip")
FORM = "application/x-www-form-urlencoded"
# How long a participant waits for their next question: long enough for a restart and for the
# dead worker's replies to be taken over (CONSULT_DELIVERY_STALE_SECONDS below).
PATIENCE = 60.0

Buttons = list[dict[str, Any]]


class Load:
    """The participants' side: the server they talk to, and what they saw."""

    def __init__(self, fake: FakeSlack) -> None:
        self.fake = fake
        self.calls: dict[str, asyncio.Event] = {}  # DM -> set when the bot calls Slack for it
        self.shown: dict[str, tuple[str, Buttons]] = {}  # DM -> the question to answer
        fake.listeners.append(self.heard)
        self.url = ""
        self.up = asyncio.Event()
        self.answered: set[tuple[str, ...]] = set()  # the requests the webhook answered 200
        self.voted: dict[str, set[int]] = {}  # user -> proposals they tapped Agree on
        self.stranded: list[str] = []
        self.killed = asyncio.Event()
        self.enough = asyncio.Event()

    async def post(self, client: httpx.AsyncClient, body: bytes, what: tuple[str, ...]) -> None:
        """Post `body`, signed afresh each time, until the webhook answers 200, across a
        restart: `what` names the request (its idempotency, as the server keys it)."""
        while True:
            await self.up.wait()
            headers = slack_api.signed(body, FORM, now=time.time(), secret=SIGNING_SECRET)
            try:
                answer = await client.post(self.url + EVENTS_PATH, content=body, headers=headers)
            except httpx.TransportError:  # killed under us: the person tries again
                answer = None
            if answer is not None and answer.status_code == 200:
                break
            if answer is not None and answer.status_code not in (500, 502, 503):
                raise AssertionError(f"webhook answered {answer.status_code}: {answer.text}")
            await self.killed.wait()  # only a kill makes an answer fail here; then retry
        self.answered.add(what)
        if len(self.answered) >= KILL_AFTER:
            self.enough.set()

    def heard(self, call: Call) -> None:
        """The fake's listener (in this loop): wake whoever waits on that DM."""
        dm = call.args.get("channel")
        if isinstance(dm, str) and dm in self.calls:
            self.calls[dm].set()

    def questions(self, dm: str) -> dict[str, Buttons]:
        """The DM's messages that ask something: ts -> its buttons (with their block id)."""
        asking = {}
        for (channel, ts), message in list(self.fake.messages.items()):
            buttons = [
                {**element, "block_id": block.get("block_id")}
                for block in message["blocks"]
                if channel == dm and block["type"] == "actions"
                for element in block["elements"]
            ]
            if buttons:
                asking[ts] = buttons
        return asking

    async def tap(self, client: httpx.AsyncClient, user: str, dm: str) -> None:
        """Tap the preferred button of the question shown last, and wait for the question it
        leads to: the tapped message edited into it, or a new message (one asked again after
        the crash)."""
        ts, buttons = self.shown[dm]
        keys = {button["value"].partition(".")[0]: button for button in buttons}
        key = next((key for key in PREFERENCE if key in keys), None)
        assert key is not None, f"nothing to tap among {list(keys)}"
        button = keys[key]
        message = self.fake.messages[(dm, ts)]
        before = self.questions(dm)
        action = {k: v for k, v in button.items() if k != "text"}
        body = slack_api.block_action(user, message, dm, action)
        await self.post(client, body, (dm, ts, button["block_id"], button["value"]))
        if key == "agree":  # the option is "agree.<proposal id>"
            self.voted.setdefault(user, set()).add(int(button["value"].partition(".")[2]))
        if not await self.new_question(dm, before):
            self.stranded.append(user)
            recent = [
                (c.method, c.answer.get("ok"), str(c.args.get("text"))[:40])
                for c in self.fake.calls
                if c.args.get("channel") == dm
            ]
            raise AssertionError(f"{user} got no question after {key!r}: {recent[-4:]}")

    async def new_question(self, dm: str, before: dict[str, Buttons]) -> bool:
        """Whether a question other than those `before` shows in the DM within PATIENCE; it
        becomes the one the participant answers next."""
        called = self.calls.setdefault(dm, asyncio.Event())

        def asked() -> bool:
            changed = [
                (ts, buttons)
                for ts, buttons in self.questions(dm).items()
                if before.get(ts) != buttons
            ]
            if changed:
                self.shown[dm] = max(changed, key=lambda item: float(item[0]))
            return bool(changed)

        try:
            async with asyncio.timeout(PATIENCE):
                while not asked():
                    called.clear()
                    if asked():  # a call landed before the clear
                        break
                    await called.wait()
        except TimeoutError:
            return False
        return True

    async def play(self, client: httpx.AsyncClient, user: str) -> None:
        dm = self.fake._conversations_open(TEAM, {"users": user})["channel"]["id"]
        self.calls.setdefault(dm, asyncio.Event())
        command = slack_api.slash_command(user, "elders")
        await self.post(client, command, (user, "/consult elders"))
        assert await self.new_question(dm, {})
        for _ in range(TAPS * 3):
            if len(self.voted.get(user, ())) == VOTES:
                return
            # The question shown last: after a crash it may be one asked again, that the
            # participant had already answered; they answer it, as people do.
            await self.tap(client, user, dm)
        raise AssertionError(f"{user} did not get through {VOTES} votes")


async def test_a_killed_server_loses_no_vote_and_strands_nobody(
    database_url: str,
    tmp_path: Path,
    load_consultation: Loader,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await load_consultation(settings={"sequence_size": 8, "summary_min_votes": 1})
    users = [f"U0P{number:04d}" for number in range(PARTICIPANTS)]
    fake = FakeSlack(locales=dict.fromkeys(users, "en-US"))
    async with fake.running():
        env = {
            "CONSULT_DATABASE_URL": database_url,
            "CONSULT_DATA_DIR": str(tmp_path),
            "CONSULT_SECRET_KEY": SECRET.decode(),
            "CONSULT_SLACK_BOT_TOKEN": BOT_TOKEN,
            "CONSULT_SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "CONSULT_SLACK_API_URL": fake.api_url,
            "CONSULT_DELIVERY_BEAT_SECONDS": "0.2",
            "CONSULT_DELIVERY_STALE_SECONDS": "1",
            "LC_ALL": "en_US.UTF-8",
        }
        load = Load(fake)
        with contextlib.ExitStack() as servers:

            async def start() -> Served:
                served = await asyncio.to_thread(servers.enter_context, consult_process(env))
                load.url = served.url
                load.up.set()
                return served

            first = await start()
            async with httpx.AsyncClient(timeout=60) as client:
                playing = asyncio.gather(*(load.play(client, user) for user in users))
                await asyncio.wait(
                    {asyncio.ensure_future(load.enough.wait()), playing},
                    return_when=asyncio.FIRST_COMPLETED,
                )
                assert not playing.done(), "the load ended before the kill"
                load.up.clear()
                os.kill(first.pid, signal.SIGKILL)
                load.killed.set()
                killed_at = len(load.answered)
                await start()
                await playing
            # Stopped from a thread: the fake answers in this loop, and the server's graceful
            # stop sends what it still has to send.
            await asyncio.to_thread(servers.close)

    assert load.stranded == []
    assert PARTICIPANTS * 3 // 2 < killed_at < len(load.answered)  # the kill came mid-load
    async with sessions() as session:
        votes = (await session.exec(select(Vote.proposal_id))).all()
        counted = (await session.exec(select(func.sum(Proposal.vote_count)))).one()
        events = (await session.exec(select(func.count()).select_from(ProcessedEvent))).one()
        owed = (await session.exec(select(func.count()).select_from(OwedReply))).one()
    tapped = Counter(proposal for user in load.voted.values() for proposal in user)
    assert Counter(votes) == tapped  # no vote lost, none made up
    assert counted == len(votes) == PARTICIPANTS * VOTES  # none counted twice
    assert events == len(load.answered)  # every request answered was processed, once
    assert owed == 0  # every reply sent was settled, the killed server's included

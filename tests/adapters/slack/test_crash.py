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

import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from adapters.slack import EVENTS_PATH
from bench.fakes import slack_api
from bench.fakes.slack_api import BOT_TOKEN, SIGNING_SECRET, TEAM, Call, FakeSlack
from tests.conftest import SECRET, Loader
from tests.crash import PARTICIPANTS, TAKEOVER, Answer, Load, Request, assert_nothing_lost

ONBOARDING = 2  # answers before the first card
# What a participant taps (an option's key), among the buttons of the question shown last:
# Agree on a card, "I love it" to qualify it, consent, and no age given.
PREFERENCE = ("agree", "likeIt", "accept", "skip")
FORM = "application/x-www-form-urlencoded"

Buttons = list[dict[str, Any]]


class Slack:
    """Slack's side of the crash test: signed requests, users by id, what they see in their DM
    with the bot."""

    def __init__(self, fake: FakeSlack, client: httpx.AsyncClient) -> None:
        self.fake = fake
        self.client = client
        self.url = ""
        self.dms: dict[str, str] = {}  # user -> their DM with the bot
        self.users: dict[str, str] = {}  # DM -> its user

    def server_at(self, url: str) -> None:
        self.url = url

    def listen(self, heard: Callable[[str], None]) -> None:
        def called(call: Call) -> None:  # in this loop
            dm = call.args.get("channel")
            if isinstance(dm, str) and dm in self.users:
                heard(self.users[dm])

        self.fake.listeners.append(called)

    def posted(self, body: bytes, what: Hashable) -> Request:
        """`body`, signed afresh each time it is posted; `what` names the request (its
        idempotency, as the server keys it)."""

        async def send() -> httpx.Response:
            headers = slack_api.signed(body, FORM, now=time.time(), secret=SIGNING_SECRET)
            return await self.client.post(self.url + EVENTS_PATH, content=body, headers=headers)

        return Request(what, send)

    def start(self, user: str) -> Request:
        dm = self.fake._conversations_open(TEAM, {"users": user})["channel"]["id"]
        self.dms[user], self.users[dm] = dm, user
        return self.posted(slack_api.slash_command(user, "elders"), (user, "/consult elders"))

    def questions(self, user: str) -> dict[str, Buttons]:
        """The DM's messages that ask something: ts -> its buttons (with their block id)."""
        dm = self.dms[user]
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

    def answer(self, user: str, ts: str, buttons: Buttons) -> Answer:
        keys = {button["value"].partition(".")[0]: button for button in buttons}
        key = next((key for key in PREFERENCE if key in keys), None)
        assert key is not None, f"nothing to tap among {list(keys)}"
        button, dm = keys[key], self.dms[user]
        action = {k: v for k, v in button.items() if k != "text"}
        body = slack_api.block_action(user, self.fake.messages[(dm, ts)], dm, action)
        agreed = int(button["value"].partition(".")[2]) if key == "agree" else None
        return Answer(self.posted(body, (dm, ts, button["block_id"], button["value"])), key, agreed)

    def recent(self, user: str) -> str:
        dm = self.dms[user]
        calls = [
            (c.method, c.answer.get("ok"), str(c.args.get("text"))[:40])
            for c in self.fake.calls
            if c.args.get("channel") == dm
        ]
        return str(calls[-4:])


async def test_a_killed_server_loses_no_vote_and_strands_nobody(
    database_url: str,
    tmp_path: Path,
    load_consultation: Loader,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await load_consultation(settings={"sequence_size": 8, "summary_min_votes": 1})
    users = [f"U0P{number:04d}" for number in range(PARTICIPANTS)]
    fake = FakeSlack(locales=dict.fromkeys(users, "en-US"))
    async with fake.running(), httpx.AsyncClient(timeout=60) as client:
        env = {
            "CONSULT_DATABASE_URL": database_url,
            "CONSULT_DATA_DIR": str(tmp_path),
            "CONSULT_SECRET_KEY": SECRET.decode(),
            "CONSULT_SLACK_BOT_TOKEN": BOT_TOKEN,
            "CONSULT_SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "CONSULT_SLACK_API_URL": fake.api_url,
            **TAKEOVER,
            "LC_ALL": "en_US.UTF-8",
        }
        load = Load(Slack(fake, client), onboarding=ONBOARDING)
        await load.play_through_a_kill(env, users)
    await assert_nothing_lost(load, sessions)

"""A moderators' Slack channel over real HTTP (uvicorn, the channel's own route, bolt, the fake
Web API): posts and their edits, `/consult link CODE`, taps answered to the moderator alone,
and a participant's `/consult` elsewhere untouched; on both databases."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from adapters.slack.moderation import link_code, post_message, with_buttons
from bench.fakes import slack_api
from bench.fakes.slack_api import TEAM, FakeSlack
from bench.processes import serving
from bots.moderation_chat import post_round
from core.definitions import settings_of
from core.flow import Flow, utc_now
from core.i18n import Translator
from core.identity import enrol
from core.models import Consultation
from core.moderation import Actor, Source
from core.moderation.chat import chat_code, connect_chat
from core.moderation.chat_posts import Button
from core.organisers import Role, add_organiser
from tests.adapters.slack.conftest import Rig, make_channel
from tests.conftest import SECRET, Loader
from tests.fuzzing import FUZZ
from tests.support import status_of, submitted

MODERATORS = "C0GENERAL"  # where the fake's slash commands come from
FR = Translator("fr")
_workers = itertools.count()


class ChatRig:
    """The channel served alone (the test runs the delivery worker's rounds itself)."""

    def __init__(
        self, rig: Rig, sessions: async_sessionmaker[AsyncSession], consultation: Consultation
    ) -> None:
        self.rig, self.fake, self.sessions, self.consultation = (
            rig,
            rig.fake,
            sessions,
            consultation,
        )

    async def deliver_posts(self) -> int:
        channels = {"slack": self.rig.channel}
        worker = f"test-{next(_workers)}"
        return await post_round(self.sessions, worker, channels, utc_now, timedelta(seconds=60))

    def post(self) -> dict[str, Any]:
        (message,) = self.fake.posted(MODERATORS)
        return message

    async def tap(self, user: str, value: str) -> str:
        """Tap a button whose value is `value` on the post; what the moderator alone is told."""
        message = self.post()
        action = {"type": "button", "action_id": "moderate:0", "value": value}
        body = slack_api.block_action(user, message, MODERATORS, action)
        response = await self.rig.post(body, "application/x-www-form-urlencoded")
        assert response.status_code == 200
        told = [c for c in self.fake.calls if c.method == "chat.postEphemeral"][-1]
        assert told.answer["ok"] and told.args["user"] == user
        return str(told.args["text"])

    async def link(self, user: str, email: str) -> httpx.Response:
        async with self.sessions() as session, session.begin():
            code = await chat_code(session, email, now=utc_now())
        return await self.rig.command(user, f"link {code}")

    async def propose(self, typed: str) -> int:
        async with self.sessions() as session, session.begin():
            author = await enrol(session, SECRET, "slack", f"{TEAM}:U0AUTHOR", "x", utc_now())
            assert author.participant.id is not None
        participant = author.participant.id
        return await submitted(self.sessions, utc_now, self.consultation, participant, typed, "fr")

    async def status(self, proposal_id: int) -> str:
        return await status_of(self.sessions, proposal_id)


@pytest.fixture
async def chat(
    fake_slack: FakeSlack,
    database_url: str,
    load_consultation: Loader,
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[ChatRig]:
    consultation = await load_consultation()
    async with sessions() as session, session.begin():
        admin = Actor("cli:admin", Source.CLI)
        await connect_chat(session, "slack", MODERATORS, "elders", admin, now=utc_now())
        await add_organiser(session, "mia@example.org", Role.MODERATOR, "elders", now=utc_now())
    channel = make_channel(fake_slack)
    app = FastAPI()
    app.include_router(channel.router)
    await channel.open(Flow(sessions, SECRET))
    try:
        async with serving(app) as url, httpx.AsyncClient(timeout=10) as http:
            yield ChatRig(Rig(url, fake_slack, channel, http, database_url), sessions, consultation)
    finally:
        await channel.close()


async def test_a_post_in_a_slack_channel_is_decided_by_a_linked_moderator(chat: ChatRig) -> None:
    proposal_id = await chat.propose("ouvrir une ludothèque <gratuite> & *accessible*")
    assert await chat.deliver_posts() == 1
    assert await chat.deliver_posts() == 0
    post = chat.post()
    assert "ludothèque &lt;gratuite&gt; &amp;" in post["text"]  # shown as typed
    labels = [
        e["text"]["text"] for b in post["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]
    assert labels == [
        FR("chat.button.accept"),
        FR("chat.button.refuse"),
        FR("chat.button.postpone"),
    ]

    assert await chat.tap("U0STRANGER", f"m:{proposal_id}:a") == FR("chat.not_linked")
    linked = await chat.link("U0MIA", "mia@example.org")
    assert linked.status_code == 200
    assert linked.text == FR("chat.link.done", organiser="mia@example.org")

    assert await chat.tap("U0MIA", f"m:{proposal_id}:r") == FR("chat.pick_reason")
    reasons = [
        e["value"] for b in chat.post()["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]
    assert len(reasons) == len(settings_of(chat.consultation).refusal_reasons) + 1  # and back
    assert await chat.tap("U0MIA", f"m:{proposal_id}:b") == FR("chat.pick_action")
    assert await chat.tap("U0MIA", f"m:{proposal_id}:a") == FR("chat.done.accept")
    assert await chat.status(proposal_id) == "accepted"
    assert await chat.deliver_posts() == 1
    decided = FR("chat.post.decided", status=FR("chat.status.accepted"), who="mia@example.org")
    assert decided in chat.post()["text"]
    assert not [b for b in chat.post()["blocks"] if b["type"] == "actions"]
    assert await chat.tap("U0MIA", f"m:{proposal_id}:a") == FR(
        "chat.already_decided", status=FR("chat.status.accepted")
    )


async def test_link_elsewhere_is_a_participants_command(chat: ChatRig) -> None:
    body = slack_api.slash_command("U0BRUNO", "link abcdefghijklmnopqrstuvwx")
    body = body.replace(f"channel_id={MODERATORS}".encode(), b"channel_id=D0BRUNO")
    response = await chat.rig.post(body, "application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert "C'est fait" not in response.text and FR("chat.link.unknown") not in response.text
    wrong = await chat.rig.command("U0MIA", "link nope")
    assert wrong.text == FR("chat.link.unknown")


@FUZZ
@given(text=st.text(max_size=200))
def test_any_command_text_parses_without_failing(text: str) -> None:
    code = link_code(text)
    assert code is None or code == "" or code in text


def test_a_post_fits_slacks_blocks() -> None:
    message = post_message("x" * 5000, ((Button("y" * 100, "m:1:a"),),))
    assert len(message["blocks"][0]["text"]["text"]) <= 3000
    assert message["blocks"][1]["elements"][0]["text"]["text"] == "y" * 75
    assert slack_api.block_problems(message["blocks"], slack_api.MESSAGE_BLOCKS) == []
    assert with_buttons(message["blocks"], ()) == message["blocks"][:1]

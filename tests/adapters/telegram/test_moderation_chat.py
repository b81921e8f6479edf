"""A moderators' Telegram group through the real app (its lifespan, our TelegramChannel, PTB at
our fake Bot API): posts and their edits, `/link`, taps answered in the webhook's answer, and
group updates that never reach the participants' flow; the parsers pure and fuzzed."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from adapters.telegram.moderation import (
    from_group,
    keyboard_of,
    link_command,
    post_html,
    tap_of,
)
from adapters.telegram.updates import TelegramUpdate
from adapters.telegram.webhook import SECRET_HEADER, TelegramChannel, TelegramConfig
from bench.fakes.telegram_api import FakeTelegram
from bots.moderation_chat import post_round
from core.flow import Flow, utc_now
from core.i18n import Translator
from core.identity import enrol
from core.models import Consultation, Participant, ProcessedEvent, Proposal, ProposalEvent
from core.moderation import Actor, Source, next_for
from core.moderation.chat import chat_code, connect_chat
from core.moderation.chat_posts import Button
from core.organisers import Role, add_organiser
from tests.conftest import SECRET, Loader
from tests.fuzzing import FUZZ, LONG_TEXT, mutated, to_json
from tests.support import status_of, submitted

TOKEN = "123456789:AAH-chat_token"
WEBHOOK_SECRET = "chat_secret"
GROUP = -1001234567890
MIA, LEO, STRANGER = 501, 502, 503
FR = Translator("fr")
_workers = itertools.count()
_update_ids = itertools.count(900_000_001)


@dataclass
class Rig:
    channel: TelegramChannel
    fake: FakeTelegram
    http: httpx.AsyncClient
    sessions: async_sessionmaker[AsyncSession]
    consultation: Consultation

    async def post(self, update: dict[str, Any]) -> httpx.Response:
        """Deliver an update; returns once what it sends in the background is sent."""
        headers = {SECRET_HEADER: WEBHOOK_SECRET}
        return await self.http.post("/webhooks/telegram", json=update, headers=headers)

    async def tap(self, member: int, data: str, message_id: int) -> str:
        """Tap a post's button; the answer the member is shown (the webhook's answer)."""
        update = self.fake.callback_update(member, message_id, data, chat_id=GROUP)
        response = await self.post(update)
        assert response.status_code == 200
        answer = response.json()
        assert answer["method"] == "answerCallbackQuery"
        self.fake.call_in_answer(answer)  # as Telegram does: the fake checks it
        assert self.fake.calls("answerCallbackQuery")[-1].ok
        return str(answer["text"])

    async def deliver_posts(self) -> int:
        """One round of the delivery worker for the moderators' chats."""
        worker = f"test-{next(_workers)}"
        channels = {"telegram": self.channel}
        return await post_round(self.sessions, worker, channels, utc_now, timedelta(seconds=60))

    async def link(self, member: int, email: str) -> None:
        async with self.sessions() as session, session.begin():
            code = await chat_code(session, email, now=utc_now())
        assert (
            await self.post(self.fake.text_update(member, f"/link {code}", chat_id=GROUP))
        ).status_code == 200

    async def propose(self, typed: str) -> int:
        async with self.sessions() as session, session.begin():
            author = await enrol(session, SECRET, "telegram", typed[:20], "4242", utc_now())
            assert author.participant.id is not None
        participant = author.participant.id
        return await submitted(self.sessions, utc_now, self.consultation, participant, typed, "fr")

    async def status(self, proposal_id: int) -> str:
        return await status_of(self.sessions, proposal_id)


@pytest.fixture
async def rig(
    load_consultation: Loader,
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[Rig]:
    consultation = await load_consultation()
    async with sessions() as session, session.begin():
        admin = Actor("cli:admin", Source.CLI)
        await connect_chat(session, "telegram", str(GROUP), "elders", admin, now=utc_now())
        await add_organiser(session, "mia@example.org", Role.MODERATOR, "elders", now=utc_now())
        await add_organiser(session, "leo@example.org", Role.ANALYST, None, now=utc_now())
    with FakeTelegram(TOKEN, limits=None, bot_username="elders_bot") as fake:
        config = TelegramConfig(
            TOKEN,
            WEBHOOK_SECRET,
            api_url=fake.url,
            messages_per_second=1000.0,
            chat_messages_per_second=1000.0,
            group_messages_per_minute=60_000.0,
        )
        channel = TelegramChannel(config)
        # The channel's own webhook, without the server's workers: the test runs the delivery
        # worker's rounds itself, so that what each one posts is known.
        app = FastAPI()
        app.include_router(channel.router)
        await channel.open(Flow(sessions, SECRET))
        transport = httpx.ASGITransport(app, raise_app_exceptions=False)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://consult") as http:
                yield Rig(channel, fake, http, sessions, consultation)
        finally:
            await channel.close()


async def test_a_post_is_decided_by_a_linked_moderator_and_then_says_who(rig: Rig) -> None:
    proposal_id = await rig.propose("ouvrir une ludothèque <gratuite> & accessible")
    assert await rig.deliver_posts() == 1
    assert await rig.deliver_posts() == 0  # posted once
    (post,) = rig.fake.calls("sendMessage", chat_id=GROUP)
    assert "ouvrir une ludothèque <gratuite> & accessible" in rig.fake.sent_texts(GROUP)[0]
    assert [label for label, _ in rig.fake.last_keyboard(GROUP)] == [
        FR("chat.button.accept"),
        FR("chat.button.refuse"),
        FR("chat.button.postpone"),
    ]
    message_id = max(rig.fake.messages[GROUP])
    assert post.ok

    accept = f"m:{proposal_id}:a"
    assert await rig.tap(STRANGER, accept, message_id) == FR("chat.not_linked")
    await rig.link(MIA, "mia@example.org")
    assert rig.fake.sent_texts(GROUP)[-1] == FR("chat.link.done", organiser="mia@example.org")
    await rig.link(LEO, "leo@example.org")
    assert await rig.tap(LEO, accept, message_id) == FR("chat.not_moderator")
    assert await rig.status(proposal_id) == "pending"

    assert await rig.tap(MIA, accept, message_id) == FR("chat.done.accept")
    assert await rig.status(proposal_id) == "accepted"
    assert rig.fake.last_keyboard(GROUP) == []  # the buttons go at once
    assert await rig.deliver_posts() == 1  # then the post says who decided
    decided = FR("chat.post.decided", status=FR("chat.status.accepted"), who="mia@example.org")
    assert decided in rig.fake.shown_texts(GROUP)[-1]
    assert await rig.tap(MIA, accept, message_id) == FR(
        "chat.already_decided", status=FR("chat.status.accepted")
    )


async def test_refusing_from_the_group_picks_the_reason_in_the_post(rig: Rig) -> None:
    proposal_id = await rig.propose("sortir les poubelles le soir")
    await rig.deliver_posts()
    message_id = max(rig.fake.messages[GROUP])
    await rig.link(MIA, "mia@example.org")

    assert await rig.tap(MIA, f"m:{proposal_id}:r", message_id) == FR("chat.pick_reason")
    buttons = rig.fake.last_keyboard(GROUP)
    assert (FR("chat.reason.off-topic"), None) != buttons[0]
    data = dict(buttons)[FR("chat.reason.off-topic")]
    assert data is not None
    assert await rig.tap(MIA, data, message_id) == FR("chat.done.refuse")
    async with rig.sessions() as session:
        proposal = await session.get(Proposal, proposal_id)
    assert proposal is not None and proposal.refusal_reason == "off-topic"


async def test_a_proposal_held_in_the_console_is_answered_with_its_holder(rig: Rig) -> None:
    proposal_id = await rig.propose("ouvrir une ludothèque")
    await rig.deliver_posts()
    message_id = max(rig.fake.messages[GROUP])
    await rig.link(MIA, "mia@example.org")
    async with rig.sessions() as session, session.begin():
        assert rig.consultation.id is not None
        served = await next_for(session, rig.consultation.id, "console@example.org", utc_now())
    assert served is not None and served.id == proposal_id
    answer = await rig.tap(MIA, f"m:{proposal_id}:a", message_id)
    assert "console@example.org" in answer
    assert await rig.status(proposal_id) == "pending"


async def test_group_updates_never_reach_the_participants_flow(rig: Rig) -> None:
    calls = rig.fake.count()
    for text in ("/start elders", "hello", "/link", "/link@other_bot abcdefghijklmnopqrstuvwx"):
        assert (await rig.post(rig.fake.text_update(MIA, text, chat_id=GROUP))).status_code == 200
    async with rig.sessions() as session:
        assert (await session.exec(select(Participant))).all() == []
        assert (await session.exec(select(ProcessedEvent))).all() == []
    # "/link" without a code is answered; the other bot's command and chatter are not
    assert rig.fake.count() == calls + 1
    assert rig.fake.sent_texts(GROUP) == [FR("chat.link.unknown")]
    elsewhere = rig.fake.text_update(MIA, "/link abcdefghijklmnopqrstuvwx", chat_id=-4242)
    assert (await rig.post(elsewhere)).status_code == 200
    assert rig.fake.sent_texts(-4242) == [Translator("en")("chat.not_connected")]


@FUZZ
@given(data=st.one_of(st.text(max_size=80), st.sampled_from(["m:1:a", "m:0:x:0", "m:1:d:1"])))
@example(data=LONG_TEXT[:64])
@example(data="m:99999999999999999999:a")
async def test_any_button_data_from_the_group_is_answered_and_changes_nothing(
    rig: Rig, data: str
) -> None:
    await rig.link(MIA, "mia@example.org")
    rig.fake.messages.setdefault(GROUP, {})[1] = {
        "message_id": 1,
        "chat": rig.fake.chat(GROUP),
        "date": 0,
        "text": "post",
    }
    update = rig.fake.callback_update(MIA, 1, data, chat_id=GROUP)
    response = await rig.post(update)
    assert response.status_code == 200
    if data:
        assert response.json()["method"] == "answerCallbackQuery"
    async with rig.sessions() as session:
        assert (await session.exec(select(ProposalEvent))).all() == []


def _group_payloads(fake: FakeTelegram) -> list[dict[str, Any]]:
    """A /link and a tap in the moderators' group, as Telegram sends them."""
    fake.messages.setdefault(GROUP, {})[1] = {
        "message_id": 1,
        "chat": fake.chat(GROUP),
        "date": 0,
        "text": "post",
    }
    link = fake.text_update(MIA, "/link@elders_bot abcdefghijklmnopqrstuvwx", chat_id=GROUP)
    return [link, fake.callback_update(MIA, 1, "m:1:a", chat_id=GROUP)]


@FUZZ
@given(data=st.data())
async def test_a_malformed_group_update_is_never_a_server_error(rig: Rig, data: Any) -> None:
    payload = data.draw(mutated(_group_payloads(rig.fake)))
    if isinstance(payload, dict) and isinstance(payload.get("update_id"), int):
        payload["update_id"] = next(_update_ids)
    headers = {SECRET_HEADER: WEBHOOK_SECRET, "content-type": "application/json"}
    response = await rig.http.post(
        "/webhooks/telegram", content=to_json(payload).encode(), headers=headers
    )
    assert response.status_code in (200, 400), response.text
    async with rig.sessions() as session:
        assert (await session.exec(select(ProposalEvent))).all() == []


def _update(data: dict[str, Any]) -> TelegramUpdate:
    return TelegramUpdate.model_validate({"update_id": 1, **data})


def _group_message(text: str, chat_type: str = "supergroup") -> TelegramUpdate:
    message = {
        "message_id": 5,
        "chat": {"id": GROUP, "type": chat_type},
        "from": {"id": MIA},
        "text": text,
    }
    return _update({"message": message})


def test_link_is_read_in_both_of_its_forms_and_for_this_bot_only() -> None:
    code = "abcdefghijklmnopqrstuvwx"
    for text in (f"/link {code}", f"/link@elders_bot {code}", f"/LINK@Elders_Bot   {code} x"):
        command = link_command(_group_message(text), "elders_bot")
        assert command is not None and (command.chat_id, command.member_id) == (GROUP, MIA)
        assert command.code == code
    assert link_command(_group_message(f"/link@other_bot {code}"), "elders_bot") is None
    assert link_command(_group_message(f"/linked {code}"), "elders_bot") is None
    assert link_command(_group_message(f"please /link {code}"), "elders_bot") is None
    empty = link_command(_group_message("/link"), "elders_bot")
    assert empty is not None and empty.code == ""


def test_only_groups_and_supergroups_are_moderators_chats() -> None:
    assert from_group(_group_message("hi", "group")) and from_group(_group_message("hi"))
    assert not from_group(_group_message("hi", "private"))
    assert not from_group(_group_message("hi", "channel"))
    tap = _update(
        {
            "callback_query": {
                "id": "9",
                "from": {"id": MIA},
                "message": {"message_id": 5, "chat": {"id": GROUP, "type": "group"}},
                "data": "m:1:a",
            }
        }
    )
    assert from_group(tap)
    found = tap_of(tap)
    assert found is not None and (found.chat_id, found.member_id, found.data) == (
        str(GROUP),
        str(MIA),
        "m:1:a",
    )


@FUZZ
@given(text=st.text(max_size=300))
@example(text="/link@" + "a" * 70 + " code")
@example(text="/link\n\n\x00")
def test_any_group_text_parses_without_failing(text: str) -> None:
    command = link_command(_group_message(text), "elders_bot")
    assert command is None or command.code == "" or command.code in text


def test_a_post_fits_a_telegram_message_and_its_buttons_their_data() -> None:
    assert post_html("a < b & c") == "a &lt; b &amp; c"
    assert len(post_html("<" * 5000)) <= 4096
    with pytest.raises(ValueError):
        keyboard_of(((Button("x", "m:" + "1" * 70),),))
    assert keyboard_of(((Button("Accept", "m:1:a"), Button("Refuse", "m:1:r")),)) == (
        (("Accept", "m:1:a"), ("Refuse", "m:1:r")),
    )

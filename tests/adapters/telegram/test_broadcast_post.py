"""Telegram broadcasts beyond the participants, through PTB and the fake Bot API, on both
databases: a post in a channel the bot administers (a bot cannot write first to a person),
with the deep-link button, planned by the core and addressed by resolve_outside; and a paid
broadcast, sent with allow_paid_broadcast at the paid rate."""

from __future__ import annotations

import pytest

from bench.fakes.telegram_api import FakeTelegram
from bots.broadcast_worker import HEADROOM, PAID, BroadcastWorker, resolve_outside
from core.broadcasts.messages import parse_message
from core.broadcasts.planning import create_broadcast, plan_due
from core.notices import Handover
from tests.adapters.telegram.test_notices_workers import opened
from tests.adapters.telegram.test_telegram_http import TOKEN
from tests.bots.broadcasting import VirtualTime, enrolled, queued_broadcast, states

FAST = {"messages_per_second": 1000.0, "chat_messages_per_second": 1000.0}
NEWS = -1001234567890  # the newspaper's channel


def never(expression, after, zone):
    return None


async def test_a_post_in_a_channel_carries_the_deep_link(
    load_consultation, sessions, clock, flow
) -> None:
    consultation = await load_consultation()
    content = parse_message({"text": {"fr": "Participez !"}, "button": True}, consultation)
    async with sessions() as session, session.begin():
        broadcast = await create_broadcast(
            session, consultation, content, "telegram:post:@elders_news", clock(), None, never,
            "ana@example.org", clock(),
        )  # fmt: skip
        (run,) = await plan_due(session, clock(), never)
    with FakeTelegram(TOKEN, bot_username="elders_bot", limits=None) as fake:
        fake.channels["@elders_news"] = NEWS
        async with opened(flow, fake.url, **FAST) as channel:
            assert await resolve_outside(sessions, {"telegram": channel}, run, clock()) == 1
            worker = BroadcastWorker(sessions, {"telegram": channel}, clock=clock)
            assert await worker.drain() == {Handover.SENT: 1}
    (post,) = fake.calls("sendMessage")
    assert post.params["chat_id"] == NEWS and post.params["text"] == "Participez !"
    (row,) = post.params["reply_markup"]["inline_keyboard"]
    assert row[0]["url"] == "https://t.me/elders_bot?start=elders"
    assert await states(sessions, broadcast.id) == [("sent", None)]


async def test_a_paid_broadcast_goes_at_the_paid_rate(
    load_consultation, sessions, clock, flow
) -> None:
    consultation = await load_consultation()
    people = await enrolled(sessions, clock, "telegram", [str(97_001 + i) for i in range(40)])
    await queued_broadcast(
        sessions, clock, consultation, [(p, "telegram", "fr") for p in people], paid=True
    )
    time = VirtualTime()
    with FakeTelegram(TOKEN, bot_username="elders_bot") as fake:  # Telegram's limits
        async with opened(flow, fake.url) as channel:  # the bot's usual 30 a second
            worker = BroadcastWorker(
                sessions,
                {"telegram": channel},
                clock=clock,
                rates={"telegram": 30.0, PAID: 1000.0},
                monotonic=time,
                sleep=time.sleep,
            )
            assert await worker.drain() == {Handover.SENT: 40}
    sent = fake.calls("sendMessage")
    assert len(sent) == 40 and all(call.ok for call in sent)  # no 429: the paid limit holds
    assert all(call.params["allow_paid_broadcast"] is True for call in sent)
    # Paced at the paid rate (a little under it), not at the bot's usual 30 a second.
    assert time.waits == pytest.approx([1 / (1000.0 * HEADROOM)] * (40 - 1))

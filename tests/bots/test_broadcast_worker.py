"""The broadcasts' delivery worker over PTB and the fake Bot API, on both databases: a person
who blocked the bot is marked and skipped from then on, a paused broadcast sends nothing until
resumed, two workers share a broadcast without sending anything twice, a 429 is waited out
once and tried again in a turn of the pace, the rate is shared among the live workers, and the
messages of a worker that died between its claim and its record become unknown, never sent
again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlmodel import col, select, update

from bench.fakes.telegram_api import FakeTelegram, RateLimits
from bots.broadcast_worker import HEADROOM, BroadcastWorker, sending_rate
from core.broadcasts.delivery import claim_messages
from core.models import Broadcast, BroadcastMessage, BroadcastState, ChannelIdentity, Participant
from core.notices import Handover, beat
from tests.adapters.telegram.test_notices_workers import opened
from tests.adapters.telegram.test_telegram_http import TOKEN
from tests.bots.broadcasting import VirtualTime, enrolled, queued_broadcast, states

FAST = {"messages_per_second": 1000.0, "chat_messages_per_second": 1000.0}
RATES = {"telegram": 1000.0}


def chats(first: int, n: int) -> list[str]:
    return [str(first + i) for i in range(n)]


async def test_a_person_who_blocked_the_bot_is_marked_and_skipped(
    load_consultation, sessions, clock, flow
) -> None:
    consultation = await load_consultation()
    addresses = chats(91_001, 3)
    people = await enrolled(sessions, clock, "telegram", addresses)
    recipients = [(p, "telegram", "fr") for p in people]
    first = await queued_broadcast(sessions, clock, consultation, recipients)
    with FakeTelegram(TOKEN, bot_username="elders_bot", limits=None) as fake:
        fake.blocked.add(int(addresses[1]))
        async with opened(flow, fake.url, **FAST) as channel:
            worker = BroadcastWorker(sessions, {"telegram": channel}, clock=clock, rates=RATES)
            done = await worker.drain()
            assert done == {Handover.SENT: 2, Handover.UNREACHABLE: 1}
            assert await states(sessions, first) == [
                ("sent", None),
                ("failed", "unreachable"),
                ("sent", None),
            ]
            async with sessions() as session:
                marked = await session.exec(
                    select(ChannelIdentity.unreachable_at).where(
                        col(ChannelIdentity.participant_id).in_(people)
                    )
                )
                assert sorted(m is not None for m in marked) == [False, False, True]
            # The next broadcast does not write to them again.
            second = await queued_broadcast(sessions, clock, consultation, recipients)
            await worker.drain()
    assert await states(sessions, second) == [
        ("sent", None),
        ("failed", "unreachable"),
        ("sent", None),
    ]
    assert len(fake.calls("sendMessage", chat_id=int(addresses[1]))) == 1  # the first, refused
    assert fake.sent_texts(int(addresses[0])) == ["Bonjour !", "Bonjour !"]


async def test_a_paused_broadcast_sends_nothing_until_resumed(
    load_consultation, sessions, clock, flow
) -> None:
    consultation = await load_consultation()
    people = await enrolled(sessions, clock, "telegram", chats(92_001, 4))
    broadcast = await queued_broadcast(
        sessions, clock, consultation, [(p, "telegram", "en") for p in people]
    )

    async def set_state(state: str) -> None:
        async with sessions() as session, session.begin():
            await session.exec(
                update(Broadcast).where(col(Broadcast.id) == broadcast).values(state=state)
            )

    await set_state(BroadcastState.PAUSED)
    with FakeTelegram(TOKEN, bot_username="elders_bot", limits=None) as fake:
        async with opened(flow, fake.url, **FAST) as channel:
            worker = BroadcastWorker(sessions, {"telegram": channel}, clock=clock, rates=RATES)
            assert await worker.drain() == {}
            assert fake.count("sendMessage") == 0
            assert {state for state, _ in await states(sessions, broadcast)} == {"queued"}
            await set_state(BroadcastState.SCHEDULED)
            assert await worker.drain() == {Handover.SENT: 4}
    assert fake.count("sendMessage") == 4


async def test_two_workers_share_a_broadcast_without_sending_twice(
    load_consultation, sessions, clock, flow
) -> None:
    consultation = await load_consultation()
    addresses = chats(93_001, 60)
    people = await enrolled(sessions, clock, "telegram", addresses)
    await queued_broadcast(sessions, clock, consultation, [(p, "telegram", "fr") for p in people])
    with FakeTelegram(TOKEN, bot_username="elders_bot", limits=None) as fake:
        async with opened(flow, fake.url, **FAST) as one, opened(flow, fake.url, **FAST) as two:
            workers = [
                BroadcastWorker(sessions, {"telegram": c}, clock=clock, rates=RATES)
                for c in (one, two)
            ]
            for worker in workers:
                worker.batch = 7  # many small batches: the two take turns at the outbox
            done = await asyncio.gather(*(worker.drain() for worker in workers))
    assert done[0][Handover.SENT] + done[1][Handover.SENT] == 60
    for address in addresses:
        assert len(fake.calls("sendMessage", chat_id=int(address))) == 1, address


async def test_a_429_is_waited_out_once(load_consultation, sessions, clock, flow) -> None:
    consultation = await load_consultation()
    people = await enrolled(sessions, clock, "telegram", chats(94_001, 2))
    await queued_broadcast(sessions, clock, consultation, [(p, "telegram", "en") for p in people])
    time = VirtualTime()
    limits = RateLimits(overall_per_second=1.0, overall_burst=1.0)
    with FakeTelegram(TOKEN, bot_username="elders_bot", limits=limits, clock=time) as fake:
        async with opened(flow, fake.url, **FAST) as channel:
            channel.sender.sleep = time.sleep  # Telegram's retry_after, waited in virtual time
            worker = BroadcastWorker(sessions, {"telegram": channel}, clock=clock, rates=RATES)
            assert await worker.drain() == {Handover.SENT: 2}
    assert sorted(call.status for call in fake.calls("sendMessage")) == [200, 200, 429]
    assert time.waits == [1.0]  # Telegram's retry_after, once: no storm
    # The retry took a turn of the worker's pace, as a send of its own: not on top of the flow.
    assert worker.pacers["telegram"].turns == 3


def test_broadcasts_go_a_little_under_the_limit_with_a_whole_message_of_room() -> None:
    # WhatsApp's 80, Telegram's 30, Slack's 20 and paid broadcasts' 1000 a second
    assert sending_rate(80.0) == pytest.approx(80.0 * HEADROOM)
    assert sending_rate(30.0) == pytest.approx(29.0)
    assert sending_rate(20.0) == pytest.approx(19.0)  # 3% would leave 0.6 of a message
    assert sending_rate(1000.0) == pytest.approx(970.0)
    assert sending_rate(10.0) == pytest.approx(10.0 * HEADROOM)  # a message is 10%: 3% only


async def test_the_rate_is_shared_by_the_live_workers(sessions, clock) -> None:
    time = VirtualTime()
    kw = {"clock": clock, "rates": {"telegram": 30.0}, "monotonic": time, "sleep": time.sleep}
    one = BroadcastWorker(sessions, {}, **kw)
    await one.beat()
    assert one.pacers["telegram"].rate == pytest.approx(sending_rate(30.0))
    two = BroadcastWorker(sessions, {}, **kw)
    await two.beat()
    await one.beat()
    shares = (one.pacers["telegram"].rate, two.pacers["telegram"].rate)
    assert shares == pytest.approx((sending_rate(30.0) / 2, sending_rate(30.0) / 2))
    clock.advance(seconds=11)  # `two` stops beating: `one` takes the whole rate again
    await one.beat()
    assert one.pacers["telegram"].rate == pytest.approx(sending_rate(30.0))


@pytest.mark.parametrize("rate", [10.0])
async def test_sends_keep_to_the_rate(load_consultation, sessions, clock, flow, rate) -> None:
    consultation = await load_consultation()
    people = await enrolled(sessions, clock, "telegram", chats(95_001, 25))
    await queued_broadcast(sessions, clock, consultation, [(p, "telegram", "en") for p in people])
    time = VirtualTime()
    with FakeTelegram(TOKEN, bot_username="elders_bot", limits=None) as fake:
        async with opened(flow, fake.url, **FAST) as channel:
            worker = BroadcastWorker(
                sessions,
                {"telegram": channel},
                clock=clock,
                rates={"telegram": rate},
                monotonic=time,
                sleep=time.sleep,
            )
            assert await worker.drain() == {Handover.SENT: 25}
    assert fake.count("sendMessage") == 25
    # Evenly, a little under the rate (platforms count in sliding windows): no burst first.
    assert time.waits == pytest.approx([1 / (rate * HEADROOM)] * (25 - 1))


async def test_a_worker_dead_between_claim_and_record_leaves_its_messages_unknown(
    load_consultation, sessions, clock, flow
) -> None:
    consultation = await load_consultation()
    people = await enrolled(sessions, clock, "telegram", chats(96_001, 5))
    broadcast = await queued_broadcast(
        sessions, clock, consultation, [(p, "telegram", "fr") for p in people]
    )
    # A worker claims three messages in its committed transaction, then dies before recording
    # (the send may have happened): it beats no more.
    async with sessions() as session, session.begin():
        await beat(session, "broadcasts-dead", clock())
        claimed = await claim_messages(session, "broadcasts-dead", ["telegram"], clock(), limit=3)
    assert len(claimed) == 3
    clock.advance(seconds=11)
    with FakeTelegram(TOKEN, bot_username="elders_bot", limits=None) as fake:
        async with opened(flow, fake.url, **FAST) as channel:
            worker = BroadcastWorker(sessions, {"telegram": channel}, clock=clock, rates=RATES)
            assert await worker.drain() == {Handover.SENT: 2}
    assert (
        await states(sessions, broadcast) == [("unknown", "worker-died")] * 3 + [("sent", None)] * 2
    )
    assert fake.count("sendMessage") == 2


class HeldChannel:
    """A channel whose first send is held until the test lets it go (a slow platform), and
    that records what it was given."""

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.sending = asyncio.Event()
        self.go_on = asyncio.Event()

    async def broadcast(self, message: Any) -> Handover:
        self.sent.append(message.id)
        self.sending.set()
        await self.go_on.wait()
        return Handover.SENT


async def claims(sessions: Any, broadcast: int) -> list[tuple[str, str | None, int]]:
    async with sessions() as session:
        rows = await session.exec(
            select(BroadcastMessage.state, BroadcastMessage.claimed_by, BroadcastMessage.attempts)
            .where(BroadcastMessage.broadcast_id == broadcast)
            .order_by(col(BroadcastMessage.id))
        )
        return list(rows)


async def test_a_stopped_worker_claims_no_more_batches(load_consultation, sessions, clock) -> None:
    consultation = await load_consultation()
    people = await enrolled(sessions, clock, "telegram", chats(97_001, 6))
    broadcast = await queued_broadcast(
        sessions, clock, consultation, [(p, "telegram", "fr") for p in people]
    )
    channel = HeldChannel()
    # One a second: the batch's second message is still waiting for its turn at the stop.
    worker = BroadcastWorker(sessions, {"telegram": channel}, clock=clock, rates={"telegram": 1.0})
    worker.batch = 2  # a full batch: more are ready, and the worker would go on at once
    await worker.start()
    await channel.sending.wait()
    stopping = asyncio.ensure_future(worker.stop())  # it runs first: the loop is FIFO
    channel.go_on.set()  # then the send under way finishes
    await stopping
    assert len(channel.sent) == 1  # no other send, and no other batch
    assert [state for state, _, _ in await claims(sessions, broadcast)] == ["sent"] + ["queued"] * 5


async def test_messages_still_waiting_for_their_turn_at_stop_are_released(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation()
    people = await enrolled(sessions, clock, "telegram", chats(98_001, 5))
    broadcast = await queued_broadcast(
        sessions, clock, consultation, [(p, "telegram", "fr") for p in people]
    )
    never = asyncio.Event()

    async def slow_pace(seconds: float) -> None:  # a pace slower than the test: never over
        await never.wait()

    channel = HeldChannel()
    channel.go_on.set()
    worker = BroadcastWorker(
        sessions, {"telegram": channel}, clock=clock, rates={"telegram": 1.0}, sleep=slow_pace
    )
    await worker.start()
    await channel.sending.wait()  # the first of the batch went; the others wait their turn
    await worker.stop()
    assert len(channel.sent) == 1
    # Never handed to Telegram: queued again as they were, not unknown (never sent again).
    rows = await claims(sessions, broadcast)
    assert [state for state, _, _ in rows[:1]] == ["sent"]
    assert rows[1:] == [("queued", None, 0)] * 4


async def test_a_batch_of_people_gone_does_not_end_the_drain_before_those_behind_them(
    load_consultation, sessions, clock, flow
) -> None:
    consultation = await load_consultation()
    addresses = chats(99_101, 5)
    people = await enrolled(sessions, clock, "telegram", addresses)
    broadcast = await queued_broadcast(
        sessions, clock, consultation, [(p, "telegram", "fr") for p in people]
    )
    async with sessions() as session, session.begin():  # the first three used /forget
        await session.exec(
            update(Participant)
            .where(col(Participant.id).in_(people[:3]))
            .values(forgotten_at=clock())
        )
    with FakeTelegram(TOKEN, bot_username="elders_bot", limits=None) as fake:
        async with opened(flow, fake.url, **FAST) as channel:
            worker = BroadcastWorker(sessions, {"telegram": channel}, clock=clock, rates=RATES)
            worker.batch = 3  # the first batch: nobody to send to
            assert await worker.drain() == {Handover.SENT: 2}  # consult deliver --once
    assert await states(sessions, broadcast) == [("failed", "forgotten")] * 3 + [("sent", None)] * 2
    assert fake.sent_texts(int(addresses[4])) == ["Bonjour !"]

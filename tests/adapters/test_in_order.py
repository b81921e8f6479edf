"""adapters.pacing.InOrder: one conversation's deliveries go out in the order they began, other
conversations are not held up, and idle conversations are forgotten."""

from __future__ import annotations

import asyncio

from adapters.pacing import InOrder


async def test_a_later_delivery_to_a_chat_waits_for_the_earlier_one() -> None:
    order = InOrder()
    sent: list[str] = []

    async def deliver(chat: str, name: str, pause: float) -> None:
        async with order.turn(chat):
            sent.append(f"{name} starts")
            await asyncio.sleep(pause)  # a slow Bot API call
            sent.append(f"{name} ends")

    first = asyncio.create_task(deliver("4242", "thanks+menu", 0.1))
    await asyncio.sleep(0)  # the first delivery has begun
    second = asyncio.create_task(deliver("4242", "erase?", 0))
    other = asyncio.create_task(deliver("7", "other chat", 0))
    await asyncio.gather(first, second, other)
    assert sent.index("thanks+menu ends") < sent.index("erase? starts")
    assert sent.index("other chat ends") < sent.index("thanks+menu ends")  # not held up
    assert len(order) == 0


async def test_a_failed_delivery_gives_the_turn_on() -> None:
    order = InOrder()
    try:
        async with order.turn("4242"):
            raise RuntimeError("the Bot API is down")
    except RuntimeError:
        pass
    async with asyncio.timeout(1), order.turn("4242"):
        pass
    assert len(order) == 0

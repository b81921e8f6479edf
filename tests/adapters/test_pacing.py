"""The even pace of broadcasts (`EvenPacer`) against a clock that stalls, and the turn a
throttled send takes in its flow when tried again (`paced_by`, `pace_again`)."""

from __future__ import annotations

import asyncio
from itertools import pairwise

import pytest

from adapters.pacing import EvenPacer, pace_again, paced_by

LIMIT = 10  # a platform's, counted in sliding windows of a second
RATE = LIMIT * 0.97


class StallingClock:
    """Seconds that pass only in `sleep`, which oversleeps by `stalls[i]` on its i-th call:
    an event loop busy elsewhere when a send's slot came."""

    def __init__(self, stalls: dict[int, float] | None = None) -> None:
        self.now = 100.0
        self.stalls = stalls or {}
        self.sleeps = 0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds + self.stalls.get(self.sleeps, 0.0)
        self.sleeps += 1


async def let_go(pacer: EvenPacer, clock: StallingClock, sends: int) -> list[float]:
    """When each of `sends` concurrent senders was let go by `pacer`."""
    times: list[float] = []

    async def send() -> None:
        await pacer.wait("flow")
        times.append(clock())

    await asyncio.gather(*(send() for _ in range(sends)))
    return times


def most_in_a_second(times: list[float]) -> int:
    return max(sum(1 for t in times if start <= t < start + 1.0) for start in times)


async def test_sends_go_evenly_from_the_first() -> None:
    clock = StallingClock()
    times = await let_go(EvenPacer(RATE, clock=clock, sleep=clock.sleep), clock, 25)
    assert [b - a for a, b in pairwise(times)] == pytest.approx([1 / RATE] * 24)


async def test_sends_held_up_are_not_made_up_in_a_burst() -> None:
    # The 6th send is let go 0.35 s after its slot. Slots booked in advance (a token bucket)
    # would let the 3 sends due meanwhile go with it, and the second that begins with them
    # would hold three too many: here the time lost is lost.
    clock = StallingClock({4: 0.35})
    times = await let_go(EvenPacer(RATE, clock=clock, sleep=clock.sleep), clock, 25)
    assert min(b - a for a, b in pairwise(times)) == pytest.approx(1 / RATE)
    assert most_in_a_second(times) <= LIMIT
    # And it waits one interval more: the stall may have held the 5th on its way too.
    assert times[5] - times[4] == pytest.approx(1 / RATE + 0.35 + 1 / RATE)


async def test_a_slot_a_little_late_keeps_the_schedule() -> None:
    # Late by less than `late` (a timer's usual delay): the next slot is still the scheduled
    # one, so such delays do not add up to a slower rate.
    clock = StallingClock({i: 0.002 for i in range(24)})
    times = await let_go(EvenPacer(RATE, clock=clock, sleep=clock.sleep), clock, 25)
    assert times[-1] - times[0] == pytest.approx(24 / RATE + 0.002)


async def test_a_retry_waits_for_a_turn_of_its_flow_only_within_it() -> None:
    turns: list[str] = []

    async def flow() -> None:
        turns.append("turn")

    await pace_again()  # a send of no paced flow: nothing to wait for
    with paced_by(flow):
        await pace_again()
        await asyncio.gather(pace_again(), pace_again())  # the flow's tasks, too
    await pace_again()
    assert turns == ["turn"] * 3

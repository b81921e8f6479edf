"""Outbound pacing: token buckets per conversation and overall, shared by the channels.

Platforms throttle bots (Telegram: about one message per second in a chat, 30 per second
overall, 20 per minute in a group; Slack: about one message per second per channel). Sending
through a `Pacer` waits for a free slot instead of collecting 429s; a 429 that still comes back
is honoured by the channel with the delay the platform gave. A flow sent a little under a
platform's limit (broadcasts) goes through an `EvenPacer`, and its sends tried again after a 429
take a slot of that flow (`paced_by`, `pace_again`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up."""

    rate: float
    burst: float
    tokens: float
    updated: float

    def delay(self, now: float) -> float:
        """Take one token; the seconds to wait before the message it pays for may go."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class Pacer:
    """Waits so that sends stay within an overall rate and a rate per conversation key.

    Slots are reserved in order, so concurrent senders to one chat queue fairly. Buckets of
    quiet conversations are forgotten, so memory follows the number of active chats.
    """

    def __init__(
        self,
        overall_per_second: float,
        per_key_per_second: float,
        *,
        per_key_burst: float = 3.0,
        overall_burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """`overall_burst`: how many messages may leave at once after a quiet spell (default:
        a second's worth); 1 paces evenly, as a platform counting in sliding windows needs."""
        self.clock = clock
        self.sleep = sleep
        self.per_key_per_second = per_key_per_second
        self.per_key_burst = per_key_burst
        burst = max(1.0, overall_per_second) if overall_burst is None else overall_burst
        self.overall = TokenBucket(overall_per_second, burst, burst, clock())
        self.keys: dict[str, TokenBucket] = {}

    async def wait(
        self, key: str, *, rate: float | None = None, burst: float | None = None
    ) -> None:
        """Wait for a slot for one message to `key` (a chat or channel id).

        `rate` and `burst` override the per-key defaults (groups are slower than private chats).
        """
        now = self.clock()
        bucket = self.keys.get(key)
        if bucket is None:
            per_key_rate = rate or self.per_key_per_second
            size = burst or self.per_key_burst
            bucket = self.keys[key] = TokenBucket(per_key_rate, size, size, now)
        delay = max(bucket.delay(now), self.overall.delay(now))
        if len(self.keys) > 10_000:
            self._forget_quiet(now)
        if delay > 0:
            await self.sleep(delay)

    def _forget_quiet(self, now: float) -> None:
        for key, bucket in list(self.keys.items()):
            if bucket.tokens + (now - bucket.updated) * bucket.rate >= bucket.burst:
                del self.keys[key]


class EvenPacer:
    """One send every 1/`rate` seconds, counted from the slot the previous send took.

    A `Pacer` books slots in advance: sends held up past theirs (an event loop busy with a
    batch's records, a machine short of CPU) then leave together to catch up, and a platform
    counting sliding windows of a second (WhatsApp, Slack) finds too many in the window that
    began with them. Here a send takes its slot only when the one before it has gone, and one
    let go more than `late` seconds after its slot starts the count again from then: time lost
    is lost, never made up in a burst. Any second then holds at most rate * (1 + late) + 1
    sends. A send held up by half an interval or more waits one more: the stall that held it
    may have held the send before it on its way too. Senders queue in order (first come,
    first served).
    """

    def __init__(
        self,
        rate: float,
        *,
        late: float = 0.005,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.late = late
        self.clock = clock
        self.sleep = sleep
        self._turn = asyncio.Lock()
        self._slot: float | None = None  # the slot the last send took
        self.turns = 0  # slots taken: sends, and sends tried again (`pace_again`)

    async def wait(self, key: str = "") -> None:
        """Wait for the next slot (`key` is unused: one flow, whoever the sends go to)."""
        async with self._turn:
            now = self.clock()
            slot = now if self._slot is None else max(now, self._slot + 1 / self.rate)
            if slot > now:
                await self.sleep(slot - now)
                now = self.clock()
            if now - slot > max(self.late, 0.5 / self.rate):  # held up: so may be the send
                await self.sleep(1 / self.rate)  # before, still on its way: not both at once
                now = self.clock()
            self._slot = slot if now - slot <= self.late else now
            self.turns += 1


# The pace of the flow the current send belongs to, when its caller paces the sends (the
# broadcasts' worker). A send that a platform throttled is tried again after the delay it gave;
# without a slot of the flow, the retries of one second would go out on top of it, into windows
# as full as the one that refused them, and earn 429s of their own.
_pace: ContextVar[Callable[[], Awaitable[None]] | None] = ContextVar("pace", default=None)


@contextmanager
def paced_by(pace: Callable[[], Awaitable[None]]) -> Iterator[None]:
    """Within the block (the current task), retries of throttled sends wait for `pace`."""
    token = _pace.set(pace)
    try:
        yield
    finally:
        _pace.reset(token)


async def pace_again() -> None:
    """Before a throttled send is tried again: wait for a slot of its flow, if it has one
    (`paced_by`); the sender's own pacing still applies."""
    pace = _pace.get()
    if pace is not None:
        await pace()


class InOrder:
    """Replies to one conversation leave in the order their events were handled.

    Each event's replies are sent by a task of their own, after the webhook has answered; two
    events of one chat close together (a tap, then a command) would otherwise race, and the
    second event's question could arrive before the first event's last message. A delivery
    takes its conversation's turn (first come, first served) and keeps it until its replies are
    sent. Within one process; idle conversations are forgotten.
    """

    def __init__(self) -> None:
        self._turns: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    @asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[None]:
        lock, waiting = self._turns.setdefault(key, (asyncio.Lock(), [0]))
        waiting[0] += 1
        try:
            async with lock:
                yield
        finally:
            waiting[0] -= 1
            if not waiting[0]:
                del self._turns[key]

    def __len__(self) -> int:
        return len(self._turns)

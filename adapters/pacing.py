"""Outbound pacing: token buckets per conversation and overall, shared by the channels.

Platforms throttle bots (Telegram: about one message per second in a chat, 30 per second
overall, 20 per minute in a group; Slack: about one message per second per channel). Sending
through a `Pacer` waits for a free slot instead of collecting 429s; a 429 that still comes back
is honoured by the channel with the delay the platform gave.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
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

"""The delivery worker of broadcasts (`core.broadcasts.delivery`): inside `consult serve`, next
to the notices' worker, or in `consult deliver`.

It lives as the notices' worker does (`bots.outbox_worker.OutboxWorker`: beating in a task of its
own, rounds until stopped, `drain` for `--once`) and differs in its round: a batch of up to
BATCH messages is claimed in one committed transaction, sent concurrently within the pacing,
and its outcomes recorded in ONE transaction. The pacing is per bot token, phone number and
workspace (this process has one of each per channel), and shared: with several delivery
processes alive, each takes the limit divided by the number of broadcast workers that beat
recently, counted again at every beat.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from adapters.pacing import EvenPacer, paced_by
from bots.bootstrap import Runtime
from bots.channels import enabled_channels
from bots.errors import ChannelNotConfigured
from bots.outbox_worker import OutboxWorker
from bots.settings import Settings
from core.broadcasts.delivery import (
    BroadcastOutgoing,
    claim_batch,
    record_messages,
    within_window,
)
from core.broadcasts.planning import PlannedRun, add_outside_recipients
from core.identity import identity_hash
from core.models import BroadcastMessage, DeliveryWorker
from core.notices import Handover, beat, mark_unknown

log = logging.getLogger("consult.broadcasts")
BATCH = 500
PREFIX = "broadcasts-"  # the delivery workers' rows this worker shares the rate with
PAID = "telegram-paid"  # Telegram's paid broadcasts have a rate of their own
# The share of a platform's limit we send at. Platforms count messages in sliding windows of a
# second and our requests reach them with some jitter: paced at the limit exactly, about every
# other window would hold one too many and earn a 429. The sends bunched to catch up after a
# stall, and the retries sent on top of the flow, that earned most 429s on the benchmark are
# paced away (`EvenPacer`, `paced_by`); what is left is a request held up on its way, reaching
# the platform with the next one: `sending_rate` keeps a whole message of room for it.
HEADROOM = 0.97
ROOM = 1.0  # messages a second under the limit, at least, where that costs at most 5% of it


def sending_rate(limit: float) -> float:
    """The messages a second broadcasts go at on a platform allowing `limit` (by all the
    workers together): HEADROOM of it, and ROOM under it at least when the limit is 20 or
    more (3% of Slack's 20 a second is less than one message of room in a window)."""
    rate = limit * HEADROOM
    return min(rate, limit - ROOM) if limit * 0.95 <= limit - ROOM else rate


def new_broadcast_worker_id() -> str:
    return f"{PREFIX}{uuid.uuid4().hex}"


def broadcast_worker(
    rt: Runtime, channels: Mapping[str, Any], settings: Settings
) -> BroadcastWorker:
    """The worker of a server or of `consult deliver`, paced by the settings."""
    tier = None if settings.whatsapp_tier == "unlimited" else int(settings.whatsapp_tier)
    return BroadcastWorker(
        rt.sessions,
        channels,
        clock=rt.flow.clock,
        rates={
            "telegram": settings.telegram_broadcast_per_second,
            PAID: settings.telegram_paid_broadcast_per_second,
            "whatsapp": settings.whatsapp_messages_per_second,
            "slack": settings.slack_messages_per_second,
        },
        whatsapp_tier=tier,
        every=settings.broadcasts_every_seconds,
        beat_every=settings.delivery_beat_seconds,
        stale_after=settings.delivery_stale_seconds,
    )


async def live_workers(session: AsyncSession, now: datetime, stale_after: timedelta) -> int:
    """How many broadcast workers beat within `stale_after` (at least one: the caller)."""
    counted = await session.exec(
        select(func.count()).where(
            col(DeliveryWorker.id).startswith(PREFIX),
            col(DeliveryWorker.beat_at) >= now - stale_after,
        )
    )
    return max(1, int(counted.one()))


class BroadcastWorker(OutboxWorker):
    """Sends the broadcast messages of the channels this process runs, at `rates` (messages
    per second per channel, shared by the live workers), and marks unknown those claimed by
    workers silent for `stale_after` seconds. `whatsapp_tier` caps the unique recipients
    reached outside WhatsApp's window per 24 hours (None: unlimited). `monotonic` and `sleep`
    drive the pacing (injected by tests)."""

    batch = BATCH

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        channels: Mapping[str, Any],
        *,
        clock: Callable[[], datetime],
        rates: Mapping[str, float] | None = None,
        whatsapp_tier: int | None = None,
        every: float = 2.0,
        beat_every: float = 2.0,
        stale_after: float = 10.0,
        worker: str | None = None,
        pause: Callable[[float], Awaitable[object]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(
            sessions,
            {name: c for name, c in channels.items() if hasattr(c, "broadcast")},
            clock=clock,
            every=every,
            beat_every=beat_every,
            stale_after=stale_after,
            worker=worker or new_broadcast_worker_id(),
            pause=pause,
        )
        self.rates = dict(rates or {"telegram": 30.0, PAID: 1000.0, "whatsapp": 80.0})
        self.whatsapp_tier = whatsapp_tier
        self.monotonic = monotonic
        self.sleep = sleep
        self.live = 0
        self.pacers: dict[str, EvenPacer] = {}
        self._share(1)
        self._outside: set[int] = set()  # of the unrecorded: sent as WhatsApp templates
        self._released: list[int] = []  # claimed, never sent (stopped first), not recorded

    def _share(self, live: int) -> None:
        """Pace each channel at its rate divided by the `live` workers."""
        if live == self.live:
            return
        self.live = live
        self.pacers = {
            name: EvenPacer(sending_rate(rate) / live, clock=self.monotonic, sleep=self.sleep)
            for name, rate in self.rates.items()
        }

    async def beat(self) -> None:
        """Say this worker is alive, and take its share of the rates anew."""
        async with self.sessions() as session, session.begin():
            now = self.clock()
            await beat(session, self.worker, now)
            live = await live_workers(session, now, self.stale_after)
        self._share(live)

    async def round(self) -> int:
        """Mark the dead workers' messages unknown, then send each channel's ready messages,
        batch after batch, the channels side by side (one platform's pace never holds
        another's); how many messages were claimed in all (none: nothing was ready)."""
        if self._unrecorded or self._released:
            await self._record_left()
        async with self.sessions() as session, session.begin():
            unknown = await mark_unknown(
                session, self.clock(), self.stale_after, table=BroadcastMessage
            )
        if unknown:
            log.warning(
                "%d broadcast message(s) were being sent by a worker that died: marked unknown",
                unknown,
            )
        done = await asyncio.gather(
            *(self._send_channel(name) for name in self.channels), return_exceptions=True
        )
        for failed in done:
            if isinstance(failed, BaseException):
                raise failed
        return sum(claimed for claimed in done if isinstance(claimed, int))

    def batch_of(self, channel: str) -> int:
        """Messages of `channel` claimed at once: about ten seconds at its pace (the claim and
        the record between two batches then cost little), never more than `batch` (what a
        crash may leave unknown)."""
        pacer = self.pacers.get(channel)
        rate = pacer.rate if pacer is not None else float(self.batch)
        return max(1, min(self.batch, max(50, int(rate * 10))))

    async def _send_channel(self, channel: str) -> int:
        """Batches of `channel` until one comes back short (nothing more is ready) or the
        worker stops; how many messages were claimed."""
        claimed, size = 0, self.batch_of(channel)
        while not self._stopping.is_set():
            taken = await self._send_batch(channel, size)
            claimed += taken
            if taken < size:
                break
        return claimed

    async def _send_batch(self, channel: str, size: int) -> int:
        """Claim up to `size` messages of `channel` in one committed transaction, send them
        within the pacing, record them in one transaction; how many were claimed, sent or not
        (settled at the claim, put back for the tier)."""
        async with self.sessions() as session, session.begin():
            now = self.clock()
            tier = self.whatsapp_tier if channel == "whatsapp" else None
            claimed = await claim_batch(
                session, self.worker, (channel,), now, limit=size, whatsapp_tier=tier
            )
        batch = claimed.messages
        if not batch:  # all settled at the claim (forgotten...) or put back: more may wait
            return claimed.claimed
        sends = await asyncio.gather(*(self._send_message(message) for message in batch))
        outcomes = [(message_id, handover) for message_id, handover in sends if handover]
        released = [message_id for message_id, handover in sends if handover is None]
        now = self.clock()
        outside = {
            message.id
            for message in batch
            if message.channel == "whatsapp"
            and message.template is not None
            and not within_window(message.last_seen_at, now)
        }
        try:
            async with self.sessions() as session, session.begin():
                await record_messages(
                    session,
                    self.worker,
                    outcomes,
                    now,
                    outside_window=outside,
                    released=released,
                )
        except (SQLAlchemyError, OSError) as error:  # the sends are done: record them next round
            log.warning("could not record %d broadcast message(s): %s", len(outcomes), error)
            self._unrecorded.extend(outcomes)
            self._outside |= outside
            self._released.extend(released)
        return claimed.claimed

    async def _send_message(self, message: BroadcastOutgoing) -> tuple[int, Handover | None]:
        """Send one message in its turn; None if the worker was stopped before its turn came
        (never handed to the platform: it is released, for a live worker to send). A send the
        platform throttled is tried again in a turn of its own, behind the batch's."""
        pacer = self.pacers.get(PAID if message.paid else message.channel)
        if pacer is not None and not await self._turn(pacer, message.channel):
            return message.id, None
        try:
            channel = self.channels[message.channel]
            if pacer is None:
                handover: Handover = await channel.broadcast(message)
            else:
                with paced_by(pacer.wait):
                    handover = await channel.broadcast(message)
        except Exception:  # a bug in a channel: it may have sent, so it is not sent again
            log.exception("sending broadcast message %d on %s failed", message.id, message.channel)
            handover = Handover.UNKNOWN
        self.outcomes[handover] += 1
        return message.id, handover

    async def _turn(self, pacer: EvenPacer, key: str) -> bool:
        """Wait for the pacing's slot; False if `stop` came first. A slow pace (a small share
        of a rate, a workspace's) can hold a batch for minutes: cut off by stop's timeout, its
        messages still waiting would be taken for sent maybe, and never sent."""
        if self._stopping.is_set():
            return False
        slot = asyncio.ensure_future(pacer.wait(key))
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({slot, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in (slot, stop):
                waiting.cancel()
            await asyncio.gather(slot, stop, return_exceptions=True)
        return slot.done() and not slot.cancelled() and slot.exception() is None

    async def _record_left(self) -> None:
        async with self.sessions() as session, session.begin():
            await record_messages(
                session,
                self.worker,
                self._unrecorded,
                self.clock(),
                outside_window=self._outside,
                released=self._released,
            )
        self._unrecorded, self._outside, self._released = [], set(), []


async def resolve_outside(
    sessions: async_sessionmaker[AsyncSession] | Runtime,
    channels: Mapping[str, Any] | Settings,
    run: PlannedRun,
    now: datetime | None = None,
) -> int:
    """Queue the recipients of an occurrence whose audience lives outside the consultation,
    asked of the platform: every member of the Slack workspace or channel (paginated, without
    bots, deactivated accounts or the app itself), or the Telegram channel a post goes to;
    how many were added. A WhatsApp list is queued by the planning itself (0 here), and so is
    a run whose channel is not configured (logged).

    Called with the opened `channels` of a server, or as `(runtime, settings, run)` by the
    scheduler, which has none: the channel is then built from the settings for the call."""
    outside = run.outside
    if outside is None or outside.kind == "whatsapp-list":
        return 0
    name = "slack" if outside.kind == "slack-members" else "telegram"
    if isinstance(sessions, Runtime):
        assert isinstance(channels, Settings)
        return await _resolve_with_settings(sessions, channels, run, name)
    assert not isinstance(channels, Settings)
    channel = channels.get(name)
    if channel is None:
        log.warning("broadcast %d: %s is not configured", run.broadcast_id, name)
        return 0
    return await _resolve(sessions, channel, channel.flow.secret, run, now or channel.flow.clock())


@asynccontextmanager
async def channel_from_settings(
    rt: Runtime, settings: Settings, name: str
) -> AsyncIterator[Any | None]:
    """The channel `name` built from the settings and opened for one call (the scheduler, an
    organiser's test message: processes that run no channel), closed on exit; None if it is
    not configured, or only half."""
    try:
        found = [c for c in enabled_channels(settings) if c.name == name]
    except ChannelNotConfigured:
        found = []
    if not found:
        yield None
        return
    (channel,) = found
    await channel.open(rt.flow)
    try:
        yield channel
    finally:
        await channel.close()


async def _resolve_with_settings(
    rt: Runtime, settings: Settings, run: PlannedRun, name: str
) -> int:
    if name == "telegram":  # a post: nothing to ask Telegram
        return await _resolve(rt.sessions, None, rt.flow.secret, run, rt.flow.clock())
    async with channel_from_settings(rt, settings, name) as channel:
        if channel is None:
            log.warning("broadcast %d: %s is not configured", run.broadcast_id, name)
            return 0
        return await _resolve(rt.sessions, channel, rt.flow.secret, run, rt.flow.clock())


async def _resolve(
    sessions: async_sessionmaker[AsyncSession],
    channel: Any,
    secret: bytes,
    run: PlannedRun,
    now: datetime,
) -> int:
    assert run.outside is not None
    outside = run.outside
    name = "slack" if outside.kind == "slack-members" else "telegram"

    def hasher(address: str) -> str:
        return identity_hash(secret, name, address)

    if outside.kind == "telegram-post":
        pages: AsyncIterator[list[tuple[str, str | None]]] = _one([(outside.name or "", None)])
    else:
        pages = channel.members(outside.name)
    added = 0
    async for page in pages:
        async with sessions() as session, session.begin():
            added += await add_outside_recipients(session, run.run_id, page, hasher, now)
    return added


async def _one(page: list[tuple[str, str | None]]) -> AsyncIterator[list[tuple[str, str | None]]]:
    yield page

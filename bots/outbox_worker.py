"""The life of an outbox's delivery worker (`bots.notices`, `bots.broadcast_worker`): it beats
in a task of its own, so that a long round (pacing, a slow platform) never makes it look dead
to the others, and sends rounds until stopped, without pause while a round comes back full;
`drain` sends rounds until none is left (`consult deliver --once`). What a round claims, sends
and records is the subclass's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from core.notices import Handover, beat, new_worker_id

log = logging.getLogger("consult.delivery")
BATCH = 50


class OutboxWorker:
    """Sends the rows of an outbox on `channels` every `every` seconds (see the module)."""

    batch = BATCH  # rows claimed per round: a full one means more are ready

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        channels: Mapping[str, Any],
        *,
        clock: Callable[[], datetime],
        every: float = 2.0,
        beat_every: float = 2.0,
        stale_after: float = 10.0,
        worker: str | None = None,
        pause: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.sessions = sessions
        self.pause = pause  # how the beating task waits between beats (injected by tests)
        self.channels = channels
        self.clock = clock
        self.every = every
        self.beat_every = beat_every
        self.stale_after = timedelta(seconds=stale_after)
        self.worker = worker or new_worker_id()
        self.outcomes: Counter[Handover] = Counter()
        self._unrecorded: list[tuple[int, Handover]] = []  # sent, their record not committed
        self._stopping = asyncio.Event()
        self._beater: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Beat once (a worker that has not beaten looks dead), then beat and send in the
        background."""
        await self.beat()
        self._stopping.clear()
        loop = asyncio.get_running_loop()
        self._beater = loop.create_task(self._beating())
        self._sender = loop.create_task(self._sending())

    async def stop(self, *, timeout: float = 30.0) -> None:
        """Stop claiming, and let the batch under way finish (within `timeout`: past it, its
        rows stay claimed by this worker and become unknown, since they may have gone out)."""
        self._stopping.set()
        if self._sender is not None:
            await asyncio.wait({self._sender}, timeout=timeout)
        for task in (self._sender, self._beater):
            if task is not None:
                task.cancel()
        await asyncio.gather(
            *(t for t in (self._sender, self._beater) if t), return_exceptions=True
        )
        self._sender = self._beater = None

    async def beat(self) -> None:
        async with self.sessions() as session, session.begin():
            await beat(session, self.worker, self.clock())

    async def drain(self) -> Counter[Handover]:
        """Send rounds until no row is ready (for `consult deliver --once`); what became of
        the rows sent. It beats all along, as `start` does: a long round (pacing, a slow
        platform) must not look dead to a `consult serve` running meanwhile."""
        await self.beat()
        beater = asyncio.get_running_loop().create_task(self._beating())
        try:
            while await self.round():
                pass
        finally:
            beater.cancel()
            await asyncio.gather(beater, return_exceptions=True)
        return self.outcomes

    async def _beating(self) -> None:
        while True:
            await self.pause(self.beat_every)
            try:
                await self.beat()
            except (SQLAlchemyError, OSError) as error:
                log.warning("the delivery worker %s could not beat: %s", self.worker, error)

    async def _sending(self) -> None:
        while not self._stopping.is_set():
            try:
                # More ready: no pause; but once stopping, no new claim (its rows would be
                # cut off mid-send by stop's timeout and become unknown, never sent).
                while await self.round() >= self.batch and not self._stopping.is_set():
                    pass
            except (SQLAlchemyError, OSError) as error:  # the database is away: try later
                log.warning("%s could not send: %s", self.worker, error)
            except Exception:  # a bug: keep going, the next round may do better
                log.exception("%s: sending failed", self.worker)
            with contextlib.suppress(TimeoutError):  # a pause, cut short by stop()
                await asyncio.wait_for(self._stopping.wait(), self.every)

    async def round(self) -> int:
        """Claim a batch, send it, record it; how many rows were claimed."""
        raise NotImplementedError

    async def _record_left(self) -> None:
        """Record the sends whose record could not be committed (`_unrecorded`)."""
        raise NotImplementedError

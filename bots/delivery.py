"""What a server process owes participants, kept: it beats, settles the replies it sent, and
sends those of a process that died before it could (see `core.outbox`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from sqlalchemy.exc import SQLAlchemyError

from adapters.channel import WebhookChannel
from core.flow import Flow
from core.outbox import Owed

log = logging.getLogger("consult.delivery")


class Keeper:
    """Runs `Flow.settle` every `every` seconds and resends what it took over."""

    def __init__(self, flow: Flow, channels: Mapping[str, WebhookChannel], *, every: float) -> None:
        self.flow = flow
        self.channels = channels
        self.every = every
        self._task: asyncio.Task[None] | None = None
        self._resends: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Beat once (before any event is taken: a process that has not beaten looks dead),
        resume what dead processes left, then keep at it in the background."""
        await self.keep()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop taking over, and finish the resends under way."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._resends:
            await asyncio.wait(self._resends, timeout=30)

    async def settle_last(self) -> None:
        """Write what the channels sent until they closed (what they could not send stays owed,
        and another process sends it once this one's beat is stale)."""
        try:
            await self.flow.settle(channels=())
        except (SQLAlchemyError, OSError) as error:
            log.warning("could not settle the replies sent: %s", error)

    async def keep(self) -> None:
        """One round: beat, settle, and resend what was taken over from dead processes."""
        for owed in await self.flow.settle(channels=tuple(self.channels)):
            task = asyncio.get_running_loop().create_task(self._resend(owed))
            self._resends.add(task)
            task.add_done_callback(self._resends.discard)

    async def _resend(self, owed: Owed) -> None:
        try:
            outcome = await self.flow.resume(owed)
            if outcome.replies:
                await self.channels[owed.channel].resend(outcome)
            else:
                self.flow.sent(outcome.owed)
        except Exception:  # once it is stale, a later round takes it up again
            log.exception("could not resume a participant on %s", owed.channel)
            self.flow.release(owed.id)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.keep()
            except (SQLAlchemyError, OSError) as error:  # the database is away: beat later
                log.warning("could not settle the replies sent: %s", error)
            except Exception:  # a bug: keep beating, or other workers take this one for dead
                log.exception("settling the replies sent failed")

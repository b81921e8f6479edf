"""What the broadcast delivery tests share: recipients enrolled through the core, a broadcast's
occurrence queued as rows (as the planning writes them), and a virtual time for the pacing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlmodel import col, select

from core.identity import enrol
from core.models import Broadcast, BroadcastMessage, BroadcastRun, ChannelIdentity
from tests.conftest import SECRET


async def enrolled(
    sessions: Any,
    clock: Any,
    channel: str,
    users: list[str],
    *,
    seen: datetime | None = None,
    address: Callable[[str], str] = str,
) -> list[int]:
    """A participant per user id on `channel`, at `address(user)`, who last wrote at `seen`
    (when given); their ids."""
    ids = []
    async with sessions() as session, session.begin():
        for user in users:
            enrolment = await enrol(session, SECRET, channel, user, address(user), clock())
            assert enrolment.participant.id is not None
            ids.append(enrolment.participant.id)
            if seen is not None:
                identity = (
                    await session.exec(
                        select(ChannelIdentity).where(
                            ChannelIdentity.participant_id == enrolment.participant.id
                        )
                    )
                ).one()
                identity.last_seen_at = seen
                session.add(identity)
    return ids


async def queued_broadcast(
    sessions: Any,
    clock: Any,
    consultation: Any,
    recipients: list[tuple[int, str, str]],
    *,
    texts: dict[str, str] | None = None,
    button: bool = False,
    template: dict[str, Any] | None = None,
    paid: bool = False,
) -> int:
    """A broadcast whose occurrence is planned to (participant, channel, locale) recipients,
    all ready now; its id."""
    now = clock()
    async with sessions() as session, session.begin():
        broadcast = Broadcast(
            consultation_id=consultation.id,
            texts=texts or {"fr": "Bonjour !", "en": "Hello!"},
            button=button,
            template=template,
            paid=paid,
            first_at=now,
            created_by="ana@example.org",
            created_at=now,
            updated_at=now,
        )
        session.add(broadcast)
        await session.flush()
        assert broadcast.id is not None
        run = BroadcastRun(broadcast_id=broadcast.id, fire_at=now, planned_at=now)
        session.add(run)
        await session.flush()
        assert run.id is not None
        for participant, channel, locale in recipients:
            session.add(
                BroadcastMessage(
                    run_id=run.id,
                    broadcast_id=broadcast.id,
                    consultation_id=consultation.id,
                    recipient=f"p:{participant}",
                    participant_id=participant,
                    channel=channel,
                    locale=locale,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
        run.recipients = len(recipients)
        return broadcast.id


async def states(sessions: Any, broadcast_id: int) -> list[tuple[str, str | None]]:
    """The (state, problem) of a broadcast's messages, in their order."""
    async with sessions() as session:
        rows = await session.exec(
            select(BroadcastMessage.state, BroadcastMessage.problem)
            .where(BroadcastMessage.broadcast_id == broadcast_id)
            .order_by(col(BroadcastMessage.id))
        )
        return [(state, problem) for state, problem in rows]


class VirtualTime:
    """Seconds that pass only when the code under test waits: `sleep` moves `now` to the
    end of the wait (concurrent waits overlap, as real ones do). `waits` records them."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        until = self.now + seconds
        await _after_the_tasks_ready_now()  # theirs start at the same `now`: waits overlap
        self.now = max(self.now, until)


async def _after_the_tasks_ready_now() -> None:
    """Return once every task already scheduled in this loop has taken its step: the event a
    virtual wait ends on (no real time passes)."""
    loop = asyncio.get_running_loop()
    turn: asyncio.Future[None] = loop.create_future()
    loop.call_soon(turn.set_result, None)  # queued behind the tasks ready now
    await turn

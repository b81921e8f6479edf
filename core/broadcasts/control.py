"""An organiser pauses, resumes or cancels a broadcast; each change is audited.

scheduled/done -> paused -> scheduled/done (resume: scheduled if an occurrence is still to
come); anything but cancelled -> cancelled. While a broadcast is paused or cancelled nothing of
it is claimed (`sendable_broadcasts`, in the delivery workers' claim) and nothing planned;
cancelling also fails its messages still waiting to go out, so that they are never sent. A
message a worker has claimed already is on its way: a change cannot call it back.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col
from sqlmodel import select as select_rows
from sqlmodel.ext.asyncio.session import AsyncSession

from core.broadcasts.planning import as_actor
from core.broadcasts.stats import CANCELLED
from core.models import Broadcast, BroadcastMessage, BroadcastState, NoticeState
from core.moderation.actors import Actor
from core.moderation.history import record_action

# Every msgid a BroadcastStateError can carry (tests check both catalogues hold them).
MSGIDS = (
    "broadcast.error.unknown",
    "broadcast.error.paused_already",
    "broadcast.error.not_paused",
    "broadcast.error.cancelled_already",
)
_HELD = (BroadcastState.PAUSED, BroadcastState.CANCELLED)


class BroadcastStateError(ValueError):
    """A change the broadcast's state does not allow (resume one that is not paused, cancel
    one cancelled already), or no such broadcast. `msgid` says which, `values` with what."""

    def __init__(self, msgid: str, **values: object) -> None:
        super().__init__(msgid)
        self.msgid = msgid
        self.values = values


def sendable_broadcasts() -> ColumnElement[bool]:
    """The condition on `BroadcastMessage` that its broadcast is neither paused nor
    cancelled: the delivery workers add it to their claim. Uncorrelated (the held broadcasts
    are few), so it reads the same inside the claim's UPDATE ... WHERE id IN (SELECT ...)."""
    held = select(Broadcast.id).where(col(Broadcast.state).in_(_HELD))  # type: ignore[call-overload]
    return col(BroadcastMessage.broadcast_id).not_in(held)


async def _locked(session: AsyncSession, broadcast_id: int) -> Broadcast:
    found = await session.exec(
        select_rows(Broadcast)
        .where(col(Broadcast.id) == broadcast_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    broadcast = found.first()
    if broadcast is None:
        raise BroadcastStateError("broadcast.error.unknown", id=broadcast_id)
    return broadcast


async def _audit(
    session: AsyncSession, broadcast: Broadcast, action: str, actor: Actor | str, now: datetime
) -> None:
    await record_action(
        session,
        as_actor(actor),
        action,
        f"broadcast:{broadcast.id}",
        broadcast.consultation_id,
        now,
        {"kind": broadcast.kind},
    )


async def pause(
    session: AsyncSession, broadcast_id: int, actor: Actor | str, now: datetime
) -> Broadcast:
    """Hold a broadcast: none of its messages is sent, no occurrence planned, until resumed.
    BroadcastStateError if it is paused already or cancelled."""
    broadcast = await _locked(session, broadcast_id)
    if broadcast.state == BroadcastState.PAUSED:
        raise BroadcastStateError("broadcast.error.paused_already", id=broadcast_id)
    if broadcast.state == BroadcastState.CANCELLED:
        raise BroadcastStateError("broadcast.error.cancelled_already", id=broadcast_id)
    broadcast.state, broadcast.updated_at = BroadcastState.PAUSED, now
    session.add(broadcast)
    await _audit(session, broadcast, "broadcast-pause", actor, now)
    await session.flush()
    return broadcast


async def resume(
    session: AsyncSession, broadcast_id: int, actor: Actor | str, now: datetime
) -> Broadcast:
    """Let a paused broadcast go on: its held messages are sent, and an occurrence missed
    meanwhile is planned once (`plan_due`). BroadcastStateError if it is not paused."""
    broadcast = await _locked(session, broadcast_id)
    if broadcast.state == BroadcastState.CANCELLED:
        raise BroadcastStateError("broadcast.error.cancelled_already", id=broadcast_id)
    if broadcast.state != BroadcastState.PAUSED:
        raise BroadcastStateError("broadcast.error.not_paused", id=broadcast_id)
    ahead = broadcast.next_run_at is not None
    broadcast.state = BroadcastState.SCHEDULED if ahead else BroadcastState.DONE
    broadcast.updated_at = now
    session.add(broadcast)
    await _audit(session, broadcast, "broadcast-resume", actor, now)
    await session.flush()
    return broadcast


async def cancel(
    session: AsyncSession, broadcast_id: int, actor: Actor | str, now: datetime
) -> Broadcast:
    """Stop a broadcast for good: no occurrence any more, and its messages not yet claimed
    (queued, waiting for WhatsApp's window) fail with the problem "cancelled".
    BroadcastStateError if it is cancelled already."""
    broadcast = await _locked(session, broadcast_id)
    if broadcast.state == BroadcastState.CANCELLED:
        raise BroadcastStateError("broadcast.error.cancelled_already", id=broadcast_id)
    broadcast.state, broadcast.next_run_at = BroadcastState.CANCELLED, None
    broadcast.updated_at = now
    session.add(broadcast)
    withdrawn = await session.exec(
        update(BroadcastMessage)
        .where(
            col(BroadcastMessage.broadcast_id) == broadcast_id,
            col(BroadcastMessage.state).in_((NoticeState.QUEUED, NoticeState.WAITING)),
        )
        # An address kept for someone the bot has not met goes with the message: nothing
        # will be sent to it now.
        .values(state=NoticeState.FAILED, problem=CANCELLED, address=None)
    )
    await record_action(
        session,
        as_actor(actor),
        "broadcast-cancel",
        f"broadcast:{broadcast.id}",
        broadcast.consultation_id,
        now,
        {"kind": broadcast.kind, "withdrawn": int(withdrawn.rowcount)},
    )
    await session.flush()
    return broadcast

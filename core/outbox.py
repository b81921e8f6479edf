"""Replies owed to participants: recorded with the event, settled once sent, taken over from a
worker that died in between.

A webhook answers the platform once the event is committed, and the replies go out after that.
A process killed between the two would leave the participant without their next question, and
the platform, which got its answer, never delivers the event again. So the event's transaction
also writes an `OwedReply` naming the worker that will send; the worker deletes it once the
replies went out (in batches: `Ledger.settle`). Every worker beats in `DeliveryWorker`; the rows
of a worker whose beat is older than `stale_after` are taken over by a live one, which asks the
participant their current question again (their position is in the database).

At most one live worker holds a row: a take-over is an UPDATE conditioned on the old owner, so
of two workers taking over the same row only one gets it. A worker that was only slow (beat
missed for `stale_after`) may then send a question twice; that is the price of never leaving a
participant waiting.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

_OWED = SQLModel.metadata.tables["owedreply"]
_WORKERS = SQLModel.metadata.tables["deliveryworker"]

_RECORD = insert(_OWED)
_SETTLE = delete(_OWED).where(_OWED.c.id.in_(bindparam("b_ids", expanding=True)))
_BEAT = update(_WORKERS).where(_WORKERS.c.id == bindparam("b_worker"))
_ALIVE = select(_WORKERS.c.id).where(_WORKERS.c.beat_at >= bindparam("b_alive_since"))
_OWNER_ALIVE = _ALIVE.where(_WORKERS.c.id == bindparam("b_owner"))
_ON_CHANNELS = _OWED.c.channel.in_(bindparam("b_channels", expanding=True))
_DEAD_OWNERS = (
    select(_OWED.c.owner)
    .where(_OWED.c.owner != bindparam("b_worker"), _OWED.c.owner.not_in(_ALIVE), _ON_CHANNELS)
    .distinct()
    .order_by(_OWED.c.owner)  # every worker locks dead owners' rows in one order: no deadlock
)
_FIELDS = (_OWED.c.id, _OWED.c.channel, _OWED.c.participant_id, _OWED.c.locale, _OWED.c.turn)
# Rows of this worker that nothing is sending any more (a resend that failed, a settle whose
# transaction was lost): asked again like a dead worker's.
_OWN_LEFT = select(*_FIELDS).where(
    _OWED.c.owner == bindparam("b_worker"),
    _OWED.c.created_at < bindparam("b_before"),
    _OWED.c.id.not_in(bindparam("b_in_flight", expanding=True)),
    _ON_CHANNELS,
)
_TAKE_OVER = (
    update(_OWED)
    .where(_OWED.c.owner == bindparam("b_old"), _ON_CHANNELS)
    .values(owner=bindparam("b_worker"))
    .returning(*_FIELDS)
)
_BY_EVENT = select(*_FIELDS, _OWED.c.owner).where(
    _OWED.c.channel == bindparam("b_channel"), _OWED.c.event_key == bindparam("b_key")
)
_FORGOTTEN_AFTER = timedelta(days=1)
_SETTLED_AT_ONCE = 500  # ids per DELETE: SQLite caps a statement's parameters
_FORGET_WORKERS = delete(_WORKERS).where(
    _WORKERS.c.beat_at < bindparam("b_before"), _WORKERS.c.id.not_in(select(_OWED.c.owner))
)
_TAKE_ONE = (
    update(_OWED)
    .where(_OWED.c.id == bindparam("b_id"), _OWED.c.owner == bindparam("b_old"))
    .values(owner=bindparam("b_worker"))
)


@dataclass(frozen=True)
class Owed:
    """A reply owed to a participant on a channel (the row's id settles it)."""

    id: int
    channel: str
    participant_id: int
    locale: str | None = None
    # The participant's turn (core.conversation.turn) the reply answered: if they have had
    # another since, that one's replies carry them forward and this one is not sent again.
    turn: int | None = None


class Ledger:
    """One process's side of the owed replies: its worker id, the rows it is sending (in
    flight), and those it has sent, to delete at the next `settle`."""

    def __init__(self, *, worker: str | None = None, stale_after: float = 10.0) -> None:
        self.worker = worker or uuid.uuid4().hex
        self.stale_after = timedelta(seconds=stale_after)
        self._sent: list[int] = []
        self._settling: list[int] = []
        self._in_flight: set[int] = set()

    async def record(
        self,
        session: AsyncSession,
        channel: str,
        key: str,
        participant_id: int,
        locale: str,
        turn: int,
        now: datetime,
    ) -> int:
        """Write, in the event's transaction, that this worker owes the participant the replies
        of their `turn` (in `locale`)."""
        connection = await session.connection()
        values = {
            "channel": channel,
            "event_key": key,
            "participant_id": participant_id,
            "locale": locale,
            "turn": turn,
            "owner": self.worker,
            "created_at": now,
        }
        key_of_row = (await connection.execute(_RECORD, values)).inserted_primary_key
        assert key_of_row is not None
        owed = int(key_of_row[0])
        self._in_flight.add(owed)
        return owed

    def sent(self, owed_id: int) -> None:
        """The replies of `owed_id` went out (or the platform refused them for good)."""
        self._in_flight.discard(owed_id)
        self._sent.append(owed_id)

    def release(self, owed_id: int) -> None:
        """Nothing is sending `owed_id` any more, though it was not sent (a resend that failed):
        a later `take_over_stranded` of this worker takes it up again."""
        self._in_flight.discard(owed_id)

    @property
    def unsettled(self) -> int:
        """How many sent rows are still to delete."""
        return len(self._sent)

    async def settle(self, session: AsyncSession, now: datetime) -> None:
        """Beat, and delete the rows sent since the last call, in one transaction of the caller;
        if it does not commit, `settle_failed` keeps them for the next call."""
        connection = await session.connection()
        beat = await connection.execute(_BEAT.values(beat_at=now), {"b_worker": self.worker})
        if beat.rowcount == 0:
            await connection.execute(insert(_WORKERS), {"id": self.worker, "beat_at": now})
        self._settling, self._sent = self._settling + self._sent, []
        for start in range(0, len(self._settling), _SETTLED_AT_ONCE):
            chunk = self._settling[start : start + _SETTLED_AT_ONCE]
            await connection.execute(_SETTLE, {"b_ids": chunk})

    def _sent_ids(self) -> set[int]:
        """Rows sent whose deletion is not committed yet."""
        return {*self._sent, *self._settling}

    def settled(self) -> None:
        """The transaction of `settle` committed."""
        self._settling = []

    def settle_failed(self) -> None:
        """The transaction of `settle` did not commit: its rows are deleted next time."""
        self._sent, self._settling = self._settling + self._sent, []

    async def take_over_stranded(
        self, session: AsyncSession, now: datetime, channels: Collection[str]
    ) -> list[Owed]:
        """The rows on `channels` of workers that stopped beating, now this worker's to send."""
        connection = await session.connection()
        mine = {"b_worker": self.worker, "b_channels": list(channels)}
        alive_since = {**mine, "b_alive_since": now - self.stale_after}
        dead = (await connection.execute(_DEAD_OWNERS, alive_since)).scalars().all()
        left = {**mine, "b_before": now - self.stale_after, "b_in_flight": list(self._in_flight)}
        rows = list((await connection.execute(_OWN_LEFT, left)).all())  # before taking others'
        for old in dead:
            rows += (await connection.execute(_TAKE_OVER, {**mine, "b_old": old})).all()
        # A worker silent for a day, that owes nothing, is forgotten.
        await connection.execute(_FORGET_WORKERS, {"b_before": now - _FORGOTTEN_AFTER})
        taken = [_owed(row) for row in rows]
        self._in_flight.update(owed.id for owed in taken)
        return taken

    async def take_over_event(
        self, session: AsyncSession, channel: str, key: str, now: datetime
    ) -> Owed | None:
        """The row of an event delivered again, if its replies were not sent and the worker
        that owed them is dead; None if they were sent or a live worker is sending them."""
        connection = await session.connection()
        found = (await connection.execute(_BY_EVENT, {"b_channel": channel, "b_key": key})).first()
        if found is None or found.id in self._in_flight or found.id in self._sent_ids():
            return None
        if found.owner == self.worker:  # ours, and nothing sends it: a resend that failed
            self._in_flight.add(found.id)
            return _owed(found)
        alive = {"b_alive_since": now - self.stale_after, "b_owner": found.owner}
        if (await connection.execute(_OWNER_ALIVE, alive)).first() is not None:
            return None
        taken = await connection.execute(
            _TAKE_ONE, {"b_id": found.id, "b_old": found.owner, "b_worker": self.worker}
        )
        if taken.rowcount != 1:
            return None
        self._in_flight.add(found.id)
        return _owed(found)


def _owed(row: Any) -> Owed:  # a row holding _FIELDS
    return Owed(row.id, row.channel, row.participant_id, row.locale, row.turn)

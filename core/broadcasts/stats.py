"""What became of a broadcast, in counts: its messages by state (and by channel), the
recipients skipped and why, and how many came back within a day of their message.

Every figure is a GROUP BY in the database: a broadcast to two million people is counted
without reading its rows. Nothing here names a recipient.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Interval, and_, case, exists, func, literal, or_, select
from sqlmodel import col
from sqlmodel import select as select_rows
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Broadcast, BroadcastMessage, BroadcastRun, NoticeState, Proposal, Vote

CAME_BACK_WITHIN = timedelta(hours=24)
BLOCKED = "unreachable"  # `problem` of a message whose recipient blocked the bot or left
CANCELLED = "cancelled"  # `problem` of a message whose broadcast was cancelled
# The figures of a broadcast's messages; `failed` excludes the blocked and the cancelled, so
# that the figures add up to the messages written.
FIGURES = ("queued", "claimed", "sent", "failed", "blocked", "unknown", "waiting", "cancelled")


@dataclass(frozen=True)
class BroadcastStats:
    """A broadcast's figures over all its occurrences; `by_channel` has the same figures
    (and `came_back`) per channel."""

    runs: int
    queued: int
    claimed: int
    sent: int
    failed: int
    blocked: int
    unknown: int
    waiting: int
    cancelled: int
    skipped: dict[str, int]
    came_back: int
    by_channel: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(getattr(self, name) for name in FIGURES)


@dataclass(frozen=True)
class BroadcastView:
    """A broadcast as an organiser lists it: what, to whom, when, and its messages by state."""

    id: int
    consultation_id: int
    kind: str
    state: str
    audience: str
    texts: dict[str, str]
    button: bool
    paid: bool
    first_at: datetime
    every: str | None
    next_run_at: datetime | None
    created_by: str
    created_at: datetime
    counts: dict[str, int]


def figure_of(state: str, problem: str | None) -> str:
    """Which figure a message in `state` with `problem` counts under."""
    if state == NoticeState.FAILED and problem == BLOCKED:
        return "blocked"
    if state == NoticeState.FAILED and problem == CANCELLED:
        return "cancelled"
    return state


def _figure() -> Any:
    """`figure_of` in SQL, to group by."""
    failed = col(BroadcastMessage.state) == NoticeState.FAILED
    return case(
        (and_(failed, col(BroadcastMessage.problem) == BLOCKED), literal("blocked")),
        (and_(failed, col(BroadcastMessage.problem) == CANCELLED), literal("cancelled")),
        else_=col(BroadcastMessage.state),
    )


def _day_after(moment: Any, dialect: str) -> Any:
    """`moment` + 24 h in SQL. SQLite keeps times as text ("YYYY-MM-DD HH:MM:SS.ffffff"),
    compared as text: its date function gives milliseconds, padded to the stored width."""
    if dialect == "sqlite":
        hours = f"+{int(CAME_BACK_WITHIN.total_seconds() // 3600)} hours"
        return func.strftime("%Y-%m-%d %H:%M:%f", moment, hours).concat("000")
    return moment + literal(CAME_BACK_WITHIN, Interval())


def _came_back(dialect: str) -> Any:
    """A sent message whose participant voted or proposed within 24 h of it."""
    sent_at = col(BroadcastMessage.sent_at)
    until = _day_after(sent_at, dialect)
    voted = exists().where(
        col(Vote.participant_id) == BroadcastMessage.participant_id,
        col(Vote.created_at) >= sent_at,
        col(Vote.created_at) < until,
    )
    proposed = exists().where(
        col(Proposal.author_id) == BroadcastMessage.participant_id,
        col(Proposal.created_at) >= sent_at,
        col(Proposal.created_at) < until,
    )
    return and_(
        col(BroadcastMessage.state) == NoticeState.SENT,
        col(BroadcastMessage.participant_id).is_not(None),
        or_(voted, proposed),
    )


async def broadcast_stats(
    session: AsyncSession, broadcast_id: int, now: datetime
) -> BroadcastStats:
    """The figures of one broadcast (zeros for one without messages). `now` is when they are
    read: a recipient whose day is not over may still come back."""
    figure = _figure()
    rows = await session.exec(
        select(BroadcastMessage.channel, figure, func.count())  # type: ignore[call-overload]
        .where(col(BroadcastMessage.broadcast_id) == broadcast_id)
        .group_by(col(BroadcastMessage.channel), figure)
    )
    totals = dict.fromkeys(FIGURES, 0)
    by_channel: dict[str, dict[str, int]] = {}
    for channel, name, count in rows.all():
        per_channel = by_channel.setdefault(channel, dict.fromkeys((*FIGURES, "came_back"), 0))
        per_channel[name] = per_channel.get(name, 0) + int(count)
        totals[name] = totals.get(name, 0) + int(count)
    dialect = session.get_bind().dialect.name
    came_back = await session.exec(
        select(  # type: ignore[call-overload]
            BroadcastMessage.channel,
            func.count(func.distinct(BroadcastMessage.participant_id)),
        )
        .where(col(BroadcastMessage.broadcast_id) == broadcast_id, _came_back(dialect))
        .group_by(col(BroadcastMessage.channel))
    )
    returned = 0
    for channel, count in came_back.all():
        by_channel.setdefault(channel, dict.fromkeys((*FIGURES, "came_back"), 0))
        by_channel[channel]["came_back"] = int(count)
        returned += int(count)
    runs = await session.exec(
        select(BroadcastRun.skipped).where(col(BroadcastRun.broadcast_id) == broadcast_id)  # type: ignore[call-overload]
    )
    skipped: dict[str, int] = {}
    run_count = 0
    for (reasons,) in runs.all():  # one row per occurrence: few
        run_count += 1
        for reason, count in (reasons or {}).items():
            skipped[reason] = skipped.get(reason, 0) + int(count)
    return BroadcastStats(
        runs=run_count,
        queued=totals["queued"],
        claimed=totals["claimed"],
        sent=totals["sent"],
        failed=totals["failed"],
        blocked=totals["blocked"],
        unknown=totals["unknown"],
        waiting=totals["waiting"],
        cancelled=totals["cancelled"],
        skipped=skipped,
        came_back=returned,
        by_channel=by_channel,
    )


async def list_broadcasts(session: AsyncSession, consultation_id: int) -> list[BroadcastView]:
    """A consultation's broadcasts, newest first, each with its messages by figure."""
    found = await session.exec(
        select_rows(Broadcast)
        .where(col(Broadcast.consultation_id) == consultation_id)
        .order_by(col(Broadcast.id).desc())
    )
    broadcasts = list(found.all())
    figure = _figure()
    rows = await session.exec(
        select(BroadcastMessage.broadcast_id, figure, func.count())  # type: ignore[call-overload]
        .where(col(BroadcastMessage.broadcast_id).in_([b.id for b in broadcasts]))
        .group_by(col(BroadcastMessage.broadcast_id), figure)
    )
    counts: dict[int, dict[str, int]] = {}
    for broadcast_id, name, count in rows.all():
        counts.setdefault(broadcast_id, {})[name] = int(count)
    return [
        BroadcastView(
            id=broadcast.id or 0,
            consultation_id=broadcast.consultation_id,
            kind=broadcast.kind,
            state=broadcast.state,
            audience=broadcast.audience,
            texts=dict(broadcast.texts),
            button=broadcast.button,
            paid=broadcast.paid,
            first_at=broadcast.first_at,
            every=broadcast.every,
            next_run_at=broadcast.next_run_at,
            created_by=broadcast.created_by,
            created_at=broadcast.created_at,
            counts={name: counts.get(broadcast.id or 0, {}).get(name, 0) for name in FIGURES},
        )
        for broadcast in broadcasts
    ]

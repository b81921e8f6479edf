"""The broadcasts' scheduler: cron read as crontab reads it, one lease holder among processes,
a take-over when the holder dies, and schedules that survive a restart and fire once."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bots.bootstrap import Runtime
from bots.scheduler import (
    Job,
    LeasedScheduler,
    holds_lease,
    next_fire,
    scheduler_for,
    take_lease,
)
from bots.settings import Settings
from core.broadcasts.messages import parse_message
from core.broadcasts.planning import create_broadcast
from core.flow import Flow
from core.identity import enrol
from core.models import Broadcast, BroadcastMessage, BroadcastRun, Consultation, Participation
from tests.conftest import SECRET, Loader
from tests.support import Clock

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0  # a bound on a hang, never a pace: every wait below ends on an event

# -- cron ------------------------------------------------------------------------------------


def test_weekdays_are_numbered_as_in_crontab() -> None:
    sunday = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    monday_10_paris = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # 10:00 in Paris, winter
    assert next_fire("0 10 * * 1", sunday, "Europe/Paris") == monday_10_paris
    assert next_fire("0 10 * * mon", sunday, "Europe/Paris") == monday_10_paris
    assert next_fire("0 10 * * 1-5", sunday, "Europe/Paris") == monday_10_paris
    for weekend in ("0 10 * * 0", "0 10 * * 7", "0 10 * * 6-7"):
        fired = next_fire(weekend, monday_10_paris, "Europe/Paris")
        assert fired is not None and fired.astimezone(UTC).weekday() in (5, 6)


def test_next_fire_is_strictly_after_and_follows_the_zone_s_clock() -> None:
    monday_10 = datetime(2026, 3, 23, 9, 0, tzinfo=UTC)  # 10:00 in Paris (UTC+1)
    following = next_fire("0 10 * * 1", monday_10, "Europe/Paris")
    # the clocks went forward on 29 March: 10:00 in Paris is 08:00 UTC from then on
    assert following == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)


def test_a_cron_that_never_fires_or_does_not_parse() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert next_fire("0 0 31 2 *", now, "UTC") is None  # the 31st of February
    for bad in ("every monday", "61 * * * *", "* * *", "0 10 * * 8"):
        with pytest.raises(ValueError):
            next_fire(bad, now, "UTC")
    with pytest.raises(ValueError):
        next_fire("0 10 * * *", now, "Mars/Olympus")


# -- the lease -------------------------------------------------------------------------------


async def test_the_lease_is_taken_once_and_taken_over_when_its_holder_dies(
    sessions: async_sessionmaker[AsyncSession], clock: Clock
) -> None:
    async def take(holder: str) -> bool:
        async with sessions() as session, session.begin():
            return await take_lease(session, holder, clock(), 30)

    assert await take("a")
    assert not await take("b")
    clock.advance(seconds=20)
    assert await take("a")  # renewed: until 50 s from the start
    clock.advance(seconds=29)
    assert not await take("b")
    clock.advance(seconds=2)  # "a" died: its lease expired a second ago
    assert await take("b")
    assert not await take("a")  # "a" comes back: too late
    async with sessions() as session:
        assert await holds_lease(session, "b", clock())
        assert not await holds_lease(session, "a", clock())


async def test_only_the_holder_runs_the_jobs_and_a_loser_stops(
    sessions: async_sessionmaker[AsyncSession], clock: Clock
) -> None:
    ran: list[str] = []

    async def note(session: AsyncSession, now: datetime) -> int:
        ran.append(str(now))
        return 1

    def scheduler(holder: str) -> LeasedScheduler:
        jobs = [Job("note", note)]
        return LeasedScheduler(sessions, jobs, clock=clock, lease_seconds=30, holder=holder)

    first, second = scheduler("first"), scheduler("second")
    await first.keep_lease()
    await second.keep_lease()
    assert (first.holding, second.holding) == (True, False)
    assert await second.run_job(second.jobs[0]) == 0
    assert await first.run_job(first.jobs[0]) == 1
    clock.advance(seconds=31)  # "first" is paused past its lease (a long GC, a frozen VM)
    await second.keep_lease()
    assert second.holding
    assert await first.run_job(first.jobs[0]) == 0  # its transaction sees the lease gone
    assert not first.holding
    await first.keep_lease()
    assert not first.holding
    assert len(ran) == 1
    await second.stop()  # gives the lease up: "first" takes it at its next try
    await first.keep_lease()
    assert first.holding


# -- planning survives restarts --------------------------------------------------------------


async def _participants(
    sessions: async_sessionmaker[AsyncSession], consultation: Consultation, now: datetime, n: int
) -> None:
    async with sessions() as session, session.begin():
        for index in range(n):
            enrolment = await enrol(
                session, SECRET, "telegram", f"user-{index}", f"{1000 + index}", now
            )
            participant = enrolment.participant
            participant.locale = "en" if index % 2 else "fr"
            session.add(participant)
            assert participant.id is not None and consultation.id is not None
            session.add(
                Participation(
                    participant_id=participant.id,
                    consultation_id=consultation.id,
                    consented_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )


async def _weekly(
    sessions: async_sessionmaker[AsyncSession],
    consultation: Consultation,
    at: datetime,
    now: datetime,
) -> int:
    content = parse_message({"text": {"fr": "Votez !", "en": "Vote!"}}, consultation)
    async with sessions() as session, session.begin():
        created = await create_broadcast(
            session, consultation, content, "all", at, "0 10 * * 1", next_fire, "cli:test", now
        )
    assert created.id is not None
    return created.id


async def _runs(sessions: async_sessionmaker[AsyncSession], broadcast_id: int) -> list[datetime]:
    async with sessions() as session:
        found = await session.exec(
            select(BroadcastRun.fire_at)
            .where(col(BroadcastRun.broadcast_id) == broadcast_id)
            .order_by(col(BroadcastRun.fire_at))
        )
        return list(found.all())


async def _messages(sessions: async_sessionmaker[AsyncSession], broadcast_id: int) -> int:
    async with sessions() as session:
        found = await session.exec(
            select(func.count()).where(col(BroadcastMessage.broadcast_id) == broadcast_id)
        )
        return int(found.one())


@pytest.fixture
def rt(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> Runtime:
    return Runtime(engine, sessions, Flow(sessions, SECRET, clock=clock, rng=random.Random(1)))


async def _plan_once(rt: Runtime, holder: str) -> int:
    """Start a scheduler as `consult serve` does, wait for its first planning round, stop it."""
    rounds: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    settings = Settings(scheduler_every_seconds=3600, scheduler_lease_seconds=30)
    scheduler = scheduler_for(
        rt, settings, holder=holder, on_round=lambda job, n: rounds.put_nowait((job, n))
    )
    await scheduler.start()
    try:
        while True:
            job, planned = await asyncio.wait_for(rounds.get(), WAIT)
            if job == "broadcasts-plan":
                return planned
    finally:
        await scheduler.stop()


async def test_a_restart_loses_nothing_and_fires_each_occurrence_once(
    rt: Runtime, clock: Clock, load_consultation: Loader
) -> None:
    consultation = await load_consultation()
    await _participants(rt.sessions, consultation, clock(), 4)
    first = clock() + timedelta(hours=1)
    broadcast_id = await _weekly(rt.sessions, consultation, first, clock())

    assert await _plan_once(rt, "early") == 0  # not due yet
    clock.now = first + timedelta(minutes=5)  # the server was down at the time: due now
    assert await _plan_once(rt, "after-restart") == 1
    assert await _runs(rt.sessions, broadcast_id) == [first]
    assert await _messages(rt.sessions, broadcast_id) == 4
    assert await _plan_once(rt, "another-restart") == 0  # the same occurrence: not again

    async with rt.sessions() as session:
        stored = await session.get(Broadcast, broadcast_id)
    assert stored is not None and stored.next_run_at is not None
    clock.now = stored.next_run_at + timedelta(seconds=1)
    assert await _plan_once(rt, "a-week-later") == 1
    assert await _runs(rt.sessions, broadcast_id) == [first, stored.next_run_at]
    assert await _messages(rt.sessions, broadcast_id) == 8


# -- two processes on PostgreSQL -------------------------------------------------------------


class Process:
    """`python -m bots.scheduler` in a subprocess, its log lines read as they come."""

    def __init__(self, process: asyncio.subprocess.Process, name: str) -> None:
        self.process = process
        self.name = name
        self.lines: list[str] = []
        self._seen = asyncio.Condition()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            async with self._seen:
                self.lines.append(raw.decode(errors="replace").rstrip())
                self._seen.notify_all()

    async def logged(self, text: str, after: int = 0) -> int:
        """Wait until a line from index `after` on contains `text`; that line's index."""

        async def found() -> int:
            async with self._seen:
                while True:
                    for index in range(after, len(self.lines)):
                        if text in self.lines[index]:
                            return index
                    if self._reader.done():
                        raise AssertionError(f"{self.name} exited: {self.lines[-20:]}")
                    await self._seen.wait()

        return await asyncio.wait_for(found(), WAIT)

    async def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        await self._reader

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            await self.process.wait()
        await self._reader


@pytest.fixture
async def processes(database_url: str, tmp_path: Path) -> AsyncIterator[Any]:
    started: list[Process] = []

    async def start(name: str) -> Process:
        env = {
            **os.environ,
            "CONSULT_DATABASE_URL": database_url,
            "CONSULT_SECRET_KEY": SECRET.decode(),
            "CONSULT_DATA_DIR": str(tmp_path),
            "CONSULT_SCHEDULER_EVERY_SECONDS": "0.2",
            "CONSULT_SCHEDULER_LEASE_SECONDS": "3",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bots.scheduler",
            "--holder",
            name,
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        started.append(Process(process, name))
        return started[-1]

    yield start
    for process in started:
        await process.stop()


async def test_two_processes_fire_each_occurrence_once_and_one_takes_over(
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    load_consultation: Loader,
    processes: Any,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("several scheduler processes share one PostgreSQL")
    now = datetime.now(UTC)  # the processes read the real clock
    consultation = await load_consultation()
    await _participants(sessions, consultation, now, 5)
    first_id = await _weekly(sessions, consultation, now, now)

    a, b = await processes("a"), await processes("b")
    await a.logged("scheduler started")
    await b.logged("scheduler started")
    holders = [p for p in (a, b) if any("runs the scheduler" in line for line in p.lines)]
    assert len(holders) == 1  # the first try of each was decided before it started
    holder = holders[0]
    other = b if holder is a else a
    await holder.logged("broadcasts-plan planned 1")
    assert len(await _runs(sessions, first_id)) == 1
    assert await _messages(sessions, first_id) == 5

    mark = len(other.lines)
    await holder.kill()
    await other.logged("runs the scheduler", after=mark)  # once the dead one's lease expired
    second_id = await _weekly(sessions, consultation, datetime.now(UTC), datetime.now(UTC))
    await other.logged("broadcasts-plan planned 1", after=mark)
    assert len(await _runs(sessions, first_id)) == 1
    assert len(await _runs(sessions, second_id)) == 1
    assert await _messages(sessions, first_id) == 5
    assert await _messages(sessions, second_id) == 5


async def test_an_occurrence_for_a_telegram_channel_post_gets_its_one_recipient(
    rt: Runtime, clock: Clock, load_consultation: Loader
) -> None:
    """People the bot has not met: the scheduler asks for them once the occurrence is planned
    (a Telegram channel's post is one message, to the channel)."""
    consultation = await load_consultation()
    content = parse_message({"text": {"fr": "Participez !"}, "button": True}, consultation)
    async with rt.sessions() as session, session.begin():
        created = await create_broadcast(
            session,
            consultation,
            content,
            "telegram:post:@elders_news",
            clock(),
            None,
            next_fire,
            "cli:test",
            clock(),
        )
    assert created.id is not None
    assert await _plan_once(rt, "outside") == 1
    async with rt.sessions() as session:
        found = await session.exec(
            select(BroadcastMessage.channel).where(col(BroadcastMessage.broadcast_id) == created.id)
        )
        assert found.all() == ["telegram"]
    assert await _runs(rt.sessions, created.id) == [clock()]

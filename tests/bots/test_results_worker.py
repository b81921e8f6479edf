"""The scheduler's results job computes in a child process (`bots.results_worker`), on both
databases: the child stores the snapshots and exits; a failing one is logged and the next
round runs; one child at a time, ended when the lease is lost; the server's event loop answers
while a child runs; and a child whose parent goes exits with nothing half-written.

Every wait ends on an event: a round's callback, a child's end, or a gate (a FIFO the child's
command reads before it runs the real worker) that the test opens."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bench.processes import serving
from bots.bootstrap import Runtime
from bots.results_worker import PARENT_GONE, SOME_FAILED, ResultsProcess
from bots.scheduler import LEASE, Job, LeasedScheduler, scheduler_for, take_lease
from bots.server import create_app
from bots.settings import Settings
from core.definitions import parse_consultation, upsert_consultation
from core.flow import Flow
from core.models import Consultation, ResultSnapshot, SchedulerLease
from core.results.recompute import DASHBOARD
from core.storage import create_engine, migrate, session_factory
from tests.bots.console.dashboard_population import crowd
from tests.conftest import SECRET, Loader, consultation_data
from tests.support import Clock

Sessions = async_sessionmaker[AsyncSession]
WAIT = 60.0  # a bound on a hang, never a pace
JOB = "results-recompute"
WORKER = (sys.executable, "-m", "bots.results_worker")
SETTINGS = Settings(scheduler_every_seconds=3600, results_every_minutes=5)


class Child:
    """A `ResultsProcess` on the test's database whose ends and the scheduler's rounds are
    queued, to be awaited."""

    def __init__(self, rt: Runtime, command: tuple[str, ...] = WORKER) -> None:
        self.ends: asyncio.Queue[tuple[int, int | None]] = asyncio.Queue()
        self.rounds: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        url = rt.engine.url.render_as_string(hide_password=False)
        self.process = ResultsProcess(
            url, command=command, on_exit=lambda code, n: self.ends.put_nowait((code, n))
        )
        self.scheduler = scheduler_for(
            rt,
            SETTINGS,
            holder="the-test",
            on_round=lambda job, n: self.rounds.put_nowait((job, n)),
            results=self.process,
        )

    async def handed(self) -> int:
        """How many consultations the next results round handed to a child."""
        while True:
            job, handed = await asyncio.wait_for(self.rounds.get(), WAIT)
            if job == JOB:
                return handed

    async def ended(self) -> tuple[int, int | None]:
        return await asyncio.wait_for(self.ends.get(), WAIT)

    def job(self) -> Job:
        return next(job for job in self.scheduler.jobs if job.id == JOB)


@pytest.fixture
def rt(engine: AsyncEngine, sessions: Sessions, clock: Clock) -> Runtime:
    return Runtime(engine, sessions, Flow(sessions, SECRET, clock=clock, rng=random.Random(1)))


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    """A FIFO: a child started with `gated(gate)` waits until the test writes to it."""
    path = tmp_path / "gate"
    os.mkfifo(path)
    return path


def gated(gate: Path) -> tuple[str, ...]:
    """The real worker's command, behind a read of `gate` (then `exec`: the same process)."""
    return ("sh", "-c", 'read line < "$0" && exec "$@"', str(gate), *WORKER)


async def open_gate(gate: Path) -> None:
    await asyncio.to_thread(gate.write_text, "go\n")


async def stored(sessions: Sessions, consultation: Consultation) -> list[ResultSnapshot]:
    async with sessions() as session:
        found = await session.exec(
            select(ResultSnapshot).where(ResultSnapshot.consultation_id == consultation.id)
        )
        return list(found)


async def test_a_child_stores_the_due_results_and_exits(
    rt: Runtime, clock: Clock, load_consultation: Loader
) -> None:
    consultation = await load_consultation()
    await crowd(rt.sessions, consultation, clock)
    child = Child(rt)
    await child.scheduler.start()
    try:
        assert await child.handed() == 1
        assert await child.ended() == (0, 1)
    finally:
        await child.scheduler.stop()
    (snapshot,) = await stored(rt.sessions, consultation)
    assert snapshot.computed_at == clock()  # the parent's clock, handed to the child
    dashboard = snapshot.payload[DASHBOARD]
    assert dashboard["reports"]["all"]["en"]["participants"] == 24
    assert snapshot.payload["clustered"] == 24


async def test_a_failing_child_is_logged_and_the_next_round_runs(
    rt: Runtime, clock: Clock, load_consultation: Loader, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="consult")
    broken = await load_consultation(slug="broken")
    sound = await load_consultation()
    # A real bad state: a profile question stored without options (written around the
    # loader, which refuses it) makes this consultation's computation raise.
    async with rt.sessions() as session, session.begin():
        await session.exec(
            update(Consultation)
            .where(col(Consultation.id) == broken.id)
            .values(profile_questions=[{"id": "age", "label": {"fr": "Âge"}}])
        )
    child = Child(rt)
    await child.scheduler.start()
    try:
        assert await child.handed() == 2
        assert await child.ended() == (SOME_FAILED, 1)  # the sound one was stored all the same
        assert "computing results failed (child exited with 1)" in caplog.text
        assert "results of consultation" in caplog.text and "could not be computed" in caplog.text
        assert len(await stored(rt.sessions, sound)) == 1
        assert await stored(rt.sessions, broken) == []

        async with rt.sessions() as session, session.begin():
            await session.exec(
                update(Consultation)
                .where(col(Consultation.id) == broken.id)
                .values(profile_questions=sound.profile_questions)
            )
        await child.scheduler.run_job(child.job())  # the next round: only the broken one is due
        assert await child.ended() == (0, 1)
    finally:
        await child.scheduler.stop()
    assert len(await stored(rt.sessions, broken)) == 1


async def test_a_child_that_cannot_open_the_database_is_logged(
    rt: Runtime, load_consultation: Loader, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await load_consultation()
    ends: asyncio.Queue[tuple[int, int | None]] = asyncio.Queue()
    missing = f"sqlite:///{tmp_path / 'no-such-directory' / 'consult.sqlite3'}"
    process = ResultsProcess(missing, on_exit=lambda code, n: ends.put_nowait((code, n)))
    scheduler = scheduler_for(rt, SETTINGS, holder="the-test", results=process)
    await scheduler.keep_lease()
    try:
        assert await scheduler.run_job(next(j for j in scheduler.jobs if j.id == JOB)) == 1
        assert await asyncio.wait_for(ends.get(), WAIT) == (SOME_FAILED, 0)
        assert "computing results failed (child exited with 1)" in caplog.text
        assert "unable to open database file" in caplog.text
        # Not stuck: the next round hands the consultation to a new child.
        assert await scheduler.run_job(next(j for j in scheduler.jobs if j.id == JOB)) == 1
        assert (await asyncio.wait_for(ends.get(), WAIT))[0] == SOME_FAILED
    finally:
        await scheduler.stop()


async def test_one_child_at_a_time_ended_with_the_lease(
    rt: Runtime, clock: Clock, load_consultation: Loader, gate: Path
) -> None:
    consultation = await load_consultation()
    child = Child(rt, gated(gate))
    await child.scheduler.start()
    try:
        assert await child.handed() == 1
        assert child.process.running
        # The next round finds the child at work: it starts no second one.
        clock.advance(minutes=10)
        assert await child.scheduler.run_job(child.job()) == 0
        # Another process takes the lease (ours ran out): our child is ended with it.
        clock.advance(minutes=1)
        async with rt.sessions() as session, session.begin():
            await session.exec(
                update(SchedulerLease)
                .where(col(SchedulerLease.name) == LEASE)
                .values(expires_at=clock())
            )
            assert await take_lease(session, "another-host", clock(), 30)
        await child.scheduler.keep_lease()
        assert not child.scheduler.holding
        code, _ = await child.ended()
        assert code != 0 and not child.process.running
    finally:
        await child.scheduler.stop()
    assert await stored(rt.sessions, consultation) == []


async def test_the_server_answers_while_a_child_computes(
    rt: Runtime,
    clock: Clock,
    load_consultation: Loader,
    gate: Path,
    database_url: str,
    tmp_path: Path,
) -> None:
    consultation = await load_consultation()
    await crowd(rt.sessions, consultation, clock)
    settings = Settings(
        data_dir=tmp_path, database_url=database_url, secret_key="responsive", organiser_token="t"
    )
    # The server's own scheduler and the test's share this event loop; the test's holds the
    # lease (taken first), so the server's stays idle.
    child = Child(rt, gated(gate))
    await child.scheduler.start()
    try:
        async with serving(create_app(settings, channels=[], clock=clock)) as url:
            assert await child.handed() == 1
            assert child.process.running  # at work until the gate opens
            async with httpx.AsyncClient(timeout=WAIT) as client:
                health = await client.get(f"{url}/healthz")
                results = await client.get(
                    f"{url}/api/consultations/elders/results",
                    headers={"Authorization": "Bearer t"},
                )
            assert health.status_code == 200
            assert results.status_code == 404  # no snapshot yet: the child computes it
            assert results.json()["code"] == "results.snapshot_not_yet"
            assert child.process.running
            await open_gate(gate)
            assert await child.ended() == (0, 1)
            async with httpx.AsyncClient(timeout=WAIT) as client:
                results = await client.get(
                    f"{url}/api/consultations/elders/results",
                    headers={"Authorization": "Bearer t"},
                )
            assert results.status_code == 200 and results.json()["participants"] == 24
    finally:
        await child.scheduler.stop()


@asynccontextmanager
async def writes_held(sessions: Sessions) -> AsyncIterator[None]:
    """Hold what a child's snapshot transaction needs: SQLite's write lock, or on PostgreSQL
    the trust table (the child blocks mid-transaction, once it has read the votes)."""
    async with sessions() as session, session.begin():
        if session.get_bind().dialect.name == "postgresql":
            await session.exec(text("LOCK TABLE participanttrust IN ACCESS EXCLUSIVE MODE"))
        yield


async def test_a_child_whose_parent_goes_exits_with_nothing_written(
    rt: Runtime, clock: Clock, load_consultation: Loader
) -> None:
    consultation = await load_consultation()
    await crowd(rt.sessions, consultation, clock)
    assert consultation.id is not None
    url = rt.engine.url.render_as_string(hide_password=False)
    async with writes_held(rt.sessions):
        child = await asyncio.create_subprocess_exec(
            *WORKER,
            "--now",
            clock().isoformat(),
            str(consultation.id),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            env=os.environ | {"CONSULT_DATABASE_URL": url},
        )
        assert child.stdin is not None
        child.stdin.close()  # what the parent's death does to the pipe
        assert await asyncio.wait_for(child.wait(), WAIT) == PARENT_GONE
    assert await stored(rt.sessions, consultation) == []


async def test_run_once_waits_for_its_child(
    rt: Runtime, clock: Clock, load_consultation: Loader
) -> None:
    consultation = await load_consultation()
    scheduler: LeasedScheduler = scheduler_for(rt, SETTINGS, holder="once")
    await scheduler.run_once()  # `consult deliver --once`: planned, computed, then stopped
    assert len(await stored(rt.sessions, consultation)) == 1


async def test_a_database_in_memory_is_computed_in_the_scheduler_s_own_process(
    clock: Clock,
) -> None:
    # A child would open a database in memory of its own, empty: the round computes here.
    engine = create_engine("sqlite:///:memory:")
    await migrate(engine)
    sessions = session_factory(engine)
    spec = parse_consultation(consultation_data())
    async with sessions() as session, session.begin():
        consultation, _ = await upsert_consultation(session, spec, clock())
    await crowd(sessions, consultation, clock)
    rt = Runtime(engine, sessions, Flow(sessions, SECRET, clock=clock, rng=random.Random(1)))
    try:
        scheduler: LeasedScheduler = scheduler_for(rt, SETTINGS, holder="memory")
        await scheduler.run_once()
        (snapshot,) = await stored(sessions, consultation)
        assert snapshot.payload[DASHBOARD]["reports"]["all"]["en"]["participants"] == 24
    finally:
        await engine.dispose()

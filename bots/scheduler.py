"""The broadcasts' scheduler: APScheduler 3.x inside `consult serve` and `consult deliver`,
run by exactly one process among all workers and hosts.

Which one is said by a lease row in the database (`SchedulerLease`, name "scheduler"): a
process takes it with one conditional statement when it has expired, renews it every third of
its length, and runs the planning jobs only while it holds it. Schedules live in tables (a
broadcast's `next_run_at`), so a restart, or another process taking over, loses nothing; and
an occurrence is planned once (`core.broadcasts.planning.plan_due`), even if two holders
overlapped for a moment.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.schedulers.asyncio import (  # type: ignore[import-untyped]  # no type hints shipped
    AsyncIOScheduler,
)
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]
from sqlalchemy import Executable, and_, or_
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from bots.bootstrap import Runtime, runtime
from bots.broadcast_worker import resolve_outside
from bots.results_worker import ResultsProcess
from bots.settings import Settings
from core.broadcasts.planning import PlannedRun, plan_due
from core.broadcasts.reminders import plan_reminders
from core.models import Consultation, SchedulerLease, Status
from core.results.recompute import due as results_due
from core.results.recompute import recompute_results

log = logging.getLogger("consult.scheduler")
LEASE = "scheduler"
LEASE_JOB = "scheduler-lease"

# --- cron expressions --------------------------------------------------------------------------

# Standard crontab numbers the weekdays from Sunday (0 and 7); APScheduler 3.x's
# `from_crontab` from Monday (its documented "historical mistake", issue 286). Numbers are
# turned into names before APScheduler reads them, so "0 10 * * 1" is Monday at 10:00 as in
# every crontab an organiser has seen.
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DAY_TERM = re.compile(r"^(\*|[0-7]|[a-z]{3})(?:-([0-7]|[a-z]{3}))?(?:/([1-9]\d*))?$")


def _weekday_number(token: str) -> int:
    if token.isdigit():
        return int(token) % 7
    if token in _WEEKDAYS:
        return _WEEKDAYS.index(token)
    raise ValueError(f"unknown day of week {token!r}")


def _weekday_names(field: str) -> str:
    """A crontab day-of-week field (0 or 7 = Sunday) as APScheduler's weekday names."""
    if field == "*":
        return field
    days: set[int] = set()
    for term in field.lower().split(","):
        match = _DAY_TERM.match(term)
        if match is None:
            raise ValueError(f"unreadable day of week {term!r}")
        first, last, step = match.groups()
        if first == "*":
            low, high = 0, 6
        else:
            low = _weekday_number(first)
            high = low if last is None else _weekday_number(last)
            if last is not None and last.isdigit() and int(last) == 7:
                high = 7  # "5-7": Friday to Sunday
            if step is not None and last is None:
                high = 6  # "1/2": from Monday on, as cron reads it
        if high < low:
            raise ValueError(f"backwards range of days {term!r}")
        days.update(day % 7 for day in range(low, high + 1, int(step or 1)))
    return ",".join(_WEEKDAYS[day] for day in sorted(days))


def cron_trigger(cron: str, tz: str) -> CronTrigger:
    """APScheduler's trigger for a standard five-field crontab expression in time zone `tz`;
    ValueError (with APScheduler's words) if it does not parse or the zone is unknown."""
    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(f"a cron expression has 5 fields, not {len(fields)}")
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {tz!r}") from error
    fields[4] = _weekday_names(fields[4])
    return CronTrigger.from_crontab(" ".join(fields), timezone=zone)


def next_fire(cron: str, after: datetime, tz: str) -> datetime | None:
    """The first time strictly after `after` (aware) that `cron` fires in time zone `tz`, in
    UTC; None if it never fires again (the 31st of February). ValueError if it does not
    parse. This is `core.broadcasts.planning.NextFire`, the one place that reads cron."""
    # get_next_fire_time(None, now) may answer `now` itself; a microsecond later, rounded up to
    # the second by APScheduler, is strictly after (an occurrence is never planned twice).
    fire: datetime | None = cron_trigger(cron, tz).get_next_fire_time(
        None, after + timedelta(microseconds=1)
    )
    return None if fire is None else fire.astimezone(UTC)


# --- the lease ---------------------------------------------------------------------------------

_LEASES = SchedulerLease.__table__  # type: ignore[attr-defined]


def _take_statement(dialect: str, holder: str, now: datetime, until: datetime) -> Executable:
    """INSERT the lease, or take it over if it is ours or has expired; RETURNING the holder
    only when this statement wrote it. One statement: two processes racing for an expired
    lease are ordered by the row's lock, and the second sees it taken."""
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(_LEASES).values(name=LEASE, holder=holder, expires_at=until)
    return statement.on_conflict_do_update(
        index_elements=["name"],
        set_={"holder": holder, "expires_at": until},
        where=or_(_LEASES.c.holder == holder, _LEASES.c.expires_at <= now),
    ).returning(_LEASES.c.holder)


async def take_lease(session: AsyncSession, holder: str, now: datetime, seconds: float) -> bool:
    """Take or renew the scheduler's lease for `seconds` from `now`: True if `holder` holds it
    now, False if another process does and its lease has not expired."""
    dialect = session.get_bind().dialect.name
    until = now + timedelta(seconds=seconds)
    connection = await session.connection()
    taken = await connection.execute(_take_statement(dialect, holder, now, until))
    return taken.first() is not None


async def holds_lease(session: AsyncSession, holder: str, now: datetime) -> bool:
    """Whether `holder`'s lease is still valid at `now` (read in the planning transaction)."""
    found = await session.exec(
        select(SchedulerLease.name).where(
            col(SchedulerLease.name) == LEASE,
            col(SchedulerLease.holder) == holder,
            col(SchedulerLease.expires_at) > now,
        )
    )
    return found.first() is not None


async def release_lease(session: AsyncSession, holder: str, now: datetime) -> None:
    """Give the lease up (a process stopping): another process takes it at its next try,
    instead of after the lease's length."""
    await session.exec(
        update(SchedulerLease)
        .where(and_(col(SchedulerLease.name) == LEASE, col(SchedulerLease.holder) == holder))
        .values(expires_at=now)
    )


def new_holder_id() -> str:
    """This process among all hosts: host, process id and a random part (a reused pid)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


# --- the scheduler -----------------------------------------------------------------------------

PlanningJob = Callable[[AsyncSession, datetime], Awaitable[int]]


@dataclass(frozen=True)
class Job:
    """A planning job: `plan(session, now)` runs in one transaction in which the lease is
    checked, and says how much it planned (logged when not 0). `child` is the process a round
    may leave working after it (the results' computation): ended when the scheduler stops or
    loses the lease, so that only the lease's holder has one at work."""

    id: str
    plan: PlanningJob
    after: Callable[[], Awaitable[None]] | None = None  # once the round has committed
    child: ResultsProcess | None = None


class LeasedScheduler:
    """An `AsyncIOScheduler` whose planning jobs run every `every` seconds only while this
    process holds the lease; the lease job tries to take or renew it every `lease_seconds/3`.

    `on_round` is called after each planning job's round with (job id, planned count): tests
    wait on it instead of on time.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        jobs: Sequence[Job],
        *,
        clock: Callable[[], datetime],
        every: float = 10.0,
        lease_seconds: float = 30.0,
        holder: str | None = None,
        on_round: Callable[[str, int], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.jobs = tuple(jobs)
        self.clock = clock
        self.every = every
        self.lease_seconds = lease_seconds
        self.holder = holder or new_holder_id()
        self.on_round = on_round
        self.holding = False
        self._scheduler: AsyncIOScheduler | None = None

    async def start(self) -> None:
        """Try the lease at once, then start APScheduler (in the running event loop)."""
        scheduler = AsyncIOScheduler(timezone=UTC)
        options = {"replace_existing": True, "coalesce": True, "max_instances": 1}
        scheduler.add_job(
            self.keep_lease,
            IntervalTrigger(seconds=self.lease_seconds / 3),
            id=LEASE_JOB,
            **options,
        )
        for job in self.jobs:
            scheduler.add_job(
                self.run_job, IntervalTrigger(seconds=self.every), args=(job,), id=job.id, **options
            )
        self._scheduler = scheduler
        await self.keep_lease()
        scheduler.start()
        if self.holding:  # the first round now, not `every` seconds from now
            for job in self.jobs:
                scheduler.modify_job(job.id, next_run_time=datetime.now(UTC))

    async def run_once(self) -> int:
        """One round of every job now, if the lease can be had, then give it up (`consult
        deliver --once`: what is due is planned, then sent); how much was planned."""
        await self.keep_lease()
        planned = 0
        for job in self.jobs:
            planned += await self.run_job(job)
        for job in self.jobs:
            if job.child is not None:
                await job.child.wait()
        await self.stop()
        return planned

    async def stop(self) -> None:
        """Stop the jobs and their children, then give the lease up, if held."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        await self._stop_children()
        if self.holding:
            self.holding = False
            try:
                async with self.sessions() as session, session.begin():
                    await release_lease(session, self.holder, self.clock())
            except (SQLAlchemyError, OSError) as error:  # it expires by itself
                log.warning("could not give the scheduler lease up: %s", error)

    async def keep_lease(self) -> None:
        """Take or renew the lease; on losing it, the planning jobs stop at once."""
        try:
            async with self.sessions() as session, session.begin():
                held = await take_lease(session, self.holder, self.clock(), self.lease_seconds)
        except (SQLAlchemyError, OSError) as error:  # the database is away: not ours for now
            log.warning("could not renew the scheduler lease: %s", error)
            held = False
        if held and not self.holding:
            log.info("this process runs the scheduler (%s)", self.holder)
        elif self.holding and not held:
            log.warning("this process no longer runs the scheduler (%s)", self.holder)
        self.holding = held
        if not held:  # the next holder starts its own children
            await self._stop_children()

    async def _stop_children(self) -> None:
        for job in self.jobs:
            if job.child is not None:
                await job.child.stop()

    async def run_job(self, job: Job) -> int:
        """One round of `job` if the lease is held (checked again in its transaction: a
        process paused past its lease must not plan); how much it planned."""
        if not self.holding:
            return 0
        planned = 0
        try:
            async with self.sessions() as session, session.begin():
                now = self.clock()
                if await holds_lease(session, self.holder, now):
                    planned = await job.plan(session, now)
                else:
                    self.holding = False
        except (SQLAlchemyError, OSError) as error:  # the database is away: next round
            log.warning("scheduler job %s could not run: %s", job.id, error)
            return 0
        except Exception:  # a bug in a job: the next round may do better
            log.exception("scheduler job %s failed", job.id)
            return 0
        if planned:
            log.info("scheduler job %s planned %d", job.id, planned)
        if job.after is not None:
            await job.after()
        if self.on_round is not None:
            self.on_round(job.id, planned)
        return planned


# --- the jobs ----------------------------------------------------------------------------------


def planning_jobs(
    rt: Runtime, settings: Settings, results: ResultsProcess | None = None
) -> list[Job]:
    """The scheduler's jobs: plan the due broadcasts' occurrences, then the reminders of the
    consultations under way. Each is idempotent: an occurrence or a reminder is planned once.
    Then compute again the results of the consultations due (`core.results.recompute.due`,
    every `results_every_minutes`), stored as snapshots the dashboard and the API read: in a
    child process (`results`, by default `python -m bots.results_worker` on this runtime's
    database), so that the event loop goes on serving meanwhile; a database in memory, which
    a child could not open, in this process."""
    outside: list[PlannedRun] = []

    async def plan_broadcasts(session: AsyncSession, now: datetime) -> int:
        planned = await plan_due(session, now, next_fire)
        # for `after`, which runs once this round has committed (never for a failed one)
        outside[:] = [run for run in planned if run.outside is not None]
        return len(planned)

    async def find_outside_recipients() -> None:
        # After the planning commits: asking Slack who is there takes time.
        runs, outside[:] = list(outside), []
        for run in runs:
            try:
                await resolve_outside(rt, settings, run)
            except Exception:  # one platform failing does not stop the others
                log.exception("broadcast %d: finding its recipients failed", run.broadcast_id)

    async def plan_all_reminders(session: AsyncSession, now: datetime) -> int:
        running = await session.exec(
            select(Consultation).where(col(Consultation.status) != Status.DRAFT)
        )
        planned = 0
        for consultation in running.all():
            planned += await plan_reminders(session, consultation, now)
        return planned

    every = timedelta(minutes=settings.results_every_minutes)
    url = rt.engine.url.render_as_string(hide_password=False)
    child = results or ResultsProcess(url)
    handed: list[tuple[list[int], datetime]] = []

    async def find_due_results(session: AsyncSession, now: datetime) -> int:
        # While a child computes, the next round waits for it rather than start a second one.
        if child.running:
            return 0
        due = [c.id for c in await results_due(session, now, every) if c.id is not None]
        handed[:] = [(due, now)] if due else []
        return len(due)

    async def compute_due_results() -> None:
        # After the round commits; the child stores each consultation's snapshot in a
        # transaction of its own, and its end is logged (`bots.results_worker`).
        work, handed[:] = list(handed), []
        for due, now in work:
            await child.start(due, now)

    async def recompute_here(session: AsyncSession, now: datetime) -> int:
        # A database in memory is this process's alone: a child would open an empty one.
        # Each consultation in a savepoint: one that fails does not keep the others out.
        computed = 0
        for consultation in await results_due(session, now, every):
            try:
                async with session.begin_nested():
                    await recompute_results(session, consultation, now)
                computed += 1
            except Exception:
                log.exception("results of %s could not be computed", consultation.slug)
        return computed

    in_memory = rt.engine.url.get_backend_name() == "sqlite" and (
        rt.engine.url.database in (None, "", ":memory:") or "mode=memory" in url
    )
    results_job = (
        Job("results-recompute", recompute_here)
        if in_memory and results is None
        else Job("results-recompute", find_due_results, after=compute_due_results, child=child)
    )
    return [
        Job("broadcasts-plan", plan_broadcasts, after=find_outside_recipients),
        Job("reminders-plan", plan_all_reminders),
        results_job,
    ]


def scheduler_for(
    rt: Runtime,
    settings: Settings,
    *,
    holder: str | None = None,
    on_round: Callable[[str, int], None] | None = None,
    results: ResultsProcess | None = None,
) -> LeasedScheduler:
    """The scheduler of `consult serve` and `consult deliver`, paced by the settings;
    `results` computes the results (tests pass one that tells when its child ends)."""
    return LeasedScheduler(
        rt.sessions,
        planning_jobs(rt, settings, results),
        clock=rt.flow.clock,
        every=settings.scheduler_every_seconds,
        lease_seconds=settings.scheduler_lease_seconds,
        holder=holder,
        on_round=on_round,
    )


def _scheduler_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bots.scheduler")
    parser.add_argument("--holder", help="this process's name in the lease (default: host:pid)")
    return parser.parse_args()


async def _run_alone() -> int:
    """The scheduler alone in a process, until SIGTERM: what `consult serve` runs beside its
    web server (for a host that only plans, and for the two-process tests)."""
    args = _scheduler_arguments()
    settings = Settings()
    async with runtime(settings) as rt:
        scheduler = scheduler_for(rt, settings, holder=args.holder)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, stopping.set)
        await scheduler.start()
        log.info("scheduler started (%s)", scheduler.holder)
        try:
            await stopping.wait()
        finally:
            await scheduler.stop()
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
    raise SystemExit(asyncio.run(_run_alone()))

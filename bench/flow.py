"""`consult bench flow`: what a vote costs the core alone, without HTTP or a platform.

Participants already past consent tap vote choices straight into `core.flow.Flow` in this
process (a closed loop each, all at once), on the same consultation as `bench ingest`. The
baseline, measured in the same run with the same engine and concurrency, is the least a
transaction can do: insert one row (`bench.ingest_baseline`'s table). Figures: votes per
second, CPU per vote (this process, the database driver included), and for the core the number
of SQL statements per vote. It separates the core's share of `bench ingest` from the web
server's and the Bot API calls'.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bench.databases import bench_database
from bench.ingest import SLUG, VOTE_KEYS, Plan, prepare
from bench.ingest_baseline import create_table, taps
from core.flow import Flow
from core.messages import Choice, Event, Start
from core.storage import create_engine, session_factory


@dataclass(frozen=True)
class FlowPlan:
    participants: int
    votes_each: int
    proposals: int


QUICK = FlowPlan(participants=20, votes_each=25, proposals=600)
FULL = FlowPlan(participants=40, votes_each=80, proposals=2000)


def _figures(
    votes: int, seconds: float, cpu: float, statements_per_vote: float | None
) -> dict[str, Any]:
    return {
        "votes": votes,
        "votes_per_second": round(votes / seconds, 1),
        "cpu_ms_per_vote": round(cpu / votes * 1000, 3),
        "statements_per_vote": statements_per_vote,
    }


async def measure_flow(database_url: str, plan: FlowPlan) -> dict[str, Any]:
    await prepare(database_url, Plan(0, 0, plan.proposals))
    engine = create_engine(database_url)
    flow = Flow(session_factory(engine), b"bench", rng=random.Random(7))
    keys = iter(range(1, 10**9))
    offered: dict[int, list[str]] = {}

    async def send(user: int, kind: type[Event], **fields: Any) -> None:
        event_ = kind(channel="bench", user_id=str(user), key=str(next(keys)), **fields)
        for reply in (await flow.handle(event_)).replies:
            if reply.pick is not None:
                offered[user] = [option.id for option in reply.pick.options]

    for user in range(plan.participants):  # onboarding, not measured
        await send(user, Start, payload=SLUG, locale_hint="en")
        while not any(option.startswith("agree.") for option in offered[user]):
            await send(user, Choice, option=offered[user][0])

    rng = random.Random(11)

    async def vote(user: int, times: int) -> None:
        for _ in range(times):
            choices = [o for o in offered[user] if o.partition(".")[0] in VOTE_KEYS]
            await send(user, Choice, option=rng.choice(choices))

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(vote(user, plan.votes_each) for user in range(plan.participants)))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu

    # One more vote each, with the statements counted (a listener slows every statement, so
    # not during the timed part).
    statements = 0

    def count(*_: Any) -> None:
        nonlocal statements
        statements += 1

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    await asyncio.gather(*(vote(user, 1) for user in range(plan.participants)))
    await engine.dispose()
    votes = plan.participants * plan.votes_each
    return _figures(votes, seconds, cpu, round(statements / plan.participants, 1))


async def measure_bare(database_url: str, plan: FlowPlan) -> dict[str, Any]:
    await create_table(database_url)
    engine = create_engine(database_url)
    ids = iter(range(1, 10**9))

    async def tap(user: int) -> None:
        for _ in range(plan.votes_each):
            async with engine.begin() as connection:
                update = next(ids)
                await connection.execute(
                    taps.insert().values(update_id=update, user_id=user, data="agree.1")
                )

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(tap(user) for user in range(plan.participants)))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    await engine.dispose()
    return _figures(plan.participants * plan.votes_each, seconds, cpu, None)


def run_flow(quick: bool, postgres_url: str | None) -> dict[str, Any]:
    """Both on SQLite, then on PostgreSQL when the server at `postgres_url` answers (in its
    `consult_bench` database)."""
    plan = QUICK if quick else FULL
    results = []
    with tempfile.TemporaryDirectory(prefix="consult-bench-") as scratch:
        backends = [("sqlite", f"sqlite:///{Path(scratch) / 'flow.sqlite3'}")]
        bench_url = asyncio.run(bench_database(postgres_url)) if postgres_url else None
        if bench_url:
            backends.append(("postgresql", bench_url))
        for name, url in backends:
            ours = asyncio.run(measure_flow(url, plan))
            bare = asyncio.run(measure_bare(url, plan))
            ratio = ours["votes_per_second"] / bare["votes_per_second"]
            results.append({"backend": name, "flow": ours, "bare": bare, "ratio": round(ratio, 3)})
    return {
        "benchmark": "flow",
        "plan": {
            "participants": plan.participants,
            "votes_each": plan.votes_each,
            "proposals": plan.proposals,
        },
        "measures": "core.flow.Flow in this process, no HTTP; bare = one-row INSERT transactions",
        "results": results,
    }


def table(report: dict[str, Any]) -> str:
    lines = [f"{'backend':<11} {'system':<6} {'votes/s':>8} {'cpu ms/vote':>11} {'SQL/vote':>8}"]
    for row in report["results"]:
        for system in ("flow", "bare"):
            f = row[system]
            statements = "-" if f["statements_per_vote"] is None else f["statements_per_vote"]
            lines.append(
                f"{row['backend']:<11} {system:<6} {f['votes_per_second']:>8} "
                f"{f['cpu_ms_per_vote']:>11} {statements:>8}"
            )
        lines.append(f"{row['backend']:<11} flow/bare throughput: {row['ratio']:.2f}")
    return "\n".join(lines)

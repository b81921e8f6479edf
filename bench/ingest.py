"""`consult bench ingest`: how many votes per second the Telegram webhook takes.

The server runs as `consult serve` (one uvicorn worker, access log off) with our fake Bot API
standing in for Telegram; synthetic participants, already past consent, tap vote buttons: each
tap is a callback update posted to the webhook, answered in the webhook's answer, the card
edited into the next card, and the participant taps again once that card has arrived (a closed
loop per participant). The bare baseline, measured in the same run with the same driver, is a
FastAPI endpoint on the same server stack that parses the update and inserts one row with the same
database driver (`bench.ingest_baseline`).

Pacing is lifted for the run (Telegram's 30 messages per second overall would cap any bot far
below what we measure here): this measures ingestion, not Telegram's limits.

Figures: votes per second; p50 and p99 of the webhook's answer time; for ours, p50 and p99 of
the time from a tap to the next card's arrival at the fake API; the Bot API requests our server
made per vote (the webhook's answer aside; Telegram's 30 messages a second divide by it); and a
check that every vote is in the database exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func
from sqlmodel import select

from bench.databases import bench_database, empty_schema
from bench.fakes.telegram_api import Call, FakeTelegram
from bench.ingest_baseline import create_table, stored_taps
from bench.processes import Served, consult_process, free_port, running, serving
from bench.selection_timing import percentile
from core.definitions import parse_consultation, upsert_consultation
from core.flow import utc_now
from core.models import Proposal
from core.storage import create_engine, migrate, session_factory

TOKEN = "4242424242:BENCH-token"
CARD_METHODS = ("sendMessage", "editMessageText")
SECRET = "bench-secret"
SLUG = "bench"
VOTE_KEYS = ("agree", "disagree", "neutral")


@dataclass(frozen=True)
class Plan:
    participants: int
    seconds: float
    proposals: int


QUICK = Plan(participants=48, seconds=6, proposals=600)
FULL = Plan(participants=192, seconds=20, proposals=2000)


@dataclass
class Run:
    """What one system did under the driver."""

    votes: int = 0
    latencies: list[float] = field(default_factory=list)
    reply_latencies: list[float] = field(default_factory=list)
    errors: int = 0
    # Bot API calls the fake took while participants voted (what Telegram's limits count), and
    # those of them that rode in the webhook's answer (not a request of the server's).
    platform_calls: int = 0
    # Requests the platform refused: a retry of a request it had taken though its answer was
    # lost (a dropped connection) is refused as "not modified", and costs it no message.
    refused_calls: int = 0
    answered_inline: int = 0
    seconds: float = 0.0
    server_cpu: float = 0.0
    driver_cpu: float = 0.0

    @contextlib.contextmanager
    def timing(self, server: Served) -> Iterator[None]:
        """Time the block, and the CPU the server and this driver used meanwhile."""
        started, server_cpu, driver_cpu = (
            time.perf_counter(),
            server.cpu_seconds(),
            time.process_time(),
        )
        yield
        self.seconds = time.perf_counter() - started
        self.server_cpu = server.cpu_seconds() - server_cpu
        self.driver_cpu = time.process_time() - driver_cpu

    def figures(self) -> dict[str, float | int | None]:
        return {
            "votes": self.votes,
            "votes_per_second": round(self.votes / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": _ms(self.latencies, 0.5),
            "p99_ms": _ms(self.latencies, 0.99),
            "reply_p50_ms": _ms(self.reply_latencies, 0.5),
            "reply_p99_ms": _ms(self.reply_latencies, 0.99),
            "errors": self.errors,
            # Requests our server made to the platform per vote (the webhook's answer aside):
            # what Telegram's 30 messages a second divide.
            "platform_calls_per_vote": (
                round((self.platform_calls - self.answered_inline) / self.votes, 3)
                if self.votes and self.platform_calls
                else None
            ),
            "platform_calls_refused": self.refused_calls,
            # Share of one core each used during the run: 1.0 means that process was the limit.
            "server_cpu_share": round(self.server_cpu / self.seconds, 2) if self.seconds else 0.0,
            "driver_cpu_share": round(self.driver_cpu / self.seconds, 2) if self.seconds else 0.0,
        }


def _ms(seconds: list[float], q: float) -> float | None:
    """The `q` quantile in milliseconds; None without any value."""
    return round(percentile(seconds, q) * 1000, 2) if seconds else None


def bench_consultation(proposals: int) -> dict[str, Any]:
    return {
        "slug": SLUG,
        "status": "open",
        "default_locale": "en",
        "locales": ["en"],
        "question": {"en": "How can we better care for our elders?"},
        "settings": {"sequence_size": 100, "qualifications": False, "moderation": "post"},
        "proposals": [
            {"ref": f"b{i}", "text": {"en": text}} for i, text in enumerate(_texts(proposals))
        ],
    }


WORDS = (  # noqa: SIM905 - a sentence's worth of words reads better as one string
    "fund train open build share visit care pay help teach listen cook drive repair welcome "
    "homes nurses canteens buses libraries parks benches gardens clinics phones meals streets "
    "neighbours volunteers students families carers doctors shops halls villages towns every "
    "week weekend night morning free local public shared small rural better more"
).split()


def _texts(count: int) -> list[str]:
    """Distinct proposals (not near-duplicates, which a sequence may hold only one of)."""
    rng = random.Random(count)
    return [f"We should {' '.join(rng.sample(WORDS, 7))} ({i})" for i in range(count)]


async def prepare(database_url: str, plan: Plan) -> None:
    """A fresh schema with the bench consultation loaded."""
    engine = create_engine(database_url)
    await empty_schema(engine)
    await migrate(engine)
    async with session_factory(engine)() as session, session.begin():
        spec = parse_consultation(bench_consultation(plan.proposals))
        await upsert_consultation(session, spec, utc_now())
    await engine.dispose()


async def counted_votes(database_url: str) -> int:
    engine = create_engine(database_url)
    async with session_factory(engine)() as session:
        total = (await session.exec(select(func.coalesce(func.sum(Proposal.vote_count), 0)))).one()
    await engine.dispose()
    return int(total)


class Participants:
    """The driver: participants tapping on the cards the fake Bot API received for them."""

    def __init__(self, fake: FakeTelegram, webhook: str, count: int, seed: int = 7) -> None:
        self.fake = fake
        self.webhook = webhook
        self.ids = [10_000 + i for i in range(count)]
        self.rng = random.Random(seed)
        self.cards: dict[int, asyncio.Event] = {user: asyncio.Event() for user in self.ids}
        self.run = Run()
        fake.listeners.append(self._arrived)

    def _arrived(self, call: Call) -> None:
        # The next card: a new message, or the tapped card edited into it.
        if call.method in CARD_METHODS and "reply_markup" in call.params:
            event = self.cards.get(call.params["chat_id"])
            if event is not None:
                event.set()

    async def post(self, http: aiohttp.ClientSession, update: dict[str, Any]) -> float:
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
        started = time.perf_counter()
        body, ok = await _deliver(http, self.webhook, json.dumps(update), headers)
        elapsed = time.perf_counter() - started
        if not ok:
            self.run.errors += 1
            return -1.0
        if body:  # a Bot API call made in the webhook's answer, as Telegram honours it
            self.fake.call_in_answer(json.loads(body))
            self.run.answered_inline += 1
        return elapsed

    async def onboard(self, http: aiohttp.ClientSession, user: int) -> None:
        self.fake.user(user, language_code="en")
        await self.post(http, self.fake.start_update(user, SLUG))
        while True:
            await self._next_card(user, timeout=60)
            keyboard = [data for _, data in self.fake.last_keyboard(user) if data]
            if any(data.startswith("agree.") for data in keyboard):
                return
            await self.post(http, self.fake.tap_update(user, keyboard[0]))

    async def _next_card(self, user: int, timeout: float) -> None:
        try:
            await asyncio.wait_for(self.cards[user].wait(), timeout)
        except TimeoutError:
            raise RuntimeError(f"participant {user} got no card within {timeout} s") from None
        self.cards[user].clear()

    async def vote(self, http: aiohttp.ClientSession, user: int, until: float) -> None:
        while time.perf_counter() < until:
            keyboard = [data for _, data in self.fake.last_keyboard(user) if data]
            votes = [data for data in keyboard if data.split(".")[0] in VOTE_KEYS]
            choice = self.rng.choice(votes) if votes else ("vote" if "vote" in keyboard else "")
            if not choice:
                return  # nothing left to vote on
            started = time.perf_counter()
            latency = await self.post(http, self.fake.tap_update(user, choice))
            if latency < 0:  # refused: Telegram would deliver this update again
                raise RuntimeError(f"the webhook refused participant {user}'s tap")
            if votes:
                self.run.votes += 1
                self.run.latencies.append(latency)
            await self._next_card(user, timeout=60)
            if votes:
                self.run.reply_latencies.append(time.perf_counter() - started)


async def measure_consult(
    database_url: str, plan: Plan, data_dir: Path, workers: int
) -> dict[str, Any]:
    await prepare(database_url, plan)
    fake = FakeTelegram(TOKEN, limits=None)
    async with serving(fake.asgi) as fake.url:
        return await _drive_consult(database_url, plan, data_dir, fake, workers)


async def _drive_consult(
    database_url: str, plan: Plan, data_dir: Path, fake: FakeTelegram, workers: int
) -> dict[str, Any]:
    env = {
        "CONSULT_DATABASE_URL": database_url,
        "CONSULT_DATA_DIR": str(data_dir),
        "CONSULT_SECRET_KEY": "bench",
        "CONSULT_TELEGRAM_TOKEN": TOKEN,
        "CONSULT_TELEGRAM_WEBHOOK_SECRET": SECRET,
        "CONSULT_TELEGRAM_API_URL": fake.url,
        "CONSULT_TELEGRAM_MESSAGES_PER_SECOND": "1000000",
        "CONSULT_TELEGRAM_CHAT_MESSAGES_PER_SECOND": "1000000",
    }
    stack = contextlib.ExitStack()
    served: Served = await asyncio.to_thread(
        stack.enter_context, consult_process(env, workers=workers, options=["--no-access-log"])
    )
    try:
        driver = Participants(fake, f"{served.url}/webhooks/telegram", plan.participants)
        connector = aiohttp.TCPConnector(limit=plan.participants)
        async with aiohttp.ClientSession(connector=connector) as http:
            await _all(driver.onboard(http, user) for user in driver.ids)
            calls, refused = fake.count(ok=True), fake.count(ok=False)
            driver.run.answered_inline = 0
            with driver.run.timing(served):
                until = time.perf_counter() + plan.seconds
                await _all(driver.vote(http, user, until) for user in driver.ids)
            # Every participant waited for the card its last tap led to: all calls are in.
            driver.run.platform_calls = fake.count(ok=True) - calls
            driver.run.refused_calls = fake.count(ok=False) - refused
    finally:
        await asyncio.to_thread(stack.close)
    figures = driver.run.figures()
    stored = await counted_votes(database_url)
    figures["votes_stored"] = stored
    figures["all_stored_once"] = stored == driver.run.votes
    return figures


def _baseline_update(update_id: int, user: int, rng: random.Random) -> dict[str, Any]:
    """A callback update of the size and shape of ours (one card's message inside)."""
    person = {"id": user, "is_bot": False, "first_name": f"User{user}", "language_code": "en"}
    message = {
        "message_id": update_id % 1000 + 1,
        "date": 1764000000,
        "chat": {"id": user, "type": "private", "first_name": f"User{user}"},
        "from": {"id": 4242424242, "is_bot": True, "first_name": "Consult"},
        "text": "Proposal 7/100\n\nWe should try idea number 123 for our elders",
        "reply_markup": {
            "inline_keyboard": [
                [{"text": "Agree", "callback_data": "agree.123"}],
                [{"text": "Disagree", "callback_data": "disagree.123"}],
            ]
        },
    }
    query = {
        "id": str(update_id * 7),
        "from": person,
        "message": message,
        "chat_instance": "-1",
        "data": f"{rng.choice(VOTE_KEYS)}.123",
    }
    return {"update_id": update_id, "callback_query": query}


async def measure_baseline(database_url: str, plan: Plan, workers: int) -> dict[str, Any]:
    if database_url.startswith("postgresql"):
        await prepare(database_url, Plan(0, 0, 0))
    await create_table(database_url)
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "bench.ingest_baseline:create_app", "--factory",
        "--port", str(port), "--workers", str(workers), "--no-access-log",
        "--log-level", "warning",
    ]  # fmt: skip
    env = {"CONSULT_BENCH_DATABASE_URL": database_url}
    stack = contextlib.ExitStack()
    served: Served = await asyncio.to_thread(stack.enter_context, running(command, env, port))
    url = served.url
    run = Run()
    rng = random.Random(7)
    ids = iter(range(1, 10**9))
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}

    async def participant(http: aiohttp.ClientSession, user: int, until: float) -> None:
        while time.perf_counter() < until:
            update = json.dumps(_baseline_update(next(ids), user, rng))
            started = time.perf_counter()
            _, ok = await _deliver(http, f"{url}/webhooks/telegram", update, headers)
            if ok:
                run.votes += 1
                run.latencies.append(time.perf_counter() - started)
            else:
                run.errors += 1

    try:
        connector = aiohttp.TCPConnector(limit=plan.participants)
        async with aiohttp.ClientSession(connector=connector) as http:
            with run.timing(served):
                until = time.perf_counter() + plan.seconds
                await _all(participant(http, 10_000 + i, until) for i in range(plan.participants))
    finally:
        await asyncio.to_thread(stack.close)
    figures = run.figures()
    figures["votes_stored"] = stored = await stored_taps(database_url)
    figures["all_stored_once"] = stored == run.votes
    return figures


async def _deliver(
    http: aiohttp.ClientSession, url: str, body: str, headers: dict[str, str]
) -> tuple[bytes, bool]:
    """POST an update as Telegram does: again if the connection drops before an answer (a
    keep-alive connection the server closed just as we reused it); the update id makes the
    second copy harmless."""
    for attempt in range(3):
        try:
            async with http.post(url, data=body, headers=headers) as answer:
                return await answer.read(), answer.status == 200
        except aiohttp.ClientConnectionError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def _all(coroutines: Any) -> None:
    await asyncio.gather(*coroutines)


def run_ingest(quick: bool, postgres_url: str | None, workers: int = 1) -> dict[str, Any]:
    """Both systems on SQLite, then on PostgreSQL when the server at `postgres_url` answers
    (they run in its `consult_bench` database, never in the one the URL names)."""
    plan = QUICK if quick else FULL
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="consult-bench-") as scratch:
        backends = [("sqlite", f"sqlite:///{Path(scratch) / 'consult.sqlite3'}")]
        bench_url = asyncio.run(bench_database(postgres_url)) if postgres_url else None
        if bench_url:
            backends.append(("postgresql", bench_url))
        for name, url in backends:
            ours = asyncio.run(measure_consult(url, plan, Path(scratch), workers))
            if url.startswith("sqlite"):
                url = f"sqlite:///{Path(scratch) / 'baseline.sqlite3'}"
            bare = asyncio.run(measure_baseline(url, plan, workers))
            ratio = ours["votes_per_second"] / bare["votes_per_second"] if bare["votes"] else 0
            results.append(
                {"backend": name, "consult": ours, "baseline": bare, "ratio": round(ratio, 3)}
            )
    return {
        "benchmark": "ingest",
        "plan": {
            "participants": plan.participants,
            "seconds": plan.seconds,
            "proposals": plan.proposals,
        },
        "workers": workers,
        "server": f"consult serve, {workers} uvicorn worker(s), access log off; the baseline "
        "under the same uvicorn settings; fake Bot API in the driver",
        "pacing": "lifted (this measures ingestion, not Telegram's limits)",
        "goals": {"ratio_to_baseline": 0.5, "platform_calls_per_vote": 1.0},
        "results": results,
    }


def table(report: dict[str, Any]) -> str:
    lines = [
        f"{'backend':<11} {'system':<9} {'votes/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'reply p50':>9} {'reply p99':>9} {'votes':>7} {'stored once':>11} {'cpu srv/drv':>11}"
    ]
    for row in report["results"]:
        for system in ("consult", "baseline"):
            f = row[system]
            once = {True: "yes", False: "NO"}.get(f.get("all_stored_once"), "-")
            lines.append(
                f"{row['backend']:<11} {system:<9} {f['votes_per_second']:>8} "
                f"{_cell(f['p50_ms']):>7} {_cell(f['p99_ms']):>7} {_cell(f['reply_p50_ms']):>9} "
                f"{_cell(f['reply_p99_ms']):>9} {f['votes']:>7} {once:>11} "
                f"{f['server_cpu_share']:>5.2f}/{f['driver_cpu_share']:<5.2f}"
            )
        calls = row["consult"].get("platform_calls_per_vote")
        lines.append(
            f"{row['backend']:<11} consult/baseline throughput: {row['ratio']:.2f} (goal >= 0.5); "
            f"Bot API calls per vote: {_cell(calls)} (goal <= 1.0)"
        )
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"

"""`consult bench broadcast`: one broadcast to N recipients, delivered at the platforms' pace.

N recipients (`bench.broadcast_data`) are split over Telegram, WhatsApp and Slack, each platform
a fake in a process of its own (`bench.broadcast_fakes`) enforcing its documented limits and
answering 429 past them: Telegram 30 messages per second per bot (1,000 for paid broadcasts,
`--paid`) and 1 per second per chat; WhatsApp a number's 80 messages per second (1,000 once
upgraded, `--tier-upgraded`); Slack 1 per second per conversation and 20 per second in the
workspace (Slack documents no workspace figure for chat.postMessage beyond "several hundred a
minute"; 20 is the pace our Slack channel keeps). `--time-scale K` multiplies every one of these
limits by K, in the fakes and in the delivery process's pacing alike: at K = 1, 100,000
recipients take an hour at Telegram's 30 per second. Shares are of the scaled limits.

The delivery process is a real `consult deliver` pointed at the fakes (CONSULT_*_API_URL), on
an SQLite file, then on PostgreSQL with `--postgres URL` (its `consult_bench_broadcast`
database). Three runs per database: N/10 recipients and N, whose peak memory (VmHWM) shows
whether delivery's memory is flat in the audience's size, then N again with the delivery
process SIGKILLed once the fakes have taken half the messages, and started again (the messages
it had claimed become unknown once it is seen dead: never sent twice, never silently lost).

Per channel: the achieved rate as a share of the limit (first to last message the fake accepted;
goal >= 95 %), 429 answers per send (goal < 0.1 %), duplicates (recipients who got 2+ messages;
goal 0), lost (rows still queued or claimed at the end, or marked sent though the fake never
got them; goal 0), and rows by state. The baseline, measured in the same run, is each fake's
raw acceptance rate from a tight client loop with no database and no limit: it tells the
pipeline's overhead from what this machine can do.

`throttled_again` counts the 429s answered to a retry. With CONSULT_BENCH_TRACE=DIR, each fake
writes the time, status and recipient of every send, and its own stalls, to DIR: the 429s'
causes are read there (a second that began with a bunch of sends, retries in it, the fake late
to read requests).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
from sqlalchemy import func, select
from sqlmodel import col

from bench.broadcast_data import SECRET, expected_keys, generate, recipient
from bench.broadcast_fakes import (
    CHANNELS,
    SLACK_TOKEN,
    TELEGRAM_TOKEN,
    WHATSAPP_NUMBER,
    WHATSAPP_TOKEN,
    fake_command,
    raw_rate,
)
from bench.databases import bench_database
from bench.processes import ROOT, Served, free_port, running
from core.flow import utc_now
from core.models import BroadcastMessage
from core.storage import create_engine

# The platforms' documented limits, in messages per second (before --time-scale).
TELEGRAM_PER_SECOND = 30.0
TELEGRAM_PAID_PER_SECOND = 1000.0
TELEGRAM_CHAT_PER_SECOND = 1.0
WHATSAPP_PER_SECOND = 80.0
WHATSAPP_UPGRADED_PER_SECOND = 1000.0
SLACK_WORKSPACE_PER_SECOND = 20.0
SLACK_CONVERSATION_PER_SECOND = 1.0
SETTLED = ("sent", "failed", "unknown")  # the states a row ends in
STALE_SECONDS = 1.5  # how soon a killed delivery process's claimed rows become unknown
GOALS = {"share_of_limit": 0.95, "throttled_per_send": 0.001, "duplicates": 0, "lost": 0}


@dataclass(frozen=True)
class Options:
    recipients: int = 100_000
    time_scale: float = 1.0
    paid: bool = False
    tier_upgraded: bool = False
    kill: bool = True  # the third run, with the delivery process killed mid-way
    small_share: float = 0.1  # the first run's recipients, as a share of `recipients`
    poll_seconds: float = 0.5
    baseline_seconds: float = 3.0
    patience_seconds: float = 60.0  # added to thrice the expected time, before giving up


def fake_limits(options: Options) -> dict[str, dict[str, float]]:
    """What each fake enforces (messages per second, scaled)."""
    k = options.time_scale
    whatsapp = WHATSAPP_UPGRADED_PER_SECOND if options.tier_upgraded else WHATSAPP_PER_SECOND
    return {
        "telegram": {
            "overall": TELEGRAM_PER_SECOND * k,
            "per_recipient": TELEGRAM_CHAT_PER_SECOND * k,
            "paid": TELEGRAM_PAID_PER_SECOND * k,
        },
        "whatsapp": {"overall": whatsapp * k},
        "slack": {
            "overall": SLACK_WORKSPACE_PER_SECOND * k,
            "per_recipient": SLACK_CONVERSATION_PER_SECOND * k,
        },
    }


def channel_limit(channel: str, options: Options) -> float:
    """The rate a broadcast's messages may reach on `channel`: the share's denominator."""
    limits = fake_limits(options)[channel]
    return limits["paid"] if channel == "telegram" and options.paid else limits["overall"]


def delivery_env(
    database_url: str, data_dir: Path, fakes: dict[str, Served], options: Options
) -> dict[str, str]:
    """`consult deliver`'s settings: the fakes' URLs, and pacing at the scaled limits."""
    limits = fake_limits(options)
    return {
        "CONSULT_DATABASE_URL": database_url,
        "CONSULT_DATA_DIR": str(data_dir),
        "CONSULT_SECRET_KEY": SECRET,
        "CONSULT_DELIVERY_BEAT_SECONDS": str(STALE_SECONDS / 3),
        "CONSULT_DELIVERY_STALE_SECONDS": str(STALE_SECONDS),
        "CONSULT_TELEGRAM_TOKEN": TELEGRAM_TOKEN,
        "CONSULT_TELEGRAM_WEBHOOK_SECRET": "bench-webhook-secret",
        "CONSULT_TELEGRAM_API_URL": fakes["telegram"].url,
        # the channel's own pacing, and the broadcasts' (bots.broadcast_worker)
        "CONSULT_TELEGRAM_MESSAGES_PER_SECOND": str(limits["telegram"]["overall"]),
        "CONSULT_TELEGRAM_BROADCAST_PER_SECOND": str(limits["telegram"]["overall"]),
        "CONSULT_TELEGRAM_PAID_BROADCAST_PER_SECOND": str(limits["telegram"]["paid"]),
        "CONSULT_TELEGRAM_CHAT_MESSAGES_PER_SECOND": str(limits["telegram"]["per_recipient"]),
        "CONSULT_WHATSAPP_TOKEN": WHATSAPP_TOKEN,
        "CONSULT_WHATSAPP_APP_SECRET": "bench-app-secret",
        "CONSULT_WHATSAPP_VERIFY_TOKEN": "bench-verify-token",
        "CONSULT_WHATSAPP_PHONE_NUMBER_ID": WHATSAPP_NUMBER,
        "CONSULT_WHATSAPP_API_URL": fakes["whatsapp"].url,
        "CONSULT_WHATSAPP_MESSAGES_PER_SECOND": str(limits["whatsapp"]["overall"]),
        # every recipient wrote within the 24-hour window: the tier (a cap on people reached
        # outside it) does not apply, and is lifted so that it cannot blur the throughput
        "CONSULT_WHATSAPP_TIER": "unlimited",
        "CONSULT_SLACK_BOT_TOKEN": SLACK_TOKEN,
        "CONSULT_SLACK_SIGNING_SECRET": "bench-signing-secret",
        "CONSULT_SLACK_API_URL": f"{fakes['slack'].url}/api/",
        "CONSULT_SLACK_MESSAGES_PER_SECOND": str(limits["slack"]["overall"]),
        "CONSULT_SLACK_CONVERSATION_MESSAGES_PER_SECOND": str(limits["slack"]["per_recipient"]),
        "CONSULT_BROADCASTS_EVERY_SECONDS": "0.5",
    }


def peak_rss_kib(pid: int) -> int | None:
    """The process's peak resident memory so far (VmHWM, Linux), or None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


class Delivery:
    """`consult deliver` as an operator runs it, which can be killed and started again."""

    def __init__(self, env: dict[str, str], log: IO[bytes]) -> None:
        self.env = {**os.environ, **env}
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.peaks: list[int | None] = []  # per process started, its last VmHWM read

    def start(self) -> None:
        command = [sys.executable, "-m", "bots.cli", "deliver"]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.peaks.append(None)

    def watch(self) -> None:
        """Note the peak memory; raise if the process stopped by itself."""
        assert self.process is not None
        peak = peak_rss_kib(self.process.pid)
        if peak is not None:
            self.peaks[-1] = peak
        if self.process.poll() is not None:
            raise RuntimeError(f"consult deliver stopped (exit code {self.process.returncode})")

    def kill(self) -> None:
        assert self.process is not None
        self.watch()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        peak = peak_rss_kib(self.process.pid)
        if peak is not None:
            self.peaks[-1] = peak
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Rows:
    """What the database says of the run's messages."""

    def __init__(self, database_url: str, run_id: int) -> None:
        self.engine = create_engine(database_url)
        self.run_id = run_id

    async def states(self) -> Counter[str]:
        async with self.engine.connect() as connection:
            found = await connection.execute(
                select(col(BroadcastMessage.state), func.count())
                .where(col(BroadcastMessage.run_id) == self.run_id)
                .group_by(col(BroadcastMessage.state))
            )
            return Counter({str(state): int(count) for state, count in found})

    async def by_participant(self) -> dict[int, str]:
        """participant id -> state of their message."""
        async with self.engine.connect() as connection:
            found = await connection.execute(
                select(col(BroadcastMessage.participant_id), col(BroadcastMessage.state)).where(
                    col(BroadcastMessage.run_id) == self.run_id
                )
            )
            # every bench message is a participant's
            return {int(participant or 0): str(state) for participant, state in found}

    async def close(self) -> None:
        await self.engine.dispose()


def measure_run(
    database_url: str, recipients: int, options: Options, scratch: Path, *, kill: bool
) -> dict[str, Any]:
    """Generate `recipients`, deliver them through `consult deliver` (killed once half are
    sent if `kill`), and compare the fakes' tallies with the database's rows."""
    generated = asyncio.run(generate(database_url, recipients, utc_now(), paid=options.paid))
    limits = fake_limits(options)
    expected_seconds = max(
        count / channel_limit(channel, options) for channel, count in generated.by_channel.items()
    )
    deadline_seconds = 3 * expected_seconds + options.patience_seconds + 4 * STALE_SECONDS
    with contextlib.ExitStack() as stack:
        fakes = _start_fakes(stack, limits)
        log = stack.enter_context(tempfile.TemporaryFile())
        delivery = Delivery(delivery_env(database_url, scratch, fakes, options), log)
        runner = stack.enter_context(asyncio.Runner())
        rows = Rows(database_url, generated.run_id)
        stack.callback(lambda: runner.run(rows.close()))
        killed_after: float | None = None
        timed_out = False
        try:
            started = time.monotonic()
            delivery.start()
            while True:
                states = runner.run(rows.states())
                delivery.watch()
                # Mid-way by the platforms' count: the rows of a batch are recorded together
                # once it is sent, and a kill is worth most while a batch is in flight.
                if kill and killed_after is None and _accepted(fakes) * 2 >= recipients:
                    delivery.kill()
                    killed_after = round(time.monotonic() - started, 2)
                    delivery.start()
                if sum(states[state] for state in SETTLED) == recipients:
                    break
                if time.monotonic() - started > deadline_seconds:
                    timed_out = True
                    break
                time.sleep(options.poll_seconds)
            seconds = time.monotonic() - started
            delivery.stop()
        except BaseException:
            delivery.stop()
            log.seek(0)
            print(log.read().decode(errors="replace")[-5000:], file=sys.stderr)
            raise
        states_of = runner.run(rows.by_participant())
        tallies = {
            channel: httpx.get(f"{served.url}/bench/tally", timeout=60).json()
            for channel, served in fakes.items()
        }
    channels = {
        channel: channel_figures(channel, tallies[channel], states_of, recipients, options)
        for channel in CHANNELS
    }
    return {
        "recipients": recipients,
        "generation_seconds": generated.seconds,
        "seconds": round(seconds, 2),
        "timed_out": timed_out,
        "killed_after_seconds": killed_after,
        "delivery_peak_rss_kib": delivery.peaks,
        "channels": channels,
        "duplicates": sum(figures["duplicates"] for figures in channels.values()),
        "lost": sum(figures["lost"] for figures in channels.values()),
        "unknown": sum(figures["rows"].get("unknown", 0) for figures in channels.values()),
    }


def _accepted(fakes: dict[str, Served]) -> int:
    """The messages the fakes have accepted so far, together."""
    return sum(
        int(httpx.get(f"{served.url}/bench/accepted", timeout=30).json()["accepted"])
        for served in fakes.values()
    )


def _start_fakes(
    stack: contextlib.ExitStack, limits: dict[str, dict[str, float]]
) -> dict[str, Served]:
    """The three fakes, started at once (each takes a second or two to import and listen),
    stopped when `stack` closes."""

    def start(channel: str) -> Served:
        port = free_port()
        served: Served = stack.enter_context(
            running(fake_command(channel, port, limits[channel]), {}, port)
        )
        return served

    with ThreadPoolExecutor(len(CHANNELS)) as pool:
        return dict(zip(CHANNELS, pool.map(start, CHANNELS), strict=True))


def channel_figures(
    channel: str,
    tally: dict[str, Any],
    states_of: dict[int, str],
    recipients: int,
    options: Options,
) -> dict[str, Any]:
    """One channel's figures from its fake's tally and the rows' states."""
    received: dict[str, int] = tally["per_recipient"]
    expected = expected_keys(recipients)[channel]
    rows: Counter[str] = Counter()
    sent_not_received = unsettled = unknown_received = 0
    for index in range(recipients):
        found = recipient(index)
        if found.channel != channel:
            continue
        state = states_of.get(index + 1, "missing")
        rows[state] += 1
        if state not in SETTLED:
            unsettled += 1
        elif state == "sent" and found.key not in received:
            sent_not_received += 1
        elif state == "unknown" and found.key in received:
            unknown_received += 1
    accepted, throttled = tally["accepted"], tally["throttled"]
    sends = accepted + throttled + tally["refused"]
    span = (tally["last"] or 0.0) - (tally["first"] or 0.0)
    # n messages accepted at the limit take (n - 1) / limit seconds from the first to the last
    rate = (accepted - 1) / span if accepted > 1 and span > 0 else None
    limit = channel_limit(channel, options)
    return {
        "limit_per_second": limit,
        "rate_per_second": None if rate is None else round(rate, 1),
        "share_of_limit": None if rate is None else round(rate / limit, 3),
        "sends": sends,
        "accepted": accepted,
        "throttled": throttled,
        "throttled_per_send": round(throttled / sends, 5) if sends else 0.0,
        "throttled_again": tally.get("throttled_again", 0),  # 429s to a send's retry
        "refused": tally["refused"],
        "duplicates": sum(1 for count in received.values() if count > 1),
        "strangers": len(set(received) - expected),  # messages to nobody of the audience
        "lost": unsettled + sent_not_received,
        "unsettled": unsettled,
        "sent_not_received": sent_not_received,
        "unknown_received": unknown_received,
        "rows": dict(rows),
    }


async def _bench_database(server_url: str) -> str | None:
    """A `consult_bench_broadcast` database on the server, or None when it does not answer. Its
    own name: other benchmarks empty `consult_bench`."""
    return await bench_database(server_url, "consult_bench_broadcast")


def measure_backend(
    database: Callable[[str], str], options: Options, scratch: Path
) -> dict[str, Any]:
    """The three runs on one database server (`database(run)`: the URL of each run's)."""
    small = max(len(CHANNELS), round(options.recipients * options.small_share))
    runs = {
        "small": measure_run(database("small"), small, options, scratch, kill=False),
        "full": measure_run(database("full"), options.recipients, options, scratch, kill=False),
    }
    if options.kill:
        runs["killed"] = measure_run(
            database("killed"), options.recipients, options, scratch, kill=True
        )
    peaks = [run["delivery_peak_rss_kib"][0] for run in (runs["small"], runs["full"])]
    ratio = round(peaks[1] / peaks[0], 2) if peaks[0] and peaks[1] else None
    return {"runs": runs, "peak_rss_full_over_small": ratio}


def run_broadcast(options: Options, postgres_url: str | None) -> dict[str, Any]:
    """The baseline, then the runs on SQLite and, if `postgres_url` answers, on PostgreSQL."""
    baseline = {
        channel: raw_rate(channel, seconds=options.baseline_seconds) for channel in CHANNELS
    }
    results = []
    with tempfile.TemporaryDirectory(prefix="consult-bench-") as scratch:
        folder = Path(scratch)
        backends: list[tuple[str, Callable[[str], str]]] = [
            ("sqlite", lambda run: f"sqlite:///{folder / f'broadcast-{run}.sqlite3'}")  # new files
        ]
        bench_url = asyncio.run(_bench_database(postgres_url)) if postgres_url else None
        if bench_url:
            backends.append(("postgresql", lambda run: bench_url))  # emptied by each run
        for name, database in backends:
            results.append({"backend": name, **measure_backend(database, options, folder)})
    return report(options, baseline, results)


def report(
    options: Options, baseline: dict[str, dict[str, Any]], results: list[dict[str, Any]]
) -> dict[str, Any]:
    """The figures as printed with --json: the options, the limits, the baseline (with each
    fake's raw rate over its limit) and each database's runs."""
    for channel, raw in baseline.items():
        raw["headroom_over_limit"] = round(raw["per_second"] / channel_limit(channel, options), 1)
    return {
        "benchmark": "broadcast",
        "recipients": options.recipients,
        "time_scale": options.time_scale,
        "paid": options.paid,
        "tier_upgraded": options.tier_upgraded,
        "limits_per_second": {channel: channel_limit(channel, options) for channel in CHANNELS},
        "limits_note": f"the platforms' documented limits x {options.time_scale} (--time-scale)",
        "delivery": "consult deliver, one process, pointed at the fakes (one process each)",
        "goals": GOALS,
        "baseline": baseline,
        "results": results,
    }


def table(report: dict[str, Any]) -> str:
    lines = [
        f"recipients {report['recipients']}, limits x{report['time_scale']} (--time-scale): "
        + ", ".join(f"{c} {v:g}/s" for c, v in report["limits_per_second"].items()),
        "baseline (a tight loop straight at an unlimited fake): "
        + ", ".join(
            f"{c} {b['per_second']:g}/s ({b['headroom_over_limit']:g}x the limit)"
            for c, b in report["baseline"].items()
        ),
        f"{'backend':<10} {'run':<7} {'channel':<9} {'rate/s':>8} {'share':>6} {'429/send':>8} "
        f"{'dup':>4} {'lost':>5} {'unknown':>7} {'sent':>7} {'failed':>6}",
    ]
    for result in report["results"]:
        for name, run in result["runs"].items():
            for channel, f in run["channels"].items():
                share = "-" if f["share_of_limit"] is None else f"{f['share_of_limit']:.0%}"
                rate = "-" if f["rate_per_second"] is None else f"{f['rate_per_second']:g}"
                lines.append(
                    f"{result['backend']:<10} {name:<7} {channel:<9} {rate:>8} {share:>6} "
                    f"{f['throttled_per_send']:>8.2%} {f['duplicates']:>4} {f['lost']:>5} "
                    f"{f['rows'].get('unknown', 0):>7} {f['rows'].get('sent', 0):>7} "
                    f"{f['rows'].get('failed', 0):>6}"
                )
            peaks = ", ".join(
                f"{p / 1024:.0f} MiB" if p else "-" for p in run["delivery_peak_rss_kib"]
            )
            extra = " TIMED OUT" if run["timed_out"] else ""
            if run["killed_after_seconds"] is not None:
                extra += f" (killed after {run['killed_after_seconds']} s, then restarted)"
            lines.append(
                f"{result['backend']:<10} {name:<7} {run['recipients']} recipients in "
                f"{run['seconds']} s; delivery peak RSS {peaks}{extra}"
            )
        lines.append(
            f"{result['backend']:<10} peak RSS full/small: {result['peak_rss_full_over_small']}"
            " (flat: about 1)"
        )
    return "\n".join(lines)

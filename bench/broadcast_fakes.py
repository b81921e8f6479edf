"""The platforms of `consult bench broadcast`, each fake in a process of its own.

`python -m bench.broadcast_fakes CHANNEL --port P --overall R [--per-recipient R] [--paid R]`
serves one fake (`bench.fakes`: Telegram's Bot API, WhatsApp's Cloud API, Slack's Web API)
enforcing the given limits (messages per second; 429 past them), or none with `--unlimited`,
and counts what it accepted per recipient. `GET /bench/tally` answers those counts: the harness
reads duplicates and missing recipients from them, and the achieved rate from the times of the
first and last message accepted (`time.monotonic`, one clock for every process of the machine).

`raw_rate` is the run's baseline: a tight client loop straight at an unlimited fake, no
database, no pacing, to tell the pipeline's overhead from what the machine can do at all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bench.fakes import slack_api, whatsapp_api
from bench.fakes.telegram_api import Call as TelegramCall
from bench.fakes.telegram_api import FakeTelegram, RateLimits
from bench.processes import free_port, running

CHANNELS = ("telegram", "whatsapp", "slack")
TELEGRAM_TOKEN = "4242424242:BROADCAST-bench"
WHATSAPP_TOKEN = "bench-whatsapp-token"
WHATSAPP_NUMBER = whatsapp_api.PHONE_NUMBER_ID
SLACK_TEAM = slack_api.TEAM
SLACK_TOKEN = slack_api.BOT_TOKEN
RETRY_AFTER = 1  # seconds, in the 429s of WhatsApp and Slack (Telegram computes its own)


@dataclass
class Tally:
    """What one fake made of the messages sent to it."""

    accepted: Counter[str] = field(default_factory=Counter)  # recipient -> messages accepted
    throttled: int = 0  # answered 429
    throttled_again: int = 0  # of which to a recipient already answered 429: retries
    refused: int = 0  # answered another error
    first: float | None = None
    last: float | None = None
    # (time, status, recipient) of every send, kept when CONSULT_BENCH_TRACE names a file
    trace: list[tuple[float, int, str]] | None = None
    _throttled_to: set[str] = field(default_factory=set)

    def accept(self, recipient: str) -> None:
        self.accepted[recipient] += 1
        self.last = time.monotonic()
        if self.first is None:
            self.first = self.last
        if self.trace is not None:
            self.trace.append((self.last, 200, recipient))

    def throttle(self, recipient: str | None) -> None:
        """Count a 429 to `recipient` (None: unknown here, never counted as a retry)."""
        self.throttled += 1
        if recipient is not None and recipient in self._throttled_to:
            self.throttled_again += 1
        if recipient is not None:
            self._throttled_to.add(recipient)
        if self.trace is not None:
            self.trace.append((time.monotonic(), 429, recipient or "?"))

    async def watch_loop(self, every: float = 0.005) -> None:
        """Trace the stalls of this fake's event loop (status 0, the lag in ms): a request
        read late is counted late, in a window it was not sent in."""
        assert self.trace is not None
        while True:
            before = time.monotonic()
            await asyncio.sleep(every)
            lag = time.monotonic() - before - every
            if lag > 0.01:
                self.trace.append((time.monotonic(), 0, f"{lag * 1000:.0f}"))

    def write_trace(self, path: str) -> None:
        if self.trace is not None:
            Path(path).write_text("".join(f"{t:.4f} {s} {r}\n" for t, s, r in self.trace))

    def report(self) -> dict[str, Any]:
        return {
            "accepted": sum(self.accepted.values()),
            "throttled": self.throttled,
            "throttled_again": self.throttled_again,
            "refused": self.refused,
            "first": self.first,
            "last": self.last,
            "per_recipient": dict(self.accepted),
        }


def telegram_app(limits: RateLimits | None, tally: Tally) -> ASGIApp:
    fake = FakeTelegram(TELEGRAM_TOKEN, limits=limits)

    def heard(call: TelegramCall) -> None:  # accepted calls only
        if call.method.lower() in ("sendmessage", "sendphoto"):
            tally.accept(str(call.params.get("chat_id")))

    fake.listeners.append(heard)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].lower().endswith("/sendmessage"):
            await fake.asgi(scope, receive, send)
            return

        async def answering(message: Message) -> None:  # the refusals, by their status
            if message["type"] == "http.response.start" and message["status"] == 429:
                tally.throttle(None)  # the chat is in the body, unread here
            elif message["type"] == "http.response.start" and message["status"] != 200:
                tally.refused += 1
            await send(message)

        await fake.asgi(scope, receive, answering)

    return app


def whatsapp_app(per_second: float | None, tally: Tally) -> ASGIApp:
    limit = None if per_second is None else max(1, round(per_second))
    fake = whatsapp_api.FakeGraphAPI(WHATSAPP_TOKEN, max_per_second=limit, retry_after=RETRY_AFTER)

    def heard(call: whatsapp_api.Call) -> None:
        if call.status == 200:
            tally.accept(str(call.body["to"]))
        elif call.status == 429:
            tally.throttle(str(call.body["to"]))
        else:
            tally.refused += 1
        fake.calls.clear()  # the tally is what the bench reads: memory stays flat

    fake.listeners.append(heard)
    return fake.app()


def slack_app(per_second: float | None, per_conversation: float | None, tally: Tally) -> ASGIApp:
    fake = slack_api.FakeSlack()
    fake.retry_after = RETRY_AFTER
    if per_second is not None:
        fake.rates["chat.postMessage"] = per_second
    if per_conversation is not None:
        fake.conversation_rates["chat.postMessage"] = per_conversation

    def heard(call: slack_api.Call) -> None:
        if call.method == "chat.postMessage":
            if call.status == 429:
                tally.throttle(str(call.args.get("channel")))
            elif call.answer.get("ok"):
                tally.accept(str(call.args.get("channel")))
            else:
                tally.refused += 1
        fake.calls.clear()
        fake.messages.clear()

    fake.listeners.append(heard)
    return fake.app


def with_tally(app: ASGIApp, tally: Tally, trace: str | None = None) -> ASGIApp:
    """`app`, plus `/healthz`, `/bench/tally` and `/bench/accepted` (the messages accepted so
    far, without the counts per recipient). With a `trace` file, the tally also writes every
    send's time, status and recipient to it, and the fake's own stalls."""
    watching: list[asyncio.Task[None]] = []
    if trace:
        tally.trace = []

    async def served(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if trace and not watching:
            watching.append(asyncio.create_task(tally.watch_loop()))
        if path in ("/healthz", "/bench/tally", "/bench/accepted"):
            answer: dict[str, Any] = {"ok": True}
            if path == "/bench/tally":
                answer = tally.report()
                if trace:
                    tally.write_trace(trace)
            elif path == "/bench/accepted":
                answer = {"accepted": sum(tally.accepted.values())}
            body = json.dumps(answer)
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body.encode()})
            return
        await app(scope, receive, send)

    return served


def fake_app(args: argparse.Namespace, tally: Tally) -> ASGIApp:
    overall = None if args.unlimited else args.overall
    per_recipient = None if args.unlimited else args.per_recipient
    if args.channel == "telegram":
        limits = None
        if overall is not None:
            chat = per_recipient or 1e9
            paid = args.paid or overall
            limits = RateLimits(
                per_chat_per_second=chat,
                per_chat_burst=max(3.0, chat),
                overall_per_second=overall,
                overall_burst=overall,
                paid_per_second=paid,
                paid_burst=paid,
            )
        return telegram_app(limits, tally)
    if args.channel == "whatsapp":
        return whatsapp_app(overall, tally)
    return slack_app(overall, per_recipient, tally)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.broadcast_fakes")
    parser.add_argument("channel", choices=CHANNELS)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--overall", type=float, default=1.0, help="messages per second")
    parser.add_argument("--per-recipient", type=float, help="messages per second to one chat")
    parser.add_argument("--paid", type=float, help="Telegram: paid broadcasts' messages/s")
    parser.add_argument("--unlimited", action="store_true")
    args = parser.parse_args(argv)
    tally = Tally()
    # CONSULT_BENCH_TRACE=DIR: each fake writes its trace there, to tell the 429s' causes
    folder = os.environ.get("CONSULT_BENCH_TRACE")
    trace = f"{folder}/{args.channel}-{os.getpid()}.trace" if folder else None
    config = uvicorn.Config(
        with_tally(fake_app(args, tally), tally, trace),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ws="none",
    )
    uvicorn.Server(config).run()
    return 0


def fake_command(channel: str, port: int, limits: dict[str, float] | None) -> list[str]:
    """The command line of one fake: `limits` (overall, per_recipient, paid) or None for none."""
    command = [sys.executable, "-m", "bench.broadcast_fakes", channel, "--port", str(port)]
    if limits is None:
        return [*command, "--unlimited"]
    for name, value in limits.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    return command


def send_request(channel: str, base: str, index: int) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(url, JSON body, headers) of one plain message as our channels send it."""
    if channel == "telegram":
        body: dict[str, Any] = {"chat_id": 10_000_000 + index, "text": "Hello"}
        return f"{base}/bot{TELEGRAM_TOKEN}/sendMessage", body, {}
    if channel == "whatsapp":
        body = {"messaging_product": "whatsapp", "to": f"3361{index:07d}", "type": "text"}
        body["text"] = {"body": "Hello"}
        return (
            f"{base}/{WHATSAPP_NUMBER}/messages",
            body,
            {"authorization": f"Bearer {WHATSAPP_TOKEN}"},
        )
    body = {"channel": f"D{index:09d}", "text": "Hello"}
    return f"{base}/api/chat.postMessage", body, {"authorization": f"Bearer {SLACK_TOKEN}"}


async def _hammer(channel: str, base: str, seconds: float, concurrency: int) -> None:
    indexes = iter(range(10**9))
    until = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as client:

        async def loop() -> None:
            while time.monotonic() < until:
                url, body, headers = send_request(channel, base, next(indexes))
                async with client.post(url, json=body, headers=headers) as answer:
                    await answer.read()

        await asyncio.gather(*(loop() for _ in range(concurrency)))


def raw_rate(channel: str, seconds: float = 3.0, concurrency: int = 32) -> dict[str, Any]:
    """Messages per second an unlimited fake of `channel` accepts from a tight loop of
    `concurrency` clients in this process, with the fake's and this loop's CPU shares."""
    port = free_port()
    with running(fake_command(channel, port, None), {}, port) as served:
        cpu = time.process_time(), served.cpu_seconds()
        started = time.monotonic()
        asyncio.run(_hammer(channel, served.url, seconds, concurrency))
        elapsed = time.monotonic() - started
        fake_cpu = served.cpu_seconds() - cpu[1]
        client_cpu = time.process_time() - cpu[0]
        tally = httpx.get(f"{served.url}/bench/tally", timeout=30).json()
    span = (tally["last"] or 0) - (tally["first"] or 0)
    return {
        "accepted": tally["accepted"],
        "per_second": round(tally["accepted"] / span, 1) if span > 0 else 0.0,
        "fake_cpu_share": round(fake_cpu / elapsed, 2),
        "client_cpu_share": round(client_cpu / elapsed, 2),
    }


if __name__ == "__main__":
    sys.exit(main())

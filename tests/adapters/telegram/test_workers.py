"""Two `consult serve` workers on one PostgreSQL, every Telegram update delivered twice at once.

Telegram redelivers an update whenever a webhook answer is late or lost, and behind a load
balancer the two copies can reach two workers at the same moment. Many participants play at
the same time; each of their updates is posted twice concurrently. Each must be answered once,
and each vote and each update recorded once.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bench.fakes.telegram_api import FakeTelegram
from bench.processes import consult_server
from core.models import ProcessedEvent, Proposal
from tests.adapters.telegram.test_telegram_http import environment
from tests.conftest import Loader

TOKEN = "123456789:AAH-test_token"
PARTICIPANTS = 24
FIRST_CHAT = 70_001
# (what the participant does, what the reply must contain); None: the /start deep link
SCRIPT: list[tuple[str | None, str]] = [
    (None, "Do you agree?"),
    ("I agree", "Your age?"),
    ("I'd rather not say", "Proposal 1/4"),
    ("Agree", "Noted. Want to say more?"),
    ("Next proposal", "Proposal 2/4"),
    ("Disagree", "Noted. Want to say more?"),
]
VOTES = 2  # taps in SCRIPT that are votes
TAPS = len(SCRIPT) - 1


async def test_two_workers_answer_each_raced_update_once(
    database_url: str,
    tmp_path: Path,
    load_consultation: Loader,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("several worker processes share a database only on PostgreSQL")
    await load_consultation()
    with FakeTelegram(TOKEN, bot_username="elders_bot", limits=None) as fake:
        env = {
            **environment(database_url, tmp_path, fake),
            "CONSULT_TELEGRAM_CHAT_MESSAGES_PER_SECOND": "100",
            "CONSULT_TELEGRAM_MESSAGES_PER_SECOND": "1000",
            # a slow answer would be a 503 and a retry; here every copy should get its 200
            "CONSULT_WEBHOOK_HANDLING_TIMEOUT": "60",
        }
        with consult_server(env, workers=2) as url:
            fake.webhook_url = f"{url}/webhooks/telegram"
            fake.webhook_secret = env["CONSULT_TELEGRAM_WEBHOOK_SECRET"]
            since = await database_clock(sessions)
            async with httpx.AsyncClient(timeout=60) as client:
                control = FIRST_CHAT - 1  # one participant whose updates arrive once each
                await play(fake, client, control, copies=1)
                chats = range(FIRST_CHAT, FIRST_CHAT + PARTICIPANTS)
                await asyncio.gather(*(play(fake, client, chat, copies=2) for chat in chats))
            workers = await processes_that_served(sessions, since)
        # Stopping the server is the barrier: each worker finishes its requests' tasks, sends
        # included, before it exits. (A follow-up update would not do: it may reach the other
        # worker, and the order of one chat's replies holds within a worker only.)

        expected = replies_to(fake, control)
        assert expected >= len(SCRIPT)  # at least one reply per update
        replies = {chat: replies_to(fake, chat) for chat in chats}
        assert replies == dict.fromkeys(chats, expected)
        assert fake.count("sendMessage", ok=False) == 0
        taps = TAPS * (PARTICIPANTS + 1)
        assert fake.count("answerCallbackQuery", ok=True) == taps
        assert fake.count("answerCallbackQuery", ok=False) == 0  # no query answered twice
        assert fake.count("editMessageText") == taps

    async with sessions() as session:
        counted = await session.exec(select(func.sum(Proposal.vote_count)))
        assert counted.one() == VOTES * (PARTICIPANTS + 1)
        events = await session.exec(select(func.count()).select_from(ProcessedEvent))
        assert events.one() == len(SCRIPT) * (PARTICIPANTS + 1)
    if Path("/proc/net/tcp").exists():  # where processes_that_served can tell
        assert len(workers) == 2, f"only worker processes {workers} served the updates"


def replies_to(fake: FakeTelegram, chat: int) -> int:
    """Messages sent to the chat, and messages edited into the next question."""
    return len(
        fake.calls("sendMessage", chat_id=chat) + fake.calls("editMessageText", chat_id=chat)
    )


async def play(fake: FakeTelegram, client: httpx.AsyncClient, chat: int, *, copies: int) -> None:
    """Play SCRIPT for one participant, posting each update `copies` times at once."""
    for button, expect in SCRIPT:
        before = len(fake.shown_texts(chat))
        update = (
            fake.start_update(chat, "elders", language_code="en")
            if button is None
            else fake.tap_update(chat, button)
        )
        answers = await asyncio.gather(
            *(fake.adeliver(update, client=client) for _ in range(copies))
        )
        assert [answer.status_code for answer in answers] == [200] * copies
        await replied(fake, chat, before, expect)


async def replied(
    fake: FakeTelegram, chat: int, since: int, expect: str, timeout: float = 30
) -> None:
    """Wait until a message containing `expect` is among the chat's messages from `since` on."""
    deadline = time.monotonic() + timeout
    while not any(expect in sent for sent in fake.shown_texts(chat)[since:]):
        assert time.monotonic() < deadline, f"no {expect!r} in chat {chat} in time"
        await asyncio.sleep(0.02)


async def database_clock(sessions: async_sessionmaker[AsyncSession]) -> Any:
    async with sessions() as session:
        return (await session.exec(select(func.clock_timestamp()))).one()


async def processes_that_served(sessions: async_sessionmaker[AsyncSession], since: Any) -> set[int]:
    """The local processes, other than this one, whose PostgreSQL connections ran a statement
    after `since`: the database's view of a connection gives its client port, /proc gives the
    process holding that socket (Linux only; an empty set elsewhere)."""
    async with sessions() as session:
        connection = await session.connection()
        found = await connection.execute(
            text(
                "SELECT client_port FROM pg_stat_activity WHERE datname = current_database() "
                "AND state_change > :since AND pid <> pg_backend_pid()"
            ),
            {"since": since},
        )
        ports = {row[0] for row in found.all()}
    inodes = socket_inodes(ports)
    owners = set()
    for pid in filter(str.isdigit, os.listdir("/proc") if os.path.isdir("/proc") else []):
        try:
            links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        except OSError:  # gone, or not ours to look at
            continue
        if links & {f"socket:[{inode}]" for inode in inodes}:
            owners.add(int(pid))
    return owners - {os.getpid()}


def socket_inodes(local_ports: set[int]) -> set[str]:
    """Inodes of this machine's TCP sockets bound to one of `local_ports`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rpartition(":")[2], 16) in local_ports:
                inodes.add(fields[9])
    return inodes

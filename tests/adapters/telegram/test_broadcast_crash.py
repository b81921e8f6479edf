"""`consult serve` killed with SIGKILL while a broadcast's batch is on its way to Telegram (the
fake holds one request unanswered): the batch was claimed in a committed transaction, so the
restarted server marks its messages unknown (they may have arrived) and sends none of them
again; a broadcast queued after the restart goes out, once to each. Nothing is lost: every
message ends sent or unknown."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from pathlib import Path

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bench.fakes.telegram_api import FakeTelegram
from bench.processes import consult_process
from core.flow import utc_now
from core.identity import enrol
from tests.adapters.telegram.test_telegram_http import TOKEN, environment
from tests.bots.broadcasting import queued_broadcast, states
from tests.conftest import Loader
from tests.crash import TAKEOVER, silence_dead_workers

SECRET = b"e2e-secret"  # the server's CONSULT_SECRET_KEY (environment)
CHATS = [81_001, 81_002, 81_003]
HELD = CHATS[1]
FIRST, SECOND = {"fr": "Premier message"}, {"fr": "Second message"}


async def test_a_killed_worker_leaves_its_batch_unknown_and_sends_nothing_twice(
    database_url: str,
    tmp_path: Path,
    load_consultation: Loader,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    consultation = await load_consultation()
    people = await enrolled_with(sessions)
    recipients = [(p, "telegram", "fr") for p in people]
    first = await queued_broadcast(sessions, utc_now, consultation, recipients, texts=FIRST)
    with FakeTelegram(TOKEN, bot_username="elders_bot", limits=None) as fake:
        env = {
            **environment(database_url, tmp_path, fake),
            **TAKEOVER,
            "CONSULT_BROADCASTS_EVERY_SECONDS": "0.2",
        }
        arrived = threading.Event()
        fake.hold = lambda method, params: params.get("chat_id") == HELD
        fake.held_listeners.append(lambda method, params: arrived.set())
        with consult_process(env) as served:
            assert await asyncio.to_thread(arrived.wait, 30), "the batch never left"
            os.kill(served.pid, signal.SIGKILL)
        assert {state for state, _ in await states(sessions, first)} == {"claimed"}
        fake.hold = None
        await silence_dead_workers(sessions)  # the next server's first round finds it dead
        with consult_process(env):
            second = await queued_broadcast(
                sessions, utc_now, consultation, recipients, texts=SECOND
            )
            fake.wait_for(
                lambda: all(SECOND["fr"] in fake.sent_texts(chat) for chat in CHATS), timeout=30
            )
    assert await states(sessions, first) == [("unknown", "worker-died")] * 3
    assert await states(sessions, second) == [("sent", None)] * 3
    for chat in CHATS:  # never sent again by the restarted server
        told = [c for c in fake.calls("sendMessage", chat_id=chat) if "Premier" in c.params["text"]]
        assert len(told) <= 1, chat
    assert [method for method, _ in fake.held] == ["sendMessage"]


async def enrolled_with(sessions: async_sessionmaker[AsyncSession]) -> list[int]:
    """The participants of CHATS, as the server (its secret) knows them."""
    ids = []
    async with sessions() as session, session.begin():
        for chat in CHATS:
            enrolment = await enrol(session, SECRET, "telegram", str(chat), str(chat), utc_now())
            assert enrolment.participant.id is not None
            ids.append(enrolment.participant.id)
    return ids

"""`consult serve` killed with SIGKILL around an author's notice: told exactly once, or, if the
server died while Telegram may have been taking the message, marked unknown and never told twice.

1. A decision is committed (from the CLI) while the server's notices worker is between rounds;
   the server is killed before it sends the notice; the restarted server sends it, once.
2. A notice is claimed and its request is on its way to Telegram (the fake holds it unanswered)
   when the server is killed; the restarted server marks it unknown and does not send it again,
   until an organiser says to (`consult moderation notices --resend`).

Without the outbox the first notice dies with the process; without the claim committed before
the send, the second is sent again by the restarted server.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
from pathlib import Path

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bench.fakes.telegram_api import FakeTelegram
from bench.processes import consult_process
from core.definitions import settings_of
from core.flow import utc_now
from core.identity import enrol
from core.models import AuditEntry, Consultation, Notice
from core.proposals import submit_proposal
from tests.adapters.telegram.test_telegram_http import TOKEN, environment
from tests.bots.test_cli import consult
from tests.conftest import Loader
from tests.crash import TAKEOVER, silence_dead_workers

QUEUED_CHAT, HELD_CHAT, BARRIER_CHAT, AFTER_CHAT = 71_001, 71_002, 71_003, 71_004
SECRET = b"e2e-secret"  # the server's CONSULT_SECRET_KEY (environment)
TOLD = "Your proposal is now shown to other participants"


async def _pending_by(
    sessions: async_sessionmaker[AsyncSession], consultation: Consultation, chat: int
) -> int:
    """A pending proposal by the Telegram participant of `chat` (their address)."""
    async with sessions() as session, session.begin():
        # The server's clock is the real one: so are the times of this test's data.
        enrolment = await enrol(session, SECRET, "telegram", str(chat), str(chat), utc_now())
        enrolment.participant.locale = "en"
        session.add(enrolment.participant)
        assert enrolment.participant.id is not None and consultation.id is not None
        typed = f"We should call chat {chat} back"
        proposal = await submit_proposal(
            session,
            enrolment.participant.id,
            consultation.id,
            typed,
            "en",
            settings_of(consultation),
            utc_now(),
        )
        assert proposal.id is not None
        return proposal.id


async def _state(sessions: async_sessionmaker[AsyncSession], proposal_id: int) -> str:
    async with sessions() as session:
        found = await session.exec(select(Notice.state).where(Notice.proposal_id == proposal_id))
        return found.one()


def _told(fake: FakeTelegram, chat: int) -> list[str]:
    return [text for text in fake.sent_texts(chat) if text.startswith(TOLD)]


def _accept(env: dict[str, str], proposal_id: int) -> None:
    decided = consult(["moderation", "accept", str(proposal_id)], env)
    assert decided.returncode == 0, decided.stderr


async def test_a_killed_server_tells_each_author_once_or_says_it_may_have(
    database_url: str,
    tmp_path: Path,
    load_consultation: Loader,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    consultation = await load_consultation()
    queued = await _pending_by(sessions, consultation, QUEUED_CHAT)
    held = await _pending_by(sessions, consultation, HELD_CHAT)
    barrier = await _pending_by(sessions, consultation, BARRIER_CHAT)
    after = await _pending_by(sessions, consultation, AFTER_CHAT)
    with FakeTelegram(TOKEN, bot_username="elders_bot", limits=None) as fake:
        base = {**environment(database_url, tmp_path, fake), **TAKEOVER}
        idle = {**base, "CONSULT_NOTICES_EVERY_SECONDS": "3600"}  # one round, at start
        busy = {**base, "CONSULT_NOTICES_EVERY_SECONDS": "0.2"}
        arrived = threading.Event()
        fake.hold = lambda method, params: params.get("chat_id") == HELD_CHAT
        fake.held_listeners.append(lambda method, params: arrived.set())

        # 1. Decided, not sent yet, killed: the next server sends it, once.
        with consult_process(idle) as first:
            _accept(idle, queued)
            assert await _state(sessions, queued) == "queued"
            os.kill(first.pid, signal.SIGKILL)
        with consult_process(busy) as second:
            fake.wait_for(lambda: _told(fake, QUEUED_CHAT), timeout=30)

            # 2. On its way to Telegram when the server dies: unknown, never sent again.
            _accept(busy, held)
            assert await asyncio.to_thread(arrived.wait, 30), "the notice never left"
            assert await _state(sessions, held) == "claimed"
            os.kill(second.pid, signal.SIGKILL)
        await silence_dead_workers(sessions)  # the next server's first round finds it dead
        with consult_process(busy):
            _accept(busy, barrier)  # sent after the restarted server's first round
            fake.wait_for(lambda: _told(fake, BARRIER_CHAT), timeout=30)
            assert await _state(sessions, held) == "unknown"
            shown = consult(["moderation", "notices", "elders", "--json"], busy)
            assert shown.returncode == 0, shown.stderr
            (unknown,) = json.loads(shown.stdout)["needing_attention"]

            # 3. An organiser who checked with the author decides to send it again.
            fake.hold = None
            resend = ["moderation", "notices", "elders", "--resend", str(unknown["notice"])]
            assert consult(resend, busy).returncode == 0
            fake.wait_for(lambda: _told(fake, HELD_CHAT), timeout=30)
            # Decided after that send, so sent by a later round, which begins once the round
            # that sent the notice again has recorded it.
            _accept(busy, after)
            fake.wait_for(lambda: _told(fake, AFTER_CHAT), timeout=30)
            assert await _state(sessions, held) == "sent"
            again = consult(resend, busy)
            assert again.returncode == 2 and "only unknown and failed" in again.stderr
        assert len(_told(fake, QUEUED_CHAT)) == 1
        assert [method for method, params in fake.held] == ["sendMessage"]
        # Never resent by the servers: the one call that reached Telegram is the organiser's.
        assert len(fake.calls("sendMessage", chat_id=HELD_CHAT)) == 1
    assert await _state(sessions, queued) == "sent"
    assert unknown["problem"] == "worker-died" and unknown["proposal"] == held
    assert str(HELD_CHAT) not in shown.stdout
    async with sessions() as session:
        states = (await session.exec(select(Notice.state).order_by(col(Notice.id)))).all()
        audit = (await session.exec(select(AuditEntry.action, AuditEntry.target))).all()
    assert states == ["sent", "sent", "sent", "sent"]
    assert ("notice.resend", f"notice:{unknown['notice']}") in audit

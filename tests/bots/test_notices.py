"""The author is told, end to end on Telegram: a participant proposes through the fake Bot
API over real HTTP, a moderator decides from the CLI, and `consult serve` (or `consult deliver`)
sends the notice in the author's language; on both databases."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bench.fakes.telegram_api import FakeTelegram
from bench.processes import ROOT, consult_server
from core.i18n import Translator
from core.models import Notice, Proposal
from tests.adapters.telegram.test_telegram_http import TOKEN, environment, new_text, say, until
from tests.bots.test_cli import consult
from tests.conftest import Loader
from tests.support import proposal_id_of

AMELIE, BOB = 3301, 4401


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram(TOKEN, bot_username="elders_bot") as telegram:
        yield telegram


def join(fake: FakeTelegram, chat: int, locale: str) -> None:
    """`chat` starts the consultation and consents."""
    fake.user(chat, first_name="Someone", language_code=locale)
    consent = Translator(locale)("consent.accept")
    assert fake.deliver(fake.start_update(chat, "elders", language_code=locale)).status_code == 200
    until(fake, lambda: consent in [label for label, _ in fake.last_keyboard(chat)])
    before = len(fake.shown_texts(chat))
    assert fake.tap(chat, consent).status_code == 200
    until(fake, lambda: len(fake.shown_texts(chat)) > before)


def propose(fake: FakeTelegram, chat: int, locale: str, typed: str) -> None:
    """`chat`, who joined, sends `typed` as a proposal with /propose."""
    t = Translator(locale)
    prompt = t("propose.prompt", prefix="", minimum=0, maximum=0)[:12]
    say(fake, chat, fake.text_update(chat, "/propose", language_code=locale), prompt)
    say(fake, chat, fake.text_update(chat, typed, language_code=locale), typed)
    before = len(fake.shown_texts(chat))
    assert fake.tap(chat, t("propose.confirm.yes")).status_code == 200
    until(fake, new_text(fake, chat, before, t("propose.thanks.pending")[:20]))


@contextmanager
def _serving(env: dict[str, str], fake: FakeTelegram) -> Iterator[str]:
    """`consult serve` with `env`, the fake Telegram sending its updates to it; its URL."""
    with consult_server(env) as url:
        fake.webhook_url = f"{url}/webhooks/telegram"
        fake.webhook_secret = env["CONSULT_TELEGRAM_WEBHOOK_SECRET"]
        yield url


async def _accepted_seed(sessions: async_sessionmaker[AsyncSession]) -> Proposal:
    async with sessions() as session:
        seeded = select(Proposal).where(Proposal.locale == "fr", Proposal.status == "accepted")
        return (await session.exec(seeded.limit(1))).one()


async def test_the_author_is_told_in_their_language_once_by_the_server(
    database_url: str,
    tmp_path: Path,
    fake: FakeTelegram,
    load_consultation: Loader,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await load_consultation()
    env = {**environment(database_url, tmp_path, fake), "CONSULT_NOTICES_EVERY_SECONDS": "0.2"}
    existing = await _accepted_seed(sessions)
    with _serving(env, fake):
        await asyncio.to_thread(join, fake, AMELIE, "fr")
        await asyncio.to_thread(join, fake, BOB, "en")
        await asyncio.to_thread(propose, fake, AMELIE, "fr", "Il faut des bancs partout")
        await asyncio.to_thread(propose, fake, AMELIE, "fr", "Il faut visiter nos aînés")
        await asyncio.to_thread(propose, fake, BOB, "en", "We should sing to them")
        bancs = await proposal_id_of(sessions, "bancs partout")
        visites = await proposal_id_of(sessions, "visiter nos aînés")
        sing = await proposal_id_of(sessions, "sing to them")

        before = len(fake.shown_texts(AMELIE))
        accepted = consult(["moderation", "accept", str(bancs)], env)
        assert accepted.returncode == 0, accepted.stderr
        until(fake, new_text(fake, AMELIE, before, "présentée aux autres participants"))
        assert "Il faut des bancs partout" in fake.shown_texts(AMELIE)[-1]

        before = len(fake.shown_texts(AMELIE))
        duplicate = ["--reason", "already-exists", "--duplicate-of", str(existing.id)]
        refused = consult(["moderation", "refuse", str(visites), *duplicate], env)
        assert refused.returncode == 0, refused.stderr
        until(fake, new_text(fake, AMELIE, before, "n'a pas été retenue"))
        told = fake.shown_texts(AMELIE)[-1]
        assert "Il faut visiter nos aînés" in told and existing.text in told

        fake.blocked.add(BOB)  # Bob blocked the bot since: Telegram refuses, nothing retried
        calls = len(fake.calls())
        refused = consult(["moderation", "refuse", str(sing), "--reason", "off-topic"], env)
        assert refused.returncode == 0, refused.stderr
        until(fake, lambda: any("not accepted" in c.params["text"] for c in fake.calls()[calls:]))

        # A barrier: Amélie's next notice comes after anything the earlier ones could send.
        await asyncio.to_thread(propose, fake, AMELIE, "fr", "Il faut des cafés seniors")
        cafes = await proposal_id_of(sessions, "cafés seniors")
        before = len(fake.shown_texts(AMELIE))
        assert consult(["moderation", "accept", str(cafes)], env).returncode == 0
        until(fake, new_text(fake, AMELIE, before, "Il faut des cafés seniors"))

    told = ("est désormais présentée", "n'a pas été retenue")
    notices = [text for text in fake.shown_texts(AMELIE) if any(t in text for t in told)]
    assert len(notices) == 3  # each once
    to_bob = [
        c for c in fake.calls("sendMessage", chat_id=BOB) if "not accepted" in c.params["text"]
    ]
    assert [call.status for call in to_bob] == [403]  # refused, not tried again
    async with sessions() as session:
        states = (await session.exec(select(Notice.state).order_by(col(Notice.id)))).all()
    assert states == ["sent", "sent", "failed", "sent"]

    shown = consult(["moderation", "notices", "elders"], env)
    assert shown.returncode == 0, shown.stderr
    assert "Notices to the authors of 'elders': sent 3, failed 1." in shown.stdout
    assert "None needs your attention." in shown.stdout
    assert str(AMELIE) not in shown.stdout and str(BOB) not in shown.stdout


async def test_consult_deliver_sends_what_the_cli_decided_and_exits(
    database_url: str,
    tmp_path: Path,
    fake: FakeTelegram,
    load_consultation: Loader,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await load_consultation()
    env = environment(database_url, tmp_path, fake)
    with _serving(env, fake):
        await asyncio.to_thread(join, fake, BOB, "en")
        await asyncio.to_thread(propose, fake, BOB, "en", "We should plant trees")
    proposal = await proposal_id_of(sessions, "plant trees")  # the server is stopped now
    assert consult(["moderation", "accept", str(proposal)], env).returncode == 0
    silent = consult(["moderation", "refuse", str(proposal), "--reason", "other"], env)
    assert silent.returncode == 2  # decided already: no second notice either
    calls = len(fake.calls("sendMessage", chat_id=BOB))

    delivered = consult(["deliver", "--once"], env)
    assert delivered.returncode == 0, delivered.stderr
    drained = "(notices and broadcasts): 1 sent, 0 failed, 0 waiting, 0 unknown, 0 to try again"
    assert drained in delivered.stdout
    assert fake.sent_texts(BOB)[-1].startswith("Your proposal is now shown to other participants")
    again = consult(["deliver", "--once"], env)
    assert "(notices and broadcasts): 0 sent" in again.stdout
    assert len(fake.calls("sendMessage", chat_id=BOB)) == calls + 1

    no_channel = {k: v for k, v in env.items() if not k.startswith("CONSULT_TELEGRAM")}
    refused = consult(["deliver", "--once"], no_channel)
    assert refused.returncode == 2
    assert "no channel is configured" in refused.stderr
    unknown = consult(["moderation", "notices", "nowhere"], env)
    assert unknown.returncode == 2


async def test_consult_deliver_runs_until_sigterm(
    database_url: str,
    tmp_path: Path,
    fake: FakeTelegram,
    load_consultation: Loader,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await load_consultation()
    env = {**environment(database_url, tmp_path, fake), "CONSULT_NOTICES_EVERY_SECONDS": "0.2"}
    with _serving(env, fake):
        await asyncio.to_thread(join, fake, BOB, "en")
        await asyncio.to_thread(propose, fake, BOB, "en", "We should plant trees")
    proposal = await proposal_id_of(sessions, "plant trees")
    deliver = subprocess.Popen(
        [sys.executable, "-m", "bots.cli", "deliver"],
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert deliver.stdout is not None
        started = await asyncio.to_thread(deliver.stdout.readline)  # once it is running
        assert started.strip() == "Sending the authors' notices on telegram until stopped."
        assert consult(["moderation", "accept", str(proposal)], env).returncode == 0
        told = "Your proposal is now shown to other participants"
        until(fake, lambda: any(text.startswith(told) for text in fake.sent_texts(BOB)))
    finally:
        deliver.send_signal(signal.SIGTERM)
        _, errors = await asyncio.to_thread(deliver.communicate, timeout=60)
    assert deliver.returncode == 0, errors

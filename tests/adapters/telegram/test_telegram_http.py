"""Telegram end to end: `consult serve` on a local port, our fake Bot API, PTB in between.

A participant opens the deep link, consents, answers the profile question, votes a sequence
with qualifications, proposes (with characters Telegram's HTML would otherwise eat), and
forgets; the webhook's guards and its behaviour under duplicates and faults are checked over
the same real HTTP.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bench.fakes.telegram_api import Call, FakeTelegram
from bench.processes import consult_server
from core.models import ChannelIdentity, Proposal, Qualification
from core.storage import create_engine
from tests.bots.test_cli import consult
from tests.conftest import Loader

TOKEN = "123456789:AAH-test_token"
SECRET = "s3cret_for-tests"
ALICE = 4242


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram(TOKEN, bot_username="elders_bot") as telegram:
        yield telegram


def environment(database_url: str, tmp_path: Path, fake: FakeTelegram) -> dict[str, str]:
    return {
        "CONSULT_DATABASE_URL": database_url,
        "CONSULT_DATA_DIR": str(tmp_path),
        "CONSULT_SECRET_KEY": "e2e-secret",
        "CONSULT_TELEGRAM_TOKEN": TOKEN,
        "CONSULT_TELEGRAM_WEBHOOK_SECRET": SECRET,
        "CONSULT_TELEGRAM_API_URL": fake.url,
        "CONSULT_WEBHOOK_HANDLING_TIMEOUT": "3",
        "LC_ALL": "en_US.UTF-8",
    }


def until(fake: FakeTelegram, condition: Callable[[], object]) -> None:
    try:
        fake.wait_for(condition, timeout=15)
    except TimeoutError:
        recent = [(call.method, call.params, call.ok) for call in fake.calls()[-4:]]
        raise AssertionError(f"no such reply; the bot's last calls: {recent}") from None


def new_text(fake: FakeTelegram, chat: int, since: int, fragment: str) -> Callable[[], bool]:
    return lambda: any(fragment in text for text in fake.shown_texts(chat)[since:])


def say(fake: FakeTelegram, chat: int, update: dict[str, object], expect: str) -> None:
    """Deliver an update and wait for a reply containing `expect`."""
    before = len(fake.shown_texts(chat))
    assert fake.deliver(update).status_code == 200
    until(fake, new_text(fake, chat, before, expect))


# What a tap mid-sequence costs: one edit, and the tap's answer in the webhook's answer.
ONE_CALL_AND_THE_ANSWER = ["answerCallbackQuery", "editMessageText"]
HELP = "/help – this help"  # the last line of the help, in English


def sent_before_a_barrier(fake: FakeTelegram, chat: int, since: int) -> list[Call]:
    """The Bot API calls made from `since` (an index in `fake.calls()`) until the answer to a
    /help sent now: a chat's replies leave in the order of its updates, so by then anything the
    chat's earlier updates could still send has been sent."""
    say(fake, chat, fake.text_update(chat, "/help", language_code="en"), HELP)
    calls = fake.calls()[since:]
    return calls[: next(i for i, call in enumerate(calls) if HELP in call.params.get("text", ""))]


def tap(fake: FakeTelegram, chat: int, button: str, expect: str) -> dict[str, object]:
    update = fake.tap_update(chat, button)
    say(fake, chat, update, expect)
    return update


async def test_a_whole_conversation_from_a_deep_link(
    database_url: str,
    tmp_path: Path,
    fake: FakeTelegram,
    load_consultation: Loader,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await load_consultation()
    env = environment(database_url, tmp_path, fake)
    link = consult(
        ["telegram", "link", "elders", "--source", "newspaper", "--qr", str(tmp_path / "qr.png")],
        env,
    )
    assert link.returncode == 0, link.stderr
    assert link.stdout.strip() == "https://t.me/elders_bot?start=elders__newspaper"
    assert (tmp_path / "qr.png").read_bytes().startswith(b"\x89PNG")

    with consult_server(env) as url:
        hooked = consult(["telegram", "set-webhook", f"{url}/webhooks/telegram"], env)
        assert hooked.returncode == 0, hooked.stderr
        assert fake.webhook_url == f"{url}/webhooks/telegram" and fake.webhook_secret == SECRET
        await asyncio.to_thread(play_the_conversation, fake)

    async with sessions() as session:
        counted = await session.exec(select(func.sum(Proposal.vote_count)))
        assert counted.one() == 4  # each vote once, the retried tap included
        assert len((await session.exec(select(Qualification))).all()) == 4
        texts = (await session.exec(select(Proposal.text))).all()
        assert (
            "We should <b>open</b> *libraries* & _museums_ on Sundays, see https://x.org/?a=1&b=2"
            in texts
        )
        assert (await session.exec(select(ChannelIdentity))).all() == []  # forgotten


def play_the_conversation(fake: FakeTelegram) -> None:
    chat = ALICE
    fake.user(chat, first_name="Alice", language_code="en")
    say(
        fake,
        chat,
        fake.start_update(chat, "elders__newspaper", language_code="en"),
        "Do you agree?",
    )
    tap(fake, chat, "I agree", "Your age?")
    tap(fake, chat, "Under 40", "Proposal 1/4")
    for index in range(1, 5):
        card_id = max(fake.messages[chat])
        proposal = fake.messages[chat][card_id]["text"].split("\n\n")[-1]
        calls = len(fake.calls())
        vote = tap(fake, chat, "Agree", "Noted. Want to say more?")
        # The card became the qualification in place: one Bot API call, the tap's answer
        # riding in the webhook's answer.
        card = fake.messages[chat][card_id]
        assert card["text"] == f"✓ Agree: {proposal}\n\nNoted. Want to say more?"
        assert sorted(c.method for c in fake.calls()[calls:]) == ONE_CALL_AND_THE_ANSWER
        calls = len(fake.calls())
        if index < 4:  # and the qualification the next card
            tap(fake, chat, "I love it", f"Proposal {index + 1}/4")
            assert fake.messages[chat][card_id]["text"].startswith(
                f"✓ Agree · I love it: {proposal}"
            )
            assert max(fake.messages[chat]) == card_id
            assert sorted(c.method for c in fake.calls()[calls:]) == ONE_CALL_AND_THE_ANSWER
        else:  # the sequence ends: the card keeps the answer, the summary and menu follow
            tap(fake, chat, "I love it", "What would you like to do now?")
            assert fake.messages[chat][card_id]["text"].endswith("✓ I love it")
            assert "reply_markup" not in fake.messages[chat][card_id]
    # A retried delivery of an old tap changes nothing and sends nothing.
    before, texts = len(fake.calls()), len(fake.shown_texts(chat))
    assert fake.deliver(vote).status_code == 200
    assert sent_before_a_barrier(fake, chat, before) == []
    until(fake, new_text(fake, chat, texts, "What would you like to do now?"))  # the help's menu

    tap(fake, chat, "Make a proposal", "Complete the sentence")
    typed = "We should <b>open</b> *libraries* & _museums_ on Sundays, see https://x.org/?a=1&b=2"
    say(fake, chat, fake.text_update(chat, typed, language_code="en"), "Send it?")
    assert typed in fake.sent_texts(chat)[-1]  # shown as typed, not as HTML or markdown
    tap(fake, chat, "Send", "Thank you! Your proposal")
    assert fake.count("answerCallbackQuery", ok=False) == 0
    assert fake.count("answerCallbackQuery", ok=True) == len(fake.calls("editMessageText"))

    say(
        fake,
        chat,
        fake.text_update(chat, "/forget", language_code="en"),
        "Erase your personal data?",
    )
    tap(fake, chat, "Yes, erase", "your personal data has been erased")


def test_the_webhook_refuses_what_telegram_would_not_send(
    database_url: str, tmp_path: Path, fake: FakeTelegram
) -> None:
    with consult_server(environment(database_url, tmp_path, fake)) as url:
        hook = f"{url}/webhooks/telegram"
        update = fake.start_update(ALICE, "elders")
        good = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        assert httpx.post(hook, json=update).status_code == 401
        forged = {"X-Telegram-Bot-Api-Secret-Token": "guess"}
        assert httpx.post(hook, json=update, headers=forged).status_code == 403
        assert fake.calls("sendMessage") == []  # no side effect
        huge = {"update_id": 1, "message": {"text": "x" * 300_000}}
        assert httpx.post(hook, json=huge, headers=good).status_code == 413
        broken = httpx.post(hook, content=b'{"update_id": 1,', headers=good)
        assert broken.status_code == 400 and "JSON" in broken.json()["detail"]
        assert httpx.post(hook, json=[1, 2], headers=good).status_code == 400
        assert httpx.post(hook, json={"message": {}}, headers=good).status_code == 400
        future = {"update_id": 99, "update_type_of_tomorrow": {"id": "x"}}
        assert httpx.post(hook, json=future, headers=good).status_code == 200
        assert fake.calls("sendMessage") == []


def test_a_slow_update_asks_for_a_retry_and_is_still_answered_once(
    database_url: str, tmp_path: Path, fake: FakeTelegram
) -> None:
    """The database is locked by someone else: past the handling timeout the webhook answers
    503 (Telegram retries); when the lock goes, the update completes and is answered, and the
    retried copy is a duplicate that changes and sends nothing."""
    with consult_server(environment(database_url, tmp_path, fake)) as url:
        fake.webhook_url, fake.webhook_secret = f"{url}/webhooks/telegram", SECRET
        update = fake.start_update(ALICE, "", language_code="en")
        with database_locked(database_url):
            assert fake.deliver(update).status_code == 503
            assert fake.calls("sendMessage") == []
        fake.wait_for(lambda: fake.calls("sendMessage"), timeout=15)
        before = len(fake.calls())
        assert len(fake.calls("sendMessage")) == 1
        assert fake.deliver(update).status_code == 200
        assert sent_before_a_barrier(fake, ALICE, before) == []  # the late answer was all


def test_a_failed_update_answers_500_and_its_retry_is_processed_once(
    database_url: str, tmp_path: Path, fake: FakeTelegram
) -> None:
    """The server's database connection dies mid-update (PostgreSQL: its backend is
    terminated): 500, nothing saved, nothing sent; Telegram's retry is then processed once."""
    if not database_url.startswith("postgresql"):
        pytest.skip("killing one connection of the server is a PostgreSQL fault")
    env = {**environment(database_url, tmp_path, fake), "CONSULT_WEBHOOK_HANDLING_TIMEOUT": "60"}
    with consult_server(env) as url:
        fake.webhook_url, fake.webhook_secret = f"{url}/webhooks/telegram", SECRET
        update = fake.start_update(ALICE, "", language_code="en")
        with database_locked(database_url), ThreadPoolExecutor(1) as pool:
            answer = pool.submit(fake.deliver, update)
            terminate_waiting_backends(database_url)
            assert answer.result(timeout=30).status_code == 500
        assert fake.calls("sendMessage") == []
        assert fake.deliver(update).status_code == 200
        fake.wait_for(lambda: fake.calls("sendMessage"), timeout=15)
        before = len(fake.calls())
        assert len(fake.calls("sendMessage")) == 1
        assert fake.deliver(update).status_code == 200
        assert sent_before_a_barrier(fake, ALICE, before) == []  # the retry's answer was all


def terminate_waiting_backends(database_url: str) -> None:
    """Kill the server's connection once it waits on the lock held by `database_locked`."""

    async def terminate() -> int:
        engine = create_engine(database_url)
        async with engine.connect() as connection:
            found = await connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            )
            count = len(found.all())
        await engine.dispose()
        return count

    deadline = time.monotonic() + 10
    while not asyncio.run(terminate()):
        assert time.monotonic() < deadline, "the server never waited on the lock"
        time.sleep(0.1)


@contextmanager
def database_locked(database_url: str) -> Iterator[None]:
    """Hold the database's write lock (SQLite) or lock the events table (PostgreSQL)."""
    if database_url.startswith("sqlite"):
        connection = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=30)
        connection.isolation_level = None
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            connection.execute("ROLLBACK")
            connection.close()
        return

    async def hold(release: asyncio.Event, held: threading.Event) -> None:
        engine = create_engine(database_url)
        async with engine.connect() as connection, connection.begin():
            await connection.execute(text("LOCK TABLE processedevent IN ACCESS EXCLUSIVE MODE"))
            held.set()
            await release.wait()
        await engine.dispose()

    loop = asyncio.new_event_loop()
    release, held = asyncio.Event(), threading.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(hold(release, held),))
    thread.start()
    try:
        assert held.wait(timeout=10), "the events table could not be locked"
        yield
    finally:
        loop.call_soon_threadsafe(release.set)
        thread.join(timeout=30)
        loop.close()


def test_a_wrong_token_or_no_telegram_is_said_without_the_token(
    database_url: str, tmp_path: Path, fake: FakeTelegram
) -> None:
    wrong = {**environment(database_url, tmp_path, fake), "CONSULT_TELEGRAM_TOKEN": "42:wrong"}
    refused = consult(["telegram", "set-webhook", "https://example.org/webhooks/telegram"], wrong)
    assert refused.returncode == 1 and "Telegram rejected the bot token" in refused.stderr
    assert "42:wrong" not in refused.stderr and "Traceback" not in refused.stderr
    away = {
        **wrong,
        "CONSULT_TELEGRAM_TOKEN": TOKEN,
        "CONSULT_TELEGRAM_API_URL": "http://127.0.0.1:9",
    }
    unreachable = consult(
        ["telegram", "set-webhook", "https://example.org/webhooks/telegram"], away
    )
    assert unreachable.returncode == 1 and "cannot reach the Telegram Bot API" in unreachable.stderr
    assert TOKEN not in unreachable.stderr and "Traceback" not in unreachable.stderr

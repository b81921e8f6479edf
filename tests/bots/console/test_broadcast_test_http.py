"""The "Send me a test" form of the console's compose page, over real HTTP on both databases,
against the fake Telegram: the message as composed reaches the organiser's own chat once with
its button; a bad address, an unconfigured channel or a forged form sends nothing; the address
is never shown back, logged or kept."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bench.fakes.telegram_api import FakeTelegram
from bench.processes import serving
from bots.server import create_app
from bots.settings import Settings
from core.models import AuditEntry, BroadcastMessage
from core.organisers import Role
from tests.adapters.telegram.test_telegram_http import SECRET as WEBHOOK_SECRET
from tests.adapters.telegram.test_telegram_http import TOKEN
from tests.bots.console.conftest import ConsoleServer, csrf_of
from tests.support import Clock

CHAT = 5550123987  # the organiser's own chat


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram(TOKEN, bot_username="elders_bot") as telegram:
        telegram.user(CHAT, first_name="Organiser", language_code="fr")
        yield telegram


@pytest.fixture
async def server(
    database_url: str,
    tmp_path: Path,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    load_consultation: Any,
    fake: FakeTelegram,
) -> AsyncIterator[ConsoleServer]:
    """The console, running no channel itself, configured for the fake Telegram."""
    consultation = await load_consultation()
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        secret_key="console-test-secret",
        telegram_token=TOKEN,
        telegram_webhook_secret=WEBHOOK_SECRET,
        telegram_api_url=fake.url,
    )
    app = create_app(settings, channels=[], clock=clock)
    async with serving(app) as url:
        running = ConsoleServer(url, sessions, clock, consultation)
        try:
            yield running
        finally:
            for client in running.clients:
                await client.aclose()


def _form(token: str, **changes: str) -> dict[str, str]:
    return {
        "csrf": token,
        "text-fr": "Votez avant dimanche !",
        "text-en": "Vote before Sunday!",
        "button": "on",
        "audience": "all",
        "when": "now",
        "test-to": f"telegram:{CHAT}",
        "test-locale": "fr",
        **changes,
    }


async def test_send_me_a_test_reaches_my_own_chat_once_and_shows_no_address(
    server: ConsoleServer, fake: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin = await server.signed_in("root@example.org", Role.ADMIN)
    base = f"{server.console}/c/elders/broadcasts"
    page = await admin.get(f"{base}/new")
    assert page.status_code == 200 and 'id="send-test"' in page.text
    token = csrf_of(page.text)

    shown = []
    for changes, said in (
        ({"test-to": f"telegram:x{CHAT}"}, "A Telegram address is a chat id"),
        ({"test-to": "slack:U0123ABCD"}, "Slack is not configured"),
        ({"test-locale": "de"}, "is not a language of this consultation"),
        ({"text-fr": " "}, 'id="test-fault"'),
    ):
        refused = await admin.post(f"{base}/test", data=_form(token, **changes))
        assert refused.status_code == 200 and 'id="test-fault"' in refused.text, changes
        assert said in refused.text, (changes, refused.text)
        shown.append(refused.text)
    forged = await admin.post(f"{base}/test", data=_form("forged"))
    assert forged.status_code == 403
    analyst = await server.signed_in("carl@example.org", Role.ANALYST)
    listed = await analyst.get(base)
    refused = await analyst.post(f"{base}/test", data=_form(csrf_of(listed.text)))
    assert refused.status_code == 403 and "admin or moderator role" in refused.text
    assert fake.count("sendMessage") == 0

    sent = await admin.post(f"{base}/test", data=_form(token))
    assert sent.status_code == 200 and 'id="test-said"' in sent.text, sent.text
    assert "Test sent on Telegram" in sent.text
    assert fake.sent_texts(CHAT) == ["Votez avant dimanche !"]
    (call,) = fake.calls("sendMessage", chat_id=CHAT)
    markup = call.params["reply_markup"]
    markup = json.loads(markup) if isinstance(markup, str) else markup
    (row,) = markup["inline_keyboard"]
    assert [button["url"] for button in row] == ["https://t.me/elders_bot?start=elders"]

    async with server.sessions() as session:
        audit = list(
            await session.exec(select(AuditEntry).where(AuditEntry.action == "broadcast-test"))
        )
        queued = list(await session.exec(select(BroadcastMessage)))
    assert queued == []
    assert [(e.source, e.detail) for e in audit] == [
        ("console", {"channel": "telegram", "locale": "fr", "outcome": "sent"})
    ]
    for text in (*shown, sent.text, caplog.text, json.dumps(audit[0].model_dump(mode="json"))):
        assert str(CHAT) not in text

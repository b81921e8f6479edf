"""Malformed Telegram updates that carry the right secret never get a 5xx, nor write anything.

Recorded updates, mutated (see tests/fuzzing.py), are posted with the webhook secret through
the real app (`create_app`, its lifespan, our TelegramChannel and PTB's Bot at a fake Bot API).
Telegram delivers an update again after a 5xx, so one odd update answered 500 would come back
again and again.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import example, given
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from adapters.telegram.webhook import SECRET_HEADER, TelegramChannel, TelegramConfig
from bench.fakes.telegram_api import FakeTelegram, load_payload
from bots.server import create_app
from bots.settings import Settings
from tests.conftest import SECRET, Loader
from tests.fuzzing import DEEP, FUZZ, HUGE_INT, LONG_TEXT, check_logs, mutated, rows, to_json

TOKEN = "123456789:AAH-fuzz_token"
WEBHOOK_SECRET = "fuzz_secret"
RECORDED = ["start_deep_link", "private_text", "callback_query", "edited_message", "group_message"]
VALID = [load_payload(name) for name in RECORDED]
# What a log line must never repeat: who wrote, and what.
PRIVATE = ["5012345678", "6098765432", "Camille", "Durand", "camille_d", "Jonas", "biblioth"]
_update_ids = itertools.count(800_000_001)


@dataclass
class Rig:
    channel: TelegramChannel
    fake: FakeTelegram
    http: httpx.AsyncClient

    async def post(self, payload: Any) -> httpx.Response:
        """POST the update with the webhook's secret; returns once its replies are sent (the
        ASGI transport waits for the app's background tasks)."""
        headers = {SECRET_HEADER: WEBHOOK_SECRET, "content-type": "application/json"}
        body = to_json(payload).encode()
        return await self.http.post("/webhooks/telegram", content=body, headers=headers)


@pytest.fixture
async def rig(database_url: str, tmp_path: Path, load_consultation: Loader) -> AsyncIterator[Rig]:
    await load_consultation()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        data_dir=tmp_path,
        secret_key=SECRET.decode(),
    )
    with FakeTelegram(TOKEN, limits=None) as fake:
        config = TelegramConfig(
            TOKEN,
            WEBHOOK_SECRET,
            api_url=fake.url,
            messages_per_second=1000.0,  # every example writes in the same chat
            chat_messages_per_second=1000.0,
        )
        channel = TelegramChannel(config)
        app = create_app(settings, channels=[channel])
        transport = httpx.ASGITransport(app, raise_app_exceptions=False)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://consult") as http,
        ):
            yield Rig(channel, fake, http)


def _callback(**changes: Any) -> dict[str, Any]:
    update = load_payload("callback_query")
    update["callback_query"].update(changes)
    return update


def _message(**changes: Any) -> dict[str, Any]:
    update = load_payload("private_text")
    update["message"].update(changes)
    return update


@FUZZ
@given(payload=mutated(VALID))
@example(payload=_callback(data=7))  # argument of type 'int' is not iterable
@example(payload=_callback(message=[load_payload("callback_query")["callback_query"]["message"]]))
@example(payload=_message(text=7))
@example(payload=_message(chat=[]))  # 'list' object has no attribute 'get'
@example(payload=_message(text=DEEP))  # RecursionError
@example(payload=_message(date=HUGE_INT))  # more digits than int() reads
@example(payload=_message(chat={"id": HUGE_INT, "type": "private"}))
@example(payload=_message(chat={"id": 10**300, "type": "private"}))  # no address column holds it
@example(payload=_message(text=LONG_TEXT))
@example(payload=_callback(**{"from": None}))
@example(payload=7)
async def test_a_malformed_update_is_never_a_server_error(
    rig: Rig,
    sessions: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
    payload: Any,
) -> None:
    if isinstance(payload, dict) and payload.get("update_id") in [u["update_id"] for u in VALID]:
        payload["update_id"] = next(_update_ids)  # a new update, not a duplicate of the last
    caplog.clear()
    caplog.set_level(logging.INFO)
    before, calls, ignored = await rows(sessions), rig.fake.count(), rig.channel.ignored.total()

    response = await rig.post(payload)

    assert response.status_code in (200, 400), response.text
    newly_ignored = rig.channel.ignored.total() - ignored
    if response.status_code == 400 or newly_ignored:
        assert await rows(sessions) == before
        assert rig.fake.count() == calls
    check_logs(caplog.records, newly_ignored, PRIVATE)

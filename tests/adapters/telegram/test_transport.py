"""PTB over our aiohttp transport (adapters.telegram.transport): what PTB's own transport would
send arrives as such at the fake Bot API, and a network that fails meets PTB's errors, which the
sender's retries know."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from telegram import InputFile
from telegram.error import NetworkError, RetryAfter, TimedOut

from adapters.telegram.transport import AiohttpRequest
from adapters.telegram.webhook import bot_for
from bench.fakes.telegram_api import FakeTelegram, RateLimits
from bench.processes import free_port

TOKEN = "123456789:AAH-transport_test"


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram(
        TOKEN, limits=RateLimits(per_chat_per_second=1.0, per_chat_burst=1.0)
    ) as telegram:
        yield telegram


async def test_a_message_and_a_photo_arrive_as_ptb_encodes_them(fake: FakeTelegram) -> None:
    async with bot_for(TOKEN, fake.url) as bot:
        sent = await bot.send_message(42, "<b>Hi</b> &amp; welcome", parse_mode="HTML")
        photo = InputFile(b"\x89PNG\r\n\x1a\nnot really", filename="qr.png")
        await bot.send_photo(43, photo, caption="Scan me")  # another chat: under its limit
    assert sent.chat.id == 42 and sent.text == "Hi & welcome"
    [message], [picture] = fake.calls("sendMessage"), fake.calls("sendPhoto")
    assert message.params["parse_mode"] == "HTML" and message.params["chat_id"] == 42
    upload = picture.params["photo"]
    assert upload.filename == "qr.png" and upload.data.startswith(b"\x89PNG")
    assert picture.params["caption"] == "Scan me"


async def test_a_429_reaches_ptb_as_retry_after(fake: FakeTelegram) -> None:
    async with bot_for(TOKEN, fake.url) as bot:
        await bot.send_message(42, "one")
        with pytest.raises(RetryAfter):
            await bot.send_message(42, "two")  # the fake allows one per second in a chat


async def test_nothing_listening_is_a_network_error() -> None:
    request = AiohttpRequest()
    async with request:
        with pytest.raises(NetworkError, match="Cannot connect"):
            await request.post(f"http://127.0.0.1:{free_port()}/bot{TOKEN}/sendMessage")


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """Accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    for writer in held:
        writer.close()
    server.close()


async def test_a_server_that_never_answers_times_out(silent_server: str) -> None:
    request = AiohttpRequest(read_timeout=0.3)
    async with request:
        with pytest.raises(TimedOut):
            await request.post(f"{silent_server}/bot{TOKEN}/sendMessage")


async def test_a_request_before_initialize_is_refused() -> None:
    with pytest.raises(NetworkError, match="not initialized"):
        await AiohttpRequest().post(f"http://127.0.0.1:1/bot{TOKEN}/getMe")


def test_proxies_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"https://api.telegram.test/bot{TOKEN}/getMe"
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert AiohttpRequest()._proxy_for(url) is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert AiohttpRequest()._proxy_for(url) == "http://proxy.internal:3128"
    monkeypatch.setenv("NO_PROXY", "api.telegram.test")
    assert AiohttpRequest()._proxy_for(url) is None

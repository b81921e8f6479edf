"""The fake Bot API behaves like Telegram for python-telegram-bot's real `telegram.Bot`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, RetryAfter

from bench.fakes.telegram_api import (
    PAYLOADS,
    FakeTelegram,
    ThreadedServer,
    load_payload,
    parse_html,
)


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def telegram(clock: ManualClock) -> Iterator[FakeTelegram]:
    with FakeTelegram(clock=clock) as fake:
        yield fake


@pytest.fixture
async def bot(telegram: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(
        telegram.token, base_url=telegram.base_url, base_file_url=telegram.base_file_url
    ) as client:
        yield client


def keyboard(*pairs: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(t, callback_data=d) for t, d in pairs]])


async def test_get_me_and_a_message_with_a_keyboard_round_trip(
    telegram: FakeTelegram, bot: Bot
) -> None:
    assert bot.username == "consult_test_bot"
    markup = keyboard(("👍 D'accord", "v:3:agree"), ("👎 Pas d'accord", "v:3:disagree"))
    sent = await bot.send_message(42, "<b>Proposition</b> 3 &amp; 4", "HTML", reply_markup=markup)
    again = await bot.send_message(42, "plain")
    assert (sent.message_id, again.message_id, sent.chat.id, sent.chat.type) == (
        1,
        2,
        42,
        "private",
    )
    assert sent.text == "Proposition 3 & 4" and sent.entities[0].type == "bold"
    assert sent.reply_markup == markup and sent.from_user and sent.from_user.is_bot
    assert telegram.sent_texts(42) == ["Proposition 3 & 4", "plain"]
    assert telegram.last_keyboard(42) == [
        ("👍 D'accord", "v:3:agree"),
        ("👎 Pas d'accord", "v:3:disagree"),
    ]
    call = telegram.calls("sendMessage", chat_id=42)[0]
    assert call.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "v:3:agree"
    assert telegram.count("sendMessage") == 2 and telegram.count("getMe") == 1


async def test_callback_data_over_64_bytes_and_empty_buttons_are_refused(bot: Bot) -> None:
    await bot.send_message(42, "ok", reply_markup=keyboard(("é", "é" * 32)))  # 64 bytes
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(42, "x", reply_markup=keyboard(("a", "x" * 65)))
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_TEXT_INVALID"):
        await bot.send_message(42, "x", reply_markup=keyboard(("", "x")))


@pytest.mark.parametrize(
    "html",
    ["<b>unclosed", "a < b", "AT&T", "<foo>x</foo>", "<b><i>x</b></i>", '<span class="x">s</span>'],
)
async def test_bad_html_is_refused_like_telegram(bot: Bot, html: str) -> None:
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_message(42, html, ParseMode.HTML)


async def test_text_length_is_counted_without_tags(bot: Bot) -> None:
    await bot.send_message(42, f"<b>{'x' * 4096}</b>", ParseMode.HTML)
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(42, "x" * 4097)
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(42, "<b> </b>", ParseMode.HTML)


def test_html_entities_use_utf16_offsets() -> None:
    text, entities = parse_html(
        '😀 <a href="https://x.org">lien</a> <pre><code class="language-py">1</code></pre>'
    )
    assert text == "😀 lien 1"
    assert entities == [
        {"type": "text_link", "url": "https://x.org", "offset": 3, "length": 4},
        {"type": "pre", "language": "py", "offset": 8, "length": 1},
    ]


async def test_sends_over_the_rate_limit_get_retry_after(
    telegram: FakeTelegram, bot: Bot, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PTB 22 warns when it builds a RetryAfter unless timedelta periods are opted in
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    for _ in range(3):
        await bot.send_message(42, "burst")
    with pytest.raises(RetryAfter) as refused:
        await bot.send_message(42, "one too many")
    assert refused.value.retry_after == timedelta(seconds=1)
    await bot.send_message(43, "another chat is not throttled")
    clock.now += 1
    await bot.send_message(42, "a second later")
    assert telegram.count("sendMessage", ok=False) == 1
    assert telegram.sent_texts(42) == ["burst"] * 3 + ["a second later"]


async def test_edits_callbacks_and_blocked_users(telegram: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_message(42, "card", reply_markup=keyboard(("Oui", "yes")))
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text(
            "card", 42, sent.message_id, reply_markup=keyboard(("Oui", "yes"))
        )
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("card", 42, 999)
    edited = await bot.edit_message_text("card, voted", 42, sent.message_id)
    assert edited.reply_markup is None and telegram.last_keyboard(42) == []  # type: ignore[union-attr]
    assert telegram.messages[42][sent.message_id]["text"] == "card, voted"

    await bot.edit_message_reply_markup(42, sent.message_id, reply_markup=keyboard(("Non", "no")))
    query = telegram.tap_update(42, "Non")["callback_query"]
    assert query["data"] == "no" and query["message"]["text"] == "card, voted"
    assert await bot.answer_callback_query(query["id"])
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query(query["id"])
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query("123")

    telegram.blocked.add(44)
    with pytest.raises(Forbidden, match=r"(?i)blocked"):
        await bot.send_message(44, "hello?")


async def test_a_wrong_token_and_an_unknown_method(telegram: FakeTelegram) -> None:
    with pytest.raises(InvalidToken, match="rejected by the server"):
        async with Bot("1:wrong", base_url=telegram.base_url):
            pass
    response = httpx.post(f"{telegram.base_url}{telegram.token}/sendTelepathy", json={})
    assert response.status_code == 404 and response.json()["ok"] is False


def test_json_bodies_and_photo_uploads_are_accepted(telegram: FakeTelegram) -> None:
    api = f"{telegram.base_url}{telegram.token}"
    body = {
        "chat_id": -100123,
        "text": "hi",
        "reply_markup": {"inline_keyboard": [[{"text": "a", "callback_data": "a"}]]},
    }
    answer = httpx.post(f"{api}/sendMessage", json=body).json()
    assert answer["result"]["chat"]["type"] == "supergroup"
    photo = httpx.post(
        f"{api}/sendPhoto",
        data={"chat_id": "7", "caption": "qr"},
        files={"photo": ("qr.png", b"PNG")},
    )
    assert photo.json()["result"]["caption"] == "qr"
    assert telegram.calls("sendPhoto")[0].params["photo"].data == b"PNG"


def test_recorded_payloads_parse_into_ptb_updates() -> None:
    names = sorted(path.stem for path in PAYLOADS.glob("*.json"))
    assert len(names) == 6
    for name in names:
        update = Update.de_json(load_payload(name), None)
        assert update is not None and update.update_id > 0, name
    start = Update.de_json(load_payload("start_deep_link"), None)
    assert start.message and start.message.text == "/start elders"


async def test_set_webhook_then_deliver_reaches_the_app_with_the_secret(
    telegram: FakeTelegram, bot: Bot
) -> None:
    received: list[tuple[str | None, dict[str, Any]]] = []
    app = FastAPI()

    @app.post("/telegram/webhook")
    async def webhook(request: Request) -> dict[str, bool]:
        received.append(
            (request.headers.get("x-telegram-bot-api-secret-token"), await request.json())
        )
        return {"ok": True}

    server = ThreadedServer(app)
    url = server.start()
    try:
        await bot.set_webhook(f"{url}/telegram/webhook", secret_token="s3cret-_")
        assert (await bot.get_webhook_info()).url == f"{url}/telegram/webhook"
        update = telegram.start_update(42, "elders", first_name="Ada")
        assert (await asyncio.to_thread(telegram.deliver, update)).status_code == 200
        answers = await asyncio.gather(
            *(telegram.adeliver(telegram.text_update(u, "hi")) for u in range(5))
        )
        assert {answer.status_code for answer in answers} == {200}
        await bot.send_message(42, "card", reply_markup=keyboard(("Oui", "yes")))
        assert (await asyncio.to_thread(telegram.tap, 42, "Oui")).status_code == 200
        await telegram.adeliver(telegram.text_update(42, "no secret"), secret="")
    finally:
        server.stop()
    assert received[0] == ("s3cret-_", update)
    assert update["message"]["entities"] == [{"offset": 0, "length": 6, "type": "bot_command"}]
    assert Update.de_json(update, None).message.from_user.first_name == "Ada"  # type: ignore[union-attr]
    assert received[6][1]["callback_query"]["data"] == "yes"
    assert received[7][0] is None and len(received) == 8

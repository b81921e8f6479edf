"""An organiser's test message, on both databases, against the fake Telegram over real HTTP:
`consult broadcast test` and `POST /api/consultations/{slug}/broadcasts/test` send the message
being composed once, at once, to the organiser's own chat, as a recipient in the chosen locale
gets it (its text, its button to the bot's deep link); nothing is queued, the audit log says
the channel and the locale; a bad address, an unconfigured channel or an unknown locale is
refused (exit code 2, 422 naming the field) with nothing sent; and the address appears in no
output, answer or log."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import func, select

from bench.fakes.telegram_api import FakeTelegram
from bench.fakes.whatsapp_api import PHONE_NUMBER_ID, FakeGraphAPI
from bench.processes import serving
from bots.broadcast_input import Invalid
from bots.broadcast_test import MSGIDS, parse_to
from bots.server import create_app
from bots.settings import Settings
from core.i18n import Translator
from core.identity import enrol
from core.models import AuditEntry, Broadcast, BroadcastMessage
from core.organisers import Role
from tests.adapters.telegram.test_telegram_http import SECRET as WEBHOOK_SECRET
from tests.adapters.telegram.test_telegram_http import TOKEN
from tests.bots.test_api_moderation import Sessions, _organiser
from tests.bots.test_broadcast_cli import MESSAGE, Consult, _message
from tests.bots.test_broadcast_cli import consult as consult  # the CLI in this process
from tests.conftest import SECRET, Loader
from tests.support import Clock
from tests.test_i18n import _catalog

CHAT = 5550123987  # the organiser's own chat: in no output, answer, log or row
TEXTS = {"fr": "Votez avant dimanche !", "en": "Vote before Sunday!"}


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram(TOKEN, bot_username="elders_bot") as telegram:
        telegram.user(CHAT, first_name="Organiser", language_code="en")
        yield telegram


def _telegram(fake: FakeTelegram) -> dict[str, Any]:
    return {
        "telegram_token": TOKEN,
        "telegram_webhook_secret": WEBHOOK_SECRET,
        "telegram_api_url": fake.url,
    }


def _buttons(fake: FakeTelegram) -> list[tuple[str, str]]:
    """(label, url) of the buttons of each message sent to the organiser's chat."""
    found = []
    for call in fake.calls("sendMessage", chat_id=CHAT):
        markup = call.params.get("reply_markup") or {}
        markup = json.loads(markup) if isinstance(markup, str) else markup
        for row in markup.get("inline_keyboard", []):
            found.extend((button["text"], button.get("url")) for button in row)
    return found


async def _written(sessions: Sessions) -> tuple[int, int, list[AuditEntry]]:
    async with sessions() as session:
        broadcasts = (await session.exec(select(func.count()).select_from(Broadcast))).one()
        messages = (await session.exec(select(func.count()).select_from(BroadcastMessage))).one()
        audit = list(
            await session.exec(select(AuditEntry).where(AuditEntry.action == "broadcast-test"))
        )
    return broadcasts, messages, audit


def _nowhere(*texts: str) -> None:
    for text in texts:
        assert str(CHAT) not in text


def test_an_address_is_read_per_channel_and_never_repeated() -> None:
    assert parse_to(f"telegram:{CHAT}").address == str(CHAT)
    assert parse_to("whatsapp:+33 6 12 34 56 78").address == "33612345678"
    assert parse_to("slack:U0123ABCD").address == ":U0123ABCD"
    assert parse_to("slack:T0123ABCD:U0123ABCD").address == "T0123ABCD:U0123ABCD"
    assert str(CHAT) not in repr(parse_to(f"telegram:{CHAT}"))
    for bad in (f"telegram:{CHAT}x", f"fax:{CHAT}", f"{CHAT}", "whatsapp:0612345678", 12, None):
        with pytest.raises(Invalid) as refused:
            parse_to(bad)
        assert refused.value.field == "to"
        _nowhere(str(refused.value), json.dumps(refused.value.values))


@pytest.mark.parametrize("locale", ["en", "fr"])
def test_every_answer_of_a_test_is_in_both_catalogues(locale: str) -> None:
    translated = {m.id for m in _catalog(locale) if m.id and m.string}
    assert set(MSGIDS) - translated == set()


async def test_the_cli_sends_the_test_once_with_its_button_and_keeps_no_address(
    load_consultation: Loader,
    sessions: Sessions,
    tmp_path: Path,
    consult: Consult,
    fake: FakeTelegram,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await load_consultation()
    message = _message(tmp_path, MESSAGE)
    args = ["broadcast", "test", "elders", "--message", message, "--to", f"telegram:{CHAT}"]

    sent = await consult([*args, "--locale", "en"], **_telegram(fake))
    assert sent.returncode == 0, sent.stderr
    assert "Test sent on Telegram" in sent.stdout
    assert fake.sent_texts(CHAT) == ["Vote before Sunday!"]
    label = Translator("en")("broadcast.button")
    assert _buttons(fake) == [(label, "https://t.me/elders_bot?start=elders")]

    in_french = await consult([*args, "--locale", "fr"], "fr", **_telegram(fake))
    assert in_french.returncode == 0 and "Test envoyé sur Telegram" in in_french.stdout
    assert fake.sent_texts(CHAT) == ["Vote before Sunday!", "Votez avant dimanche !"]

    broadcasts, messages, audit = await _written(sessions)
    assert (broadcasts, messages) == (0, 0)  # not a broadcast, nothing in the outbox
    assert [entry.detail for entry in audit] == [
        {"channel": "telegram", "locale": "en", "outcome": "sent"},
        {"channel": "telegram", "locale": "fr", "outcome": "sent"},
    ]
    assert all(entry.actor.startswith("cli:") for entry in audit)
    _nowhere(sent.stdout, sent.stderr, in_french.stdout, in_french.stderr, caplog.text)
    _nowhere(*(json.dumps(entry.model_dump(mode="json")) for entry in audit))


async def test_the_cli_refuses_what_it_cannot_send_with_exit_code_2(
    load_consultation: Loader,
    sessions: Sessions,
    tmp_path: Path,
    consult: Consult,
    fake: FakeTelegram,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await load_consultation()
    message = _message(tmp_path, MESSAGE)

    def test(to: str, *extra: str) -> list[str]:
        return ["broadcast", "test", "elders", "--message", message, "--to", to, *extra]

    outputs = []
    for args, said in (
        (test("slack:U0123ABCD"), "Slack is not configured"),  # no Slack settings
        (test(f"telegram:{CHAT}z"), "A Telegram address is a chat id"),
        (test(f"fax:{CHAT}"), "CHANNEL:ADDRESS"),
        (test(f"telegram:{CHAT}", "--locale", "de"), "'de' is not a language"),
    ):
        refused = await consult(args, **_telegram(fake))
        assert refused.returncode == 2, (args, refused.stderr)
        assert said in refused.stderr and refused.stdout == ""
        outputs += [refused.stdout, refused.stderr]
    assert fake.count("sendMessage") == 0
    assert (await _written(sessions))[2] == []

    fake.blocked.add(CHAT)  # the organiser blocked the bot: the platform says so
    blocked = await consult(test(f"telegram:{CHAT}"), **_telegram(fake))
    assert blocked.returncode == 1 and "cannot be reached" in blocked.stderr
    outcomes = [entry.detail["outcome"] for entry in (await _written(sessions))[2]]
    assert outcomes == ["unreachable"]
    _nowhere(*outputs, blocked.stdout, blocked.stderr, caplog.text)


@pytest.fixture
async def api(
    load_consultation: Loader,
    sessions: Sessions,
    clock: Clock,
    database_url: str,
    tmp_path: Path,
    fake: FakeTelegram,
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """The API under uvicorn, running no channel itself, configured for the fake Telegram."""
    await load_consultation()
    tokens = {
        "admin": await _organiser(sessions, clock, "root@example.org", Role.ADMIN, None),
        "moderator": await _organiser(sessions, clock, "ana@example.org", Role.MODERATOR, "elders"),
        "analyst": await _organiser(sessions, clock, "carl@example.org", Role.ANALYST, "elders"),
    }
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        secret_key=SECRET.decode(),
        **_telegram(fake),
    )
    app = create_app(settings, channels=[], clock=clock)
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        yield http, tokens


async def test_the_api_sends_a_test_to_a_moderator_and_names_each_field_to_fix(
    api: tuple[httpx.AsyncClient, dict[str, str]],
    sessions: Sessions,
    fake: FakeTelegram,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    http, tokens = api
    path = "/api/consultations/elders/broadcasts/test"

    def as_(who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[who]}"}

    body = {"text": TEXTS, "button": True, "to": f"telegram:{CHAT}", "locale": "en"}
    answers = []
    for changes, field in (
        ({"to": f"telegram:@{CHAT}"}, "to"),
        ({"to": "whatsapp:+33612345678"}, "to"),  # WhatsApp is not configured
        ({"to": CHAT}, "to"),  # a number, not CHANNEL:ADDRESS
        ({"locale": "de"}, "locale"),
        ({"text": {"fr": "  "}}, "text"),
    ):
        refused = await http.post(path, json={**body, **changes}, headers=as_("admin"))
        assert refused.status_code == 422, (changes, refused.text)
        assert refused.json()["field"] == field, refused.text
        answers.append(refused.text)
    forbidden = await http.post(path, json=body, headers=as_("analyst"))
    assert forbidden.status_code == 403
    assert fake.count("sendMessage") == 0 and (await _written(sessions))[2] == []

    sent = await http.post(path, json=body, headers=as_("moderator"))
    assert sent.status_code == 200, sent.text
    assert sent.json()["outcome"] == "sent" and sent.json()["sent"] is True
    assert sent.json()["channel"] == "telegram" and sent.json()["locale"] == "en"
    assert "Test sent on Telegram" in sent.json()["said"]
    assert fake.sent_texts(CHAT) == ["Vote before Sunday!"]
    assert _buttons(fake) == [
        (Translator("en")("broadcast.button"), "https://t.me/elders_bot?start=elders")
    ]

    fake.blocked.add(CHAT)
    blocked = await http.post(path, json=body, headers=as_("admin"))
    assert blocked.status_code == 200 and blocked.json()["outcome"] == "unreachable"
    assert "cannot be reached" in blocked.json()["said"]

    broadcasts, messages, audit = await _written(sessions)
    assert (broadcasts, messages) == (0, 0)
    assert [(e.actor, e.source, e.detail["outcome"]) for e in audit] == [
        ("ana@example.org", "api", "sent"),
        ("root@example.org", "api", "unreachable"),
    ]
    _nowhere(*answers, sent.text, blocked.text, caplog.text)
    _nowhere(*(json.dumps(entry.model_dump(mode="json")) for entry in audit))


NUMBER = "33612345678"  # the organiser's own WhatsApp number
TEMPLATE = {"name": "consultation_news", "language": "fr", "parameters": ["text", "link"]}


@pytest.fixture
async def graph() -> AsyncIterator[tuple[FakeGraphAPI, str]]:
    fake = FakeGraphAPI()
    async with serving(fake.app()) as url:
        yield fake, url


async def test_on_whatsapp_a_test_is_a_text_within_the_window_else_the_template(
    load_consultation: Loader,
    sessions: Sessions,
    tmp_path: Path,
    consult: Consult,
    graph: tuple[FakeGraphAPI, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake, url = graph
    await load_consultation(settings={"broadcasts": {"templates": [TEMPLATE]}})
    whatsapp = {
        "secret_key": SECRET.decode(),
        "whatsapp_token": fake.token,
        "whatsapp_app_secret": "app-secret",
        "whatsapp_verify_token": "verify-token",
        "whatsapp_phone_number_id": PHONE_NUMBER_ID,
        "whatsapp_phone_number": "+1 555 078 3881",
        "whatsapp_api_url": url,
    }
    plain = _message(tmp_path, MESSAGE)
    templated = _message(tmp_path, MESSAGE + "template: consultation_news\n", "templated.yaml")

    def test(message: str) -> list[str]:
        return [
            "broadcast",
            "test",
            "elders",
            "--message",
            message,
            "--to",
            "whatsapp:+33 6 12 34 56 78",
        ]

    waits = await consult(test(plain), **whatsapp)  # never wrote to the bot: no free text
    assert waits.returncode == 1 and "within 24 hours" in waits.stderr
    assert fake.sent_to(NUMBER) == []
    outside = await consult(test(templated), **whatsapp)
    assert outside.returncode == 0, outside.stderr
    (template,) = fake.sent_to(NUMBER)
    assert template["type"] == "template"
    assert template["template"]["name"] == "consultation_news"

    async with sessions() as session, session.begin():  # the organiser writes to the bot
        await enrol(session, SECRET, "whatsapp", NUMBER, NUMBER, datetime.now(UTC))
    inside = await consult(test(templated), **whatsapp)
    assert inside.returncode == 0, inside.stderr
    text = fake.sent_to(NUMBER)[-1]
    assert text["type"] == "interactive"  # the text, with its reply button
    assert text["interactive"]["body"]["text"] == TEXTS["fr"]

    outcomes = [entry.detail for entry in (await _written(sessions))[2]]
    assert [o["outcome"] for o in outcomes] == ["needs-template", "sent", "sent"]
    for output in (waits, outside, inside):
        _nowhere_number(output.stdout, output.stderr)
    _nowhere_number(caplog.text, *(json.dumps(o) for o in outcomes))


def _nowhere_number(*texts: str) -> None:
    for text in texts:
        assert NUMBER not in text and "12 34 56 78" not in text

"""No token or secret shows in a repr, a log line, an answer or the command's output: every one
is configured with a marker, a conversation is played on every channel and the command's error
paths are taken, and the marker is looked for everywhere."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from adapters.slack import EVENTS_PATH, OAuthApp
from bench.fakes import slack_api, whatsapp_api
from bench.fakes.slack_api import TEAM, FakeSlack
from bench.fakes.telegram_api import FakeTelegram
from bench.fakes.whatsapp_api import PHONE_NUMBER_ID, FakeGraphAPI
from bench.processes import free_port, serving
from bots.channels import enabled_channels
from bots.server import create_app
from bots.settings import Settings
from bots.telegram import telegram_config
from tests.bots.console.dashboard_population import Sessions, compute
from tests.bots.test_cli import consult
from tests.conftest import Loader
from tests.support import Clock

MARK = "MARKER"
SECRETS = {
    "secret_key": "MARKER-secret-key-0a1b",
    "telegram_token": "424242:MARKER-telegram-token-1a2b",
    "telegram_webhook_secret": "MARKER-telegram-secret-2b3c",
    "whatsapp_token": "MARKER-whatsapp-token-3c4d",
    "whatsapp_app_secret": "MARKER-whatsapp-app-secret-4d5e",
    "whatsapp_verify_token": "MARKER-whatsapp-verify-5e6f",
    "slack_bot_token": "xoxb-MARKER-slack-bot-token-6f7a",
    "slack_signing_secret": "MARKER-slack-signing-secret-7a8b",
    "slack_client_secret": "MARKER-slack-client-secret-8b9c",
    "organiser_token": "MARKER-organiser-token-9c0d",
}
ALICE = 4242


def environment(**values: str) -> dict[str, str]:
    """`CONSULT_*` variables for `values` (setting names)."""
    return {f"CONSULT_{name.upper()}": value for name, value in values.items()}


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram(SECRETS["telegram_token"], bot_username="elders_bot") as fake:
        yield fake


@pytest.fixture
async def graph() -> AsyncIterator[tuple[FakeGraphAPI, str]]:
    fake = FakeGraphAPI(token=SECRETS["whatsapp_token"])
    async with serving(fake.app()) as url:
        yield fake, url


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    fake.tokens[SECRETS["slack_bot_token"]] = TEAM
    async with fake.running():
        yield fake


def test_reprs_hide_every_secret(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, **SECRETS)  # type: ignore[call-arg]
    shown = [repr(settings), str(settings), settings.model_dump_json()]
    shown += [
        repr(telegram_config(settings)),
        repr(OAuthApp("1.2", SECRETS["slack_client_secret"])),
    ]
    shown += [repr(channel) for channel in enabled_channels(settings)]
    for text in shown:
        assert MARK not in text, text
    assert settings.resolved_secret() == SECRETS["secret_key"].encode()


async def test_a_conversation_on_every_channel_logs_no_secret(
    database_url: str,
    tmp_path: Path,
    load_consultation: Loader,
    telegram: FakeTelegram,
    graph: tuple[FakeGraphAPI, str],
    slack: FakeSlack,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    sessions: Sessions,
    clock: Clock,
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: every library's records too
    consultation = await load_consultation()
    await compute(sessions, consultation, clock)  # the results the organiser API answers
    whatsapp, whatsapp_url = graph
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        database_url=database_url,
        telegram_api_url=telegram.url,
        whatsapp_api_url=whatsapp_url,
        whatsapp_phone_number_id=PHONE_NUMBER_ID,
        slack_api_url=slack.api_url,
        **SECRETS,
    )
    channels = enabled_channels(settings)
    answers: list[httpx.Response] = []
    async with serving(create_app(settings, channels=channels)) as url, httpx.AsyncClient() as http:
        # Telegram: /start from a deep link, answered by a card.
        update = telegram.start_update(ALICE, "elders")
        secret_header = {"X-Telegram-Bot-Api-Secret-Token": SECRETS["telegram_webhook_secret"]}
        answers.append(
            await http.post(f"{url}/webhooks/telegram", json=update, headers=secret_header)
        )
        await asyncio.to_thread(telegram.wait_for, lambda: telegram.sent_texts(ALICE), 15)
        # WhatsApp: a first message, answered once its replies are sent.
        message = whatsapp_api.text_message("15551234567", "hello")
        body, headers = whatsapp_api.signed(
            whatsapp_api.delivery(message), SECRETS["whatsapp_app_secret"]
        )
        answers.append(await http.post(f"{url}/webhooks/whatsapp", content=body, headers=headers))
        # Slack: the slash command, whose work is done once the channel is drained.
        command = slack_api.slash_command("U0ALICE", "elders")
        signed = slack_api.signed(
            command,
            "application/x-www-form-urlencoded",
            now=time.time(),
            secret=SECRETS["slack_signing_secret"],
        )
        answers.append(await http.post(url + EVENTS_PATH, content=command, headers=signed))
        # The organiser API, with a wrong token and the right one.
        results = f"{url}/api/consultations/elders/results"
        answers.append(await http.get(results, headers={"Authorization": "Bearer wrong"}))
        organiser = {"Authorization": f"Bearer {SECRETS['organiser_token']}"}
        answers.append(await http.get(results, headers=organiser))
        for channel in channels:
            drained = getattr(channel, "drained", None)
            if drained is not None:
                await drained()
    assert [answer.status_code for answer in answers] == [200, 200, 200, 401, 200]
    assert whatsapp.sent and slack.ok_calls("chat.postMessage")  # every channel answered
    everything = [caplog.text, *capsys.readouterr(), *(answer.text for answer in answers)]
    everything += [json.dumps(dict(answer.headers)) for answer in answers]
    for text in everything:
        assert MARK not in text, text


@pytest.mark.parametrize(
    ("arguments", "settings", "code"),
    [
        # a token Telegram does not know (the fake answers 404, as Telegram does)
        (["telegram", "set-webhook", "https://example.org/hook"], {"telegram_api_url": "fake"}, 1),
        # Telegram unreachable
        (
            ["telegram", "set-webhook", "https://example.org/hook"],
            {"telegram_api_url": "closed"},
            1,
        ),
        # a half-configured channel: a token without its secret
        (["serve"], {"telegram_webhook_secret": ""}, 2),
        (["serve"], {"whatsapp_app_secret": ""}, 2),
        (["serve", "--port", "0"], {}, 2),
        (["slack", "post", "C0123456", "elders"], {"slack_signing_secret": ""}, 2),
    ],
)
def test_the_command_says_no_secret_when_it_fails(
    arguments: list[str],
    settings: dict[str, str],
    code: int,
    tmp_path: Path,
    telegram: FakeTelegram,
) -> None:
    urls = {"fake": telegram.url, "closed": f"http://127.0.0.1:{free_port()}"}
    values = {**SECRETS, **{name: urls.get(value, value) for name, value in settings.items()}}
    values["telegram_token"] = values["telegram_token"].replace("424242", "777")  # not the fake's
    env = {
        **environment(**values),
        "CONSULT_DATABASE_URL": f"sqlite:///{tmp_path / 'consult.sqlite3'}",
        "CONSULT_DATA_DIR": str(tmp_path),
        "LC_ALL": "C.UTF-8",
    }
    done = consult(arguments, env)
    assert done.returncode == code, done.stderr
    assert done.stderr.strip()  # it said what went wrong...
    assert MARK not in done.stdout + done.stderr  # ...without a secret


def test_a_database_password_stays_out_of_the_settings_repr() -> None:
    settings = Settings(database_url="postgresql://consult:MARKER-db-password@db/consult")
    assert "MARKER-db-password" not in repr(settings) + str(settings)

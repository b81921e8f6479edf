"""The webhook over real HTTP: verification, signatures, limits, statuses, duplicates, failures."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import func, select

from adapters.whatsapp import GraphSender, WhatsAppChannel, signature_of
from bench.fakes.whatsapp_api import (
    FakeGraphAPI,
    delivery,
    signed,
    status_update,
    text_message,
)
from bench.processes import serving
from bots.errors import ChannelNotConfigured
from bots.server import create_app
from bots.settings import Settings
from core.flow import Flow
from core.models import ProcessedEvent
from core.storage import create_engine, migrate, session_factory
from tests.adapters.whatsapp.conftest import APP_SECRET, VERIFY_TOKEN, WEBHOOK, Running
from tests.bots.test_cli import consult


async def test_meta_subscribes_with_the_verify_token(running: Running) -> None:
    query = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    answer = await running.client.get(f"{running.url}{WEBHOOK}", params=query)
    assert answer.status_code == 200
    assert answer.text == "1158201444"
    assert answer.headers["content-type"].startswith("text/plain")

    for wrong in ({"hub.verify_token": "guess"}, {"hub.mode": "unsubscribe"}, {"hub.mode": ""}):
        answer = await running.client.get(f"{running.url}{WEBHOOK}", params={**query, **wrong})
        assert answer.status_code == 403


async def test_unsigned_or_badly_signed_deliveries_are_refused_untouched(
    running: Running,
) -> None:
    body, headers = signed(delivery(text_message("33612345678", "bonjour")), APP_SECRET)
    url = f"{running.url}{WEBHOOK}"
    missing = {"Content-Type": "application/json"}
    assert (await running.client.post(url, content=body, headers=missing)).status_code == 401
    forged = {**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64}
    assert (await running.client.post(url, content=body, headers=forged)).status_code == 403
    tampered = body.replace(b"bonjour", b"bonsoir")
    assert (await running.client.post(url, content=tampered, headers=headers)).status_code == 403
    other_secret = signed(delivery(text_message("33612345678", "bonjour")), "not-the-secret")
    answer = await running.client.post(url, content=other_secret[0], headers=other_secret[1])
    assert answer.status_code == 403
    # A garbage body with a bad signature is refused for its signature, before any parsing.
    garbage = {**headers, "X-Hub-Signature-256": "sha256=00"}
    assert (
        await running.client.post(url, content=b"{not json", headers=garbage)
    ).status_code == 403

    await running.channel.drained()
    assert running.graph.calls == []
    assert await _processed(running) == 0


async def test_oversized_malformed_and_unknown_deliveries(running: Running) -> None:
    url = f"{running.url}{WEBHOOK}"
    big = delivery(text_message("33612345678", "x" * 70_000))
    body, headers = signed(big, APP_SECRET)
    assert (await running.client.post(url, content=body, headers=headers)).status_code == 413

    bad_json = b'{"object": "whatsapp_business_account", '
    headers = signed({}, APP_SECRET)[1]
    headers["X-Hub-Signature-256"] = signature_of(bad_json, APP_SECRET)
    assert (await running.client.post(url, content=bad_json, headers=headers)).status_code == 400
    a_list = b"[1, 2]"
    headers["X-Hub-Signature-256"] = signature_of(a_list, APP_SECRET)
    assert (await running.client.post(url, content=a_list, headers=headers)).status_code == 400

    for unknown in (
        {"object": "page", "entry": [{"id": "1", "messaging": []}]},
        {"object": "whatsapp_business_account", "entry": "nope"},
        {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "x"}]}]},
        delivery({"from": "33612345678", "id": "wamid.react", "type": "reaction", "reaction": {}}),
    ):
        assert (await running.deliver(unknown)).status_code == 200
    assert running.channel.unsupported_ignored == 1
    assert running.graph.calls == []
    assert await _processed(running) == 0


async def test_delivery_statuses_are_counted_never_treated_as_messages(running: Running) -> None:
    statuses = (status_update("33612345678", "sent"), status_update("33612345678", "read"))
    assert (await running.deliver(delivery(statuses=statuses))).status_code == 200
    assert running.channel.statuses_ignored == 2
    assert running.graph.calls == []
    assert await _processed(running) == 0


async def test_a_message_delivered_twice_is_answered_once(running: Running) -> None:
    message = text_message("33612345678", "bonjour", key="wamid.twice")
    assert (await running.deliver(delivery(message))).status_code == 200
    answered = len(running.graph.sent)
    assert answered >= 1
    assert (await running.deliver(delivery(message))).status_code == 200
    assert len(running.graph.sent) == answered

    # The same message at the same time, as two of Meta's retries racing each other.
    racing = text_message("33698765432", "bonjour", key="wamid.racing")
    answers = await asyncio.gather(*(running.deliver(delivery(racing)) for _ in range(3)))
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert len(running.graph.sent_to("33698765432")) == answered
    assert await _processed(running) == 2


async def test_a_failure_answers_500_and_metas_retry_is_processed_once(
    database_url: str, graph: tuple[FakeGraphAPI, str]
) -> None:
    fake, graph_url = graph
    engine = create_engine(database_url)  # not migrated yet: handling the message fails
    channel = WhatsAppChannel(
        GraphSender(graph_url, fake.token), app_secret=APP_SECRET, verify_token=VERIFY_TOKEN
    )
    await channel.open(Flow(session_factory(engine), b"secret"))
    app = FastAPI()
    app.include_router(channel.router)
    try:
        async with serving(app) as url:
            running = Running(url, channel, fake, client=_client())
            async with running.client:
                message = delivery(text_message("33612345678", "bonjour", key="wamid.retried"))
                assert (await running.deliver(message)).status_code == 500
                assert fake.calls == []

                await migrate(engine)  # the database is back; Meta delivers again, twice
                assert (await running.deliver(message)).status_code == 200
                answered = len(fake.sent)
                assert answered >= 1
                assert (await running.deliver(message)).status_code == 200
                assert len(fake.sent) == answered
    finally:
        await channel.close()
        await engine.dispose()


async def test_a_late_retry_outside_the_24_hour_window_is_handled_but_not_answered(
    running: Running, caplog
) -> None:
    message = text_message("33612345678", "bonjour", key="wamid.late")
    message["timestamp"] = str(int(time.time()) - 25 * 3600)
    assert (await running.deliver(delivery(message))).status_code == 200
    assert running.graph.calls == []
    assert running.channel.sender.refused_outside_window >= 1
    assert await _processed(running) == 1
    assert any(
        r.name == "consult.whatsapp" and "more than 24 hours ago" in r.getMessage()
        for r in caplog.records
    )


async def test_the_server_mounts_whatsapp_when_its_token_is_set(
    settings: Settings, tmp_path: Path
) -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"}
    async with serving(create_app(settings)) as url, _client() as client:
        assert (await client.get(f"{url}{WEBHOOK}", params=query)).text == "42"
    without = settings.model_copy(update={"whatsapp_token": None})
    async with serving(create_app(without)) as url, _client() as client:
        assert (await client.get(f"{url}{WEBHOOK}", params=query)).status_code == 404


def test_a_token_without_the_app_secret_or_verify_token_is_a_configuration_error(
    settings: Settings, tmp_path: Path
) -> None:
    incomplete = settings.model_copy(update={"whatsapp_app_secret": None})
    with pytest.raises(ChannelNotConfigured) as problem:
        create_app(incomplete)
    assert problem.value.values == {"names": "CONSULT_WHATSAPP_APP_SECRET"}
    env = {
        "CONSULT_DATA_DIR": str(tmp_path),
        "CONSULT_WHATSAPP_TOKEN": "token",
        "LC_ALL": "en_US.UTF-8",
    }
    served = consult(["serve", "--port", "8999"], env)
    assert served.returncode == 2
    assert (
        "WhatsApp needs CONSULT_WHATSAPP_APP_SECRET, CONSULT_WHATSAPP_VERIFY_TOKEN" in served.stderr
    )
    assert "Traceback" not in served.stderr


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=30)


async def _processed(running: Running) -> int:
    flow = running.channel.flow
    assert flow is not None
    async with flow.sessions() as session:
        return (await session.exec(select(func.count()).select_from(ProcessedEvent))).one()

"""Sending to the fake Graph API: throughput errors retried (in a turn of the caller's flow when
it paces its sends), the 24-hour window enforced."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from adapters.pacing import paced_by
from adapters.whatsapp import GraphSender, template_message, within_window
from adapters.whatsapp.render import text_messages
from bench.fakes.whatsapp_api import PHONE_NUMBER_ID, FakeGraphAPI
from core.notices import Handover

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
WA_ID = "33612345678"


class Sleeps:
    """Really sleeps, and remembers for how long it was asked to."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(seconds)


@pytest.fixture
async def sender(graph: tuple[FakeGraphAPI, str]) -> AsyncIterator[GraphSender]:
    fake, url = graph
    sender = GraphSender(
        url,
        fake.token,
        recipient_messages_per_second=100.0,
        backoff_seconds=0.1,
        clock=lambda: NOW,
        sleep=Sleeps(),
    )
    await sender.open()
    yield sender
    await sender.close()


def test_the_window_is_24_hours_from_the_last_inbound_message() -> None:
    assert within_window(NOW - timedelta(hours=23, minutes=59), NOW)
    assert not within_window(NOW - timedelta(hours=24), NOW)
    assert not within_window(None, NOW)


async def test_a_rate_limited_send_is_retried_until_delivered(
    sender: GraphSender, graph: tuple[FakeGraphAPI, str]
) -> None:
    fake = graph[0]
    fake.max_per_second = 1
    messages = text_messages("one") + text_messages("two") + text_messages("three")
    delivered = await sender.send_messages(PHONE_NUMBER_ID, WA_ID, messages, last_inbound=NOW)
    assert delivered == 3
    assert [body["text"]["body"] for body in fake.sent] == ["one", "two", "three"]
    refused = [call for call in fake.calls if call.status == 429]
    assert refused and sender.retried == len(refused)
    assert sender.failed == 0 and sender.sent == 3
    assert all(call.authorization == f"Bearer {fake.token}" for call in fake.calls)
    assert {call.phone_number_id for call in fake.calls} == {PHONE_NUMBER_ID}


async def test_retry_after_is_honoured(
    sender: GraphSender, graph: tuple[FakeGraphAPI, str]
) -> None:
    fake = graph[0]
    fake.max_per_second, fake.retry_after = 1, 1.0
    delivered = await sender.send_messages(
        PHONE_NUMBER_ID, WA_ID, text_messages("a") + text_messages("b"), last_inbound=NOW
    )
    assert delivered == 2
    assert isinstance(sender.sleep, Sleeps) and 1.0 in sender.sleep.delays


async def test_a_throttled_notice_is_tried_again_in_a_turn_of_its_flow(
    sender: GraphSender, graph: tuple[FakeGraphAPI, str]
) -> None:
    fake = graph[0]
    fake.max_per_second, fake.retry_after = 0, 0.01  # every send throttled
    turns: list[int] = []

    async def turn() -> None:  # the broadcasts' worker's pace, say
        turns.append(len(fake.calls))

    with paced_by(turn):
        handover = await sender.notify(PHONE_NUMBER_ID, WA_ID, text_messages("a")[0])
    assert handover == Handover.RETRY
    assert turns == [1, 2, 3, 4]  # after each 429, before the next try


async def test_retries_are_bounded_and_a_refused_message_is_logged(
    graph: tuple[FakeGraphAPI, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = graph
    fake.max_per_second = 0  # every send refused for throughput
    sender = GraphSender(url, fake.token, max_attempts=3, backoff_seconds=0.01)
    await sender.open()
    try:
        assert not await sender.send_template(PHONE_NUMBER_ID, WA_ID, "reminder", "fr")
    finally:
        await sender.close()
    assert len(fake.calls) == 3 and sender.failed == 1 and sender.retried == 2
    assert "130429" in caplog.text

    wrong_token = GraphSender(url, "not-the-token")
    await wrong_token.open()
    try:
        assert not await wrong_token.send_template(PHONE_NUMBER_ID, WA_ID, "reminder", "fr")
    finally:
        await wrong_token.close()
    assert len(fake.calls) == 4  # an authentication error is not retried


async def test_outside_the_window_only_a_template_may_be_sent(
    sender: GraphSender, graph: tuple[FakeGraphAPI, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake = graph[0]
    last_wrote = NOW - timedelta(hours=25)
    caplog.set_level(logging.WARNING, logger="consult.whatsapp")
    refused = await sender.send_messages(
        PHONE_NUMBER_ID, WA_ID, text_messages("Nouvelles propositions !"), last_inbound=last_wrote
    )
    assert refused == 0
    assert fake.calls == []
    assert sender.refused_outside_window == 1
    (record,) = [r for r in caplog.records if r.name == "consult.whatsapp"]
    assert "more than 24 hours ago" in record.getMessage()
    assert WA_ID not in record.getMessage()  # a log names no one

    assert await sender.send_template(
        PHONE_NUMBER_ID, WA_ID, "new_proposals", "fr", ["Comment mieux prendre soin ?"]
    )
    (body,) = fake.sent
    assert body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": WA_ID,
        **template_message("new_proposals", "fr", ["Comment mieux prendre soin ?"]),
    }
    assert body["template"]["components"][0]["parameters"] == [
        {"type": "text", "text": "Comment mieux prendre soin ?"}
    ]

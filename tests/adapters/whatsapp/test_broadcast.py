"""WhatsApp broadcasts over real HTTP to the fake Graph API, on both databases: inside the
24-hour window a text with a reply button that starts the consultation again, outside it the
broadcast's template, or, without one, the message waits; the messaging tier holds back the
people past it; a number that blocked the business is marked and skipped; a STOP-style reply
unsubscribes them from everything, confirmed in their language."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlmodel import col, select

from adapters.whatsapp import WhatsAppChannel
from adapters.whatsapp.inbound import address_of, parse_delivery
from bench.fakes.whatsapp_api import (
    PHONE_NUMBER_ID,
    FakeGraphAPI,
    button_reply,
    delivery,
    text_message,
)
from bots.broadcast_worker import BroadcastWorker
from bots.settings import Settings
from bots.whatsapp import whatsapp_channel
from core.i18n import Translator
from core.identity import enrol, identity_hash
from core.messages import Start
from core.models import BroadcastMessage, Contact, Participation
from core.notices import Handover
from tests.bots.broadcasting import VirtualTime, enrolled, queued_broadcast, states

TEMPLATE = {"name": "consultation_news", "language": "fr", "parameters": ["text", "link"]}
RATES = {"whatsapp": 1000.0}


@pytest.fixture
async def channel(
    settings: Settings, graph: tuple[FakeGraphAPI, str], flow, clock
) -> AsyncIterator[WhatsAppChannel]:
    built = whatsapp_channel(
        settings, recipient_messages_per_second=1000.0, recipient_burst=1000.0, clock=clock
    )
    await built.open(flow)
    yield built
    await built.close()


def at_number(wa_id: str) -> str:
    return address_of(PHONE_NUMBER_ID, wa_id)


async def test_inside_the_window_a_button_outside_the_template(
    load_consultation, sessions, clock, channel, graph
) -> None:
    fake, _ = graph
    consultation = await load_consultation()
    (inside,) = await enrolled(
        sessions, clock, "whatsapp", ["33600000001"], seen=clock(), address=at_number
    )
    old = clock() - timedelta(days=2)
    (outside,) = await enrolled(
        sessions, clock, "whatsapp", ["33600000002"], seen=old, address=at_number
    )
    recipients = [(inside, "whatsapp", "fr"), (outside, "whatsapp", "fr")]
    broadcast = await queued_broadcast(
        sessions, clock, consultation, recipients, button=True, template=TEMPLATE
    )
    worker = BroadcastWorker(sessions, {"whatsapp": channel}, clock=clock, rates=RATES)
    assert await worker.drain() == {Handover.SENT: 2}
    assert await states(sessions, broadcast) == [("sent", None), ("sent", "outside-window")]
    (with_button,) = fake.sent_to("33600000001")
    assert with_button["type"] == "interactive"
    assert with_button["interactive"]["body"]["text"] == "Bonjour !"
    (button,) = with_button["interactive"]["action"]["buttons"]
    assert button["reply"]["id"] == "start elders"
    (template,) = fake.sent_to("33600000002")
    assert template["template"]["name"] == "consultation_news"
    assert template["template"]["components"][0]["parameters"] == [
        {"type": "text", "text": "Bonjour !"},
        {"type": "text", "text": "https://wa.me/15550783881?text=start%20elders"},
    ]
    # The tap on the button comes back as the /start of the consultation's deep link.
    parsed = parse_delivery(delivery(button_reply("33600000001", "start elders")))
    assert not isinstance(parsed, type(None))
    (tapped,) = parsed.messages  # type: ignore[union-attr]
    assert isinstance(tapped.event, Start) and tapped.event.payload == "elders"


async def test_outside_the_window_without_a_template_the_message_waits(
    load_consultation, sessions, clock, channel, graph
) -> None:
    fake, _ = graph
    consultation = await load_consultation()
    old = clock() - timedelta(days=2)
    people = await enrolled(
        sessions, clock, "whatsapp", ["33600000011"], seen=old, address=at_number
    )
    broadcast = await queued_broadcast(
        sessions, clock, consultation, [(p, "whatsapp", "en") for p in people]
    )
    worker = BroadcastWorker(sessions, {"whatsapp": channel}, clock=clock, rates=RATES)
    assert await worker.drain() == {Handover.NEEDS_TEMPLATE: 1}
    assert await states(sessions, broadcast) == [("waiting", "no-template")]
    assert fake.calls == []


async def test_the_tier_holds_back_the_people_past_it(
    load_consultation, sessions, clock, channel, graph
) -> None:
    fake, _ = graph
    consultation = await load_consultation()
    old = clock() - timedelta(days=2)
    users = ["33600000021", "33600000022", "33600000023"]
    people = await enrolled(sessions, clock, "whatsapp", users, seen=old, address=at_number)
    broadcast = await queued_broadcast(
        sessions, clock, consultation, [(p, "whatsapp", "fr") for p in people], template=TEMPLATE
    )
    worker = BroadcastWorker(
        sessions, {"whatsapp": channel}, clock=clock, rates=RATES, whatsapp_tier=2
    )
    assert await worker.drain() == {Handover.SENT: 2}
    assert [s for s, _ in await states(sessions, broadcast)] == ["sent", "sent", "queued"]
    async with sessions() as session:
        held = (
            await session.exec(
                select(BroadcastMessage.next_attempt_at).where(
                    col(BroadcastMessage.state) == "queued"
                )
            )
        ).one()
    assert held == clock() + timedelta(hours=24)  # when the first two are a day old
    clock.advance(hours=24)
    assert await worker.drain() == {Handover.SENT: 3}
    assert len(fake.sent) == 3


async def test_a_number_that_blocked_the_business_is_marked_unreachable(
    load_consultation, sessions, clock, channel, graph
) -> None:
    fake, _ = graph
    consultation = await load_consultation()
    people = await enrolled(
        sessions, clock, "whatsapp", ["33600000031"], seen=clock(), address=at_number
    )
    fake.undeliverable.add("33600000031")
    broadcast = await queued_broadcast(
        sessions, clock, consultation, [(p, "whatsapp", "fr") for p in people]
    )
    worker = BroadcastWorker(sessions, {"whatsapp": channel}, clock=clock, rates=RATES)
    assert await worker.drain() == {Handover.UNREACHABLE: 1}
    assert await states(sessions, broadcast) == [("failed", "unreachable")]


@pytest.mark.parametrize("word", ["ARRÊT", "stop", "Unsubscribe."])
async def test_a_stop_reply_unsubscribes_from_everything_and_is_confirmed(
    load_consultation, sessions, clock, running, settings, word
) -> None:
    elders = await load_consultation()
    other = await load_consultation(slug="other")
    secret = settings.resolved_secret()
    wa_id = "33600000041"
    async with sessions() as session, session.begin():
        enrolment = await enrol(session, secret, "whatsapp", wa_id, at_number(wa_id), clock())
        person = enrolment.participant
        person.locale = "fr"
        session.add(person)
        for consultation in (elders, other):
            session.add(
                Participation(
                    participant_id=person.id,
                    consultation_id=consultation.id,
                    consented_at=clock(),
                    created_at=clock(),
                    updated_at=clock(),
                )
            )
        hashed = identity_hash(secret, "whatsapp", wa_id)
        session.add(
            Contact(
                consultation_id=other.id,
                list_name="crm",
                channel="whatsapp",
                identity_hash=hashed,
                created_at=clock(),
            )
        )
    queued = await queued_broadcast(sessions, clock, elders, [(person.id, "whatsapp", "fr")])
    response = await running.deliver(delivery(text_message(wa_id, word)))
    assert response.status_code == 200
    async with sessions() as session:
        subscribed = (await session.exec(select(Participation.subscribed))).all()
        contact = (await session.exec(select(Contact))).one()
    assert subscribed == [False, False]
    assert contact.unsubscribed_at is not None
    (confirmation,) = running.graph.sent_to(wa_id)
    assert confirmation["text"]["body"] == Translator("fr")("broadcast.unsubscribed")
    # What was queued for them before is not sent.
    worker = BroadcastWorker(sessions, {"whatsapp": running.channel}, clock=clock, rates=RATES)
    assert await worker.drain() == {}
    assert await states(sessions, queued) == [("failed", "unsubscribed")]


async def test_a_throughput_error_is_waited_out_once(
    load_consultation, sessions, clock, settings, graph, flow
) -> None:
    fake, _ = graph
    time = VirtualTime()
    fake.clock, fake.max_per_second, fake.retry_after = time, 1, 1.0
    consultation = await load_consultation()
    users = ["33600000051", "33600000052"]
    people = await enrolled(sessions, clock, "whatsapp", users, seen=clock(), address=at_number)
    await queued_broadcast(sessions, clock, consultation, [(p, "whatsapp", "fr") for p in people])
    channel = whatsapp_channel(
        settings,
        recipient_messages_per_second=1000.0,
        recipient_burst=1000.0,
        clock=clock,
        sleep=time.sleep,
    )
    await channel.open(flow)
    try:
        worker = BroadcastWorker(sessions, {"whatsapp": channel}, clock=clock, rates=RATES)
        assert await worker.drain() == {Handover.SENT: 2}
    finally:
        await channel.close()
    assert sorted(call.status for call in fake.calls) == [200, 200, 429]
    assert time.waits == [1.0]  # Meta's Retry-After, once: no storm

"""WhatsApp notices over real HTTP to the fake Graph API: text inside the 24-hour window, the
consultation's template outside it, and without a template the notice waits where organisers
see it; on both databases, with the clock injected into the worker and the sender."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlmodel import col, select

from adapters.whatsapp import WhatsAppChannel
from adapters.whatsapp.inbound import address_of
from bench.fakes.whatsapp_api import PHONE_NUMBER_ID, FakeGraphAPI
from bots.notices import NoticeWorker
from bots.settings import Settings
from bots.whatsapp import whatsapp_channel
from core.definitions import settings_of
from core.identity import enrol
from core.models import Notice, NoticeState
from core.moderation import Accept, Actor, Refuse, Source, decide
from core.notices import WAITING_RECHECK, Handover, notices_needing_attention
from core.proposals import submit_proposal
from tests.conftest import SECRET

ANA = Actor("ana@example.org", Source.CLI)
TEMPLATE = {"name": "proposal_decided", "languages": {"en": "en_US"}}


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


async def _proposal_by(sessions, clock, consultation, wa_id: str, locale: str, typed: str) -> int:
    """A proposal by a WhatsApp participant who writes now (their window opens now)."""
    async with sessions() as session, session.begin():
        address = address_of(PHONE_NUMBER_ID, wa_id)
        enrolment = await enrol(session, SECRET, "whatsapp", wa_id, address, clock())
        enrolment.participant.locale = locale
        session.add(enrolment.participant)
        assert enrolment.participant.id is not None
        proposal = await submit_proposal(
            session,
            enrolment.participant.id,
            consultation.id,
            typed,
            locale,
            settings_of(consultation),
            clock(),
        )
        assert proposal.id is not None
        return proposal.id


async def _decide(sessions, clock, proposal_id, decision) -> None:
    async with sessions() as session, session.begin():
        await decide(session, proposal_id, decision, ANA, clock())


async def _states(sessions) -> list[tuple[int, str]]:
    async with sessions() as session:
        notices = (await session.exec(select(Notice).order_by(col(Notice.id)))).all()
    return [(n.proposal_id, n.state) for n in notices]


async def test_inside_the_window_a_text_outside_it_the_template_or_a_wait(
    load_consultation, sessions, clock, channel, graph
) -> None:
    fake, _ = graph
    consultation = await load_consultation()
    worker = NoticeWorker(sessions, {"whatsapp": channel}, clock=clock)
    recent = await _proposal_by(sessions, clock, consultation, "33612345678", "fr", "Il faut lire")
    late = await _proposal_by(sessions, clock, consultation, "15551234567", "en", "We should sing")
    clock.advance(hours=2)
    await _decide(sessions, clock, recent, Accept())
    assert await worker.drain() == {Handover.SENT: 1}
    (text,) = fake.sent_to("33612345678")
    assert text["type"] == "text"
    assert "présentée aux autres participants" in text["text"]["body"]
    assert "Il faut lire" in text["text"]["body"]

    clock.advance(hours=23)  # the second author last wrote 25 hours ago
    fake.outside_window.add("15551234567")
    await _decide(sessions, clock, late, Refuse("off-topic"))
    assert (await worker.drain())[Handover.NEEDS_TEMPLATE] == 1
    assert fake.sent_to("15551234567") == []  # nothing tried: it would be refused
    async with sessions() as session:
        (waiting,) = await notices_needing_attention(session, consultation.id)
    assert (waiting.proposal_id, waiting.state, waiting.problem) == (
        late,
        NoticeState.WAITING,
        "no-template",
    )

    # The organiser names an approved template: the next look sends it.
    await load_consultation(settings={"sequence_size": 4, "whatsapp_notice_template": TEMPLATE})
    clock.advance(seconds=WAITING_RECHECK.total_seconds())
    assert (await worker.drain())[Handover.SENT] == 2
    (sent,) = fake.sent_to("15551234567")
    assert sent["type"] == "template"
    template = sent["template"]
    assert (template["name"], template["language"]["code"]) == ("proposal_decided", "en_US")
    (parameter,) = template["components"][0]["parameters"]
    assert "We should sing" in parameter["text"] and "does not answer" in parameter["text"]
    assert "\n" not in parameter["text"]  # Meta refuses line breaks in a parameter
    assert await _states(sessions) == [(recent, "sent"), (late, "sent")]


async def test_a_text_meta_refuses_as_outside_the_window_waits_for_a_template(
    load_consultation, sessions, clock, channel, graph
) -> None:
    """Our record of the author's last message may be wrong (another app's number, a clock):
    Meta's refusal (131047) makes the notice wait, it does not fail it."""
    fake, _ = graph
    consultation = await load_consultation()
    worker = NoticeWorker(sessions, {"whatsapp": channel}, clock=clock)
    proposal = await _proposal_by(sessions, clock, consultation, "4915112345", "en", "We should go")
    fake.outside_window.add("4915112345")
    await _decide(sessions, clock, proposal, Accept())
    assert await worker.drain() == {Handover.NEEDS_TEMPLATE: 1}
    assert [call.status for call in fake.calls] == [400]  # the free text Meta refused
    assert await _states(sessions) == [(proposal, "waiting")]

"""The notices' outbox in the core, on both databases: a notice is written with its decision
or not at all, claimed once, sent once, and what cannot be sent says why."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlmodel import col, select

from core.identity import enrol, forget_participant
from core.models import Notice, NoticeState, Participant, Proposal
from core.moderation import (
    Accept,
    Actor,
    Archive,
    Postpone,
    Refuse,
    Source,
    UnknownReason,
    audit_log,
    decide,
    decide_many,
)
from core.moderation.resend import NotResendable, UnknownNotice, resend_notice
from core.notices import (
    MAX_ATTEMPTS,
    WAITING_RECHECK,
    Handover,
    beat,
    claim,
    mark_unknown,
    notice_counts,
    notices_needing_attention,
    record,
)
from tests.conftest import SECRET
from tests.support import submitted

ANA = Actor("ana@example.org", Source.CLI)
STALE = timedelta(seconds=10)


async def _author(sessions, clock, user: str, locale: str, channel: str = "telegram") -> int:
    async with sessions() as session, session.begin():
        enrolment = await enrol(session, SECRET, channel, user, f"addr-{user}", clock())
        enrolment.participant.locale = locale
        session.add(enrolment.participant)
        assert enrolment.participant.id is not None
        return enrolment.participant.id


async def _decide(sessions, clock, proposal_id, decision):
    async with sessions() as session, session.begin():
        return await decide(session, proposal_id, decision, ANA, clock())


async def _notices(sessions) -> list[Notice]:
    async with sessions() as session:
        return list((await session.exec(select(Notice).order_by(col(Notice.id)))).all())


async def _claim(sessions, clock, worker: str, channels=("telegram",), limit: int = 50):
    async with sessions() as session, session.begin():
        await beat(session, worker, clock())
        return await claim(session, worker, channels, clock(), limit=limit)


async def _record(sessions, clock, worker: str, notice_id: int, handover: Handover):
    async with sessions() as session, session.begin():
        return await record(session, worker, notice_id, handover, clock())


async def test_accepting_and_refusing_write_the_authors_notice_and_nothing_else_does(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation()
    author = await _author(sessions, clock, "alice", "fr")
    ids = [
        await submitted(sessions, clock, consultation, author, f"Il faut idée {n}", "fr")
        for n in range(5)
    ]
    await _decide(sessions, clock, ids[0], Accept())
    await _decide(sessions, clock, ids[1], Refuse("off-topic"))
    await _decide(sessions, clock, ids[2], Accept(notify=False))
    await _decide(sessions, clock, ids[3], Postpone())
    await _decide(sessions, clock, ids[4], Archive())
    notices = await _notices(sessions)
    assert [(n.proposal_id, n.kind, n.reason) for n in notices] == [
        (ids[0], "accepted", None),
        (ids[1], "refused", "off-topic"),
    ]
    assert {(n.channel, n.locale, n.state, n.participant_id) for n in notices} == {
        ("telegram", "fr", NoticeState.QUEUED, author)
    }


async def test_a_decision_refused_or_rolled_back_leaves_no_notice(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation()
    author = await _author(sessions, clock, "alice", "en")
    first = await submitted(sessions, clock, consultation, author, "We should plant trees", "en")
    second = await submitted(sessions, clock, consultation, author, "We should fix roads", "en")
    with pytest.raises(UnknownReason):
        await _decide(sessions, clock, first, Refuse("not-a-reason"))

    class Crash(Exception):
        pass

    with pytest.raises(Crash):  # the decision's transaction fails after decide() returned
        async with sessions() as session, session.begin():
            await decide(session, first, Accept(), ANA, clock())
            raise Crash
    async with sessions() as session, session.begin():  # a bulk with a refused id
        outcome = await decide_many(session, [first, second, 999_999], Accept(), ANA, clock())
    assert sorted(outcome) == [first, second, 999_999]
    assert [n.proposal_id for n in await _notices(sessions)] == [first, second]


async def test_a_claimed_notice_is_in_the_authors_language_with_the_reason_or_the_original(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation()
    french = await _author(sessions, clock, "amelie", "fr")
    english = await _author(sessions, clock, "bob", "en")
    async with sessions() as session:
        seeded = select(Proposal).where(Proposal.locale == "en", Proposal.status == "accepted")
        existing = (await session.exec(seeded.limit(1))).one()
    accepted = await submitted(sessions, clock, consultation, french, "Il faut des bancs", "fr")
    refused = await submitted(sessions, clock, consultation, english, "We should go", "en")
    duplicate = await submitted(sessions, clock, consultation, english, "We should visit", "en")
    await _decide(sessions, clock, accepted, Accept())
    await _decide(sessions, clock, refused, Refuse("several-ideas"))
    await _decide(sessions, clock, duplicate, Refuse("already-exists", existing.id))
    outgoing = await _claim(sessions, clock, "w1")
    assert [o.locale for o in outgoing] == ["fr", "en", "en"]
    assert [o.address for o in outgoing] == ["addr-amelie", "addr-bob", "addr-bob"]
    texts = [o.text for o in outgoing]
    assert "présentée aux autres participants" in texts[0] and "Il faut des bancs" in texts[0]
    assert "We should go" in texts[1] and "it holds several ideas" in texts[1]
    assert "We should visit" in texts[2] and existing.text in texts[2]
    assert "vote on that one" in texts[2]
    assert all(o.template is None for o in outgoing)
    assert await _claim(sessions, clock, "w2") == []  # claimed once
    assert {n.state for n in await _notices(sessions)} == {NoticeState.CLAIMED}


async def test_an_author_who_forgot_gets_no_notice_and_it_says_why(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation()
    author = await _author(sessions, clock, "alice", "en")
    gone_before = await submitted(sessions, clock, consultation, author, "We should swim", "en")
    gone_after = await submitted(sessions, clock, consultation, author, "We should run", "en")
    await _decide(sessions, clock, gone_after, Accept())  # queued while they were there
    async with sessions() as session, session.begin():
        participant = await session.get(Participant, author)
        assert participant is not None
        await forget_participant(session, participant, clock())
    await _decide(sessions, clock, gone_before, Refuse("rudeness"))  # decided after /forget
    assert await _claim(sessions, clock, "w1") == []
    notices = await _notices(sessions)
    assert [(n.state, n.problem) for n in notices] == [
        (NoticeState.FAILED, "forgotten"),
        (NoticeState.FAILED, "forgotten"),
    ]


async def test_what_becomes_of_a_send(load_consultation, sessions, clock) -> None:
    consultation = await load_consultation()
    author = await _author(sessions, clock, "alice", "en")
    ids = [
        await submitted(sessions, clock, consultation, author, f"We should do {n}", "en")
        for n in range(4)
    ]
    for proposal_id in ids:
        await _decide(sessions, clock, proposal_id, Accept())
    sent, refused, unsure, retried = (o.id for o in await _claim(sessions, clock, "w1"))
    assert await _record(sessions, clock, "w1", sent, Handover.SENT) == NoticeState.SENT
    assert await _record(sessions, clock, "w1", refused, Handover.REFUSED) == NoticeState.FAILED
    assert await _record(sessions, clock, "w1", unsure, Handover.UNKNOWN) == NoticeState.UNKNOWN
    assert await _record(sessions, clock, "w1", retried, Handover.RETRY) == NoticeState.QUEUED
    assert await _record(sessions, clock, "w2", sent, Handover.SENT) is None  # not w2's
    assert await _claim(sessions, clock, "w1") == []  # the retry waits its backoff
    for attempt in range(2, MAX_ATTEMPTS + 1):
        clock.advance(hours=1)
        (again,) = await _claim(sessions, clock, "w1")
        assert again.id == retried
        state = await _record(sessions, clock, "w1", retried, Handover.RETRY)
        assert state == (NoticeState.FAILED if attempt == MAX_ATTEMPTS else NoticeState.QUEUED)
    clock.advance(hours=1)
    assert await _claim(sessions, clock, "w1") == []  # given up
    async with sessions() as session:
        counts = await notice_counts(session, consultation.id)
        attention = await notices_needing_attention(session, consultation.id)
    assert counts == {"sent": 1, "failed": 2, "unknown": 1}
    assert [(v.id, v.state, v.problem) for v in attention] == [(unsure, "unknown", "no-answer")]


async def test_whatsapp_without_a_template_waits_and_is_offered_again(
    load_consultation, sessions, clock
) -> None:
    template = {"name": "proposal_decided", "languages": {"en": "en_US"}}
    consultation = await load_consultation(
        settings={"sequence_size": 4, "whatsapp_notice_template": template}
    )
    author = await _author(sessions, clock, "alice", "en", channel="whatsapp")
    proposal = await submitted(sessions, clock, consultation, author, "We should sing", "en")
    await _decide(sessions, clock, proposal, Accept())
    (outgoing,) = await _claim(sessions, clock, "w1", channels=("whatsapp",))
    assert outgoing.template is not None
    assert (outgoing.template.name, outgoing.template.language) == ("proposal_decided", "en_US")
    assert outgoing.last_seen_at == clock()
    waiting = await _record(sessions, clock, "w1", outgoing.id, Handover.NEEDS_TEMPLATE)
    assert waiting == NoticeState.WAITING
    async with sessions() as session:
        (view,) = await notices_needing_attention(session, consultation.id)
    assert (view.proposal_id, view.kind, view.channel, view.problem) == (
        proposal,
        "accepted",
        "whatsapp",
        "no-template",
    )
    assert "addr" not in repr(view)  # no address, no participant
    assert await _claim(sessions, clock, "w1", channels=("whatsapp",)) == []
    assert await _claim(sessions, clock, "w1", channels=("telegram",)) == []
    clock.advance(seconds=WAITING_RECHECK.total_seconds())
    (again,) = await _claim(sessions, clock, "w1", channels=("whatsapp",))
    assert await _record(sessions, clock, "w1", again.id, Handover.SENT) == NoticeState.SENT


async def test_a_notice_claimed_by_a_dead_worker_becomes_unknown_and_is_never_sent_again(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation()
    author = await _author(sessions, clock, "alice", "en")
    proposal = await submitted(sessions, clock, consultation, author, "We should paint", "en")
    await _decide(sessions, clock, proposal, Accept())
    (outgoing,) = await _claim(sessions, clock, "dying")
    clock.advance(seconds=5)
    async with sessions() as session, session.begin():
        await beat(session, "alive", clock())
        assert await mark_unknown(session, clock(), STALE) == 0  # "dying" beat 5 s ago
    clock.advance(seconds=6)
    async with sessions() as session, session.begin():
        await beat(session, "alive", clock())
        assert await mark_unknown(session, clock(), STALE) == 1
    assert await _claim(sessions, clock, "alive") == []
    (notice,) = await _notices(sessions)
    assert (notice.state, notice.problem) == (NoticeState.UNKNOWN, "worker-died")
    # The worker was only slow and its send went through: that is the truth, recorded.
    assert await _record(sessions, clock, "dying", outgoing.id, Handover.SENT) == NoticeState.SENT


async def test_two_workers_claiming_at_once_never_take_the_same_notice(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation()
    author = await _author(sessions, clock, "alice", "en")
    ids = [
        await submitted(sessions, clock, consultation, author, f"We should try {n}", "en")
        for n in range(40)
    ]
    async with sessions() as session, session.begin():
        await decide_many(session, ids, Accept(), ANA, clock())

    async def drain(worker: str) -> list[int]:
        taken: list[int] = []
        while batch := await _claim(sessions, clock, worker, limit=3):
            taken += [o.id for o in batch]
        return taken

    first, second = await asyncio.gather(drain("w1"), drain("w2"))
    assert not set(first) & set(second)
    assert sorted(first + second) == [n.id for n in await _notices(sessions)]


async def test_an_organiser_sends_an_unknown_or_failed_notice_again_and_it_is_audited(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation()
    author = await _author(sessions, clock, "alice", "en")
    ids = [
        await submitted(sessions, clock, consultation, author, f"We should mend {n}", "en")
        for n in range(3)
    ]
    for proposal_id in ids:
        await _decide(sessions, clock, proposal_id, Accept())
    unsure, refused, sent = (o.id for o in await _claim(sessions, clock, "w1"))
    await _record(sessions, clock, "w1", unsure, Handover.UNKNOWN)
    await _record(sessions, clock, "w1", refused, Handover.REFUSED)
    await _record(sessions, clock, "w1", sent, Handover.SENT)

    async def resend(notice_id: int, consultation_id: int = consultation.id) -> None:
        async with sessions() as session, session.begin():
            await resend_notice(session, consultation_id, notice_id, ANA, clock())

    with pytest.raises(NotResendable):
        await resend(sent)  # told already
    with pytest.raises(UnknownNotice):
        await resend(unsure, consultation.id + 1)  # another consultation's
    await resend(unsure)
    await resend(refused)
    again = await _claim(sessions, clock, "w2")
    assert [o.id for o in again] == [unsure, refused]
    async with sessions() as session:
        entries = await audit_log(session, consultation.id)
    resent = [(e.action, e.target, e.detail["was"]) for e in entries if e.action == "notice.resend"]
    assert set(resent) == {
        ("notice.resend", f"notice:{refused}", "failed"),
        ("notice.resend", f"notice:{unsure}", "unknown"),
    }

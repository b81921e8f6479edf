"""The automatic reminders, on both databases: each is queued per its settings and its off
switch, in the participant's language, through the same occurrences as the organisers'
broadcasts; running the planner again at once creates nothing new."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from core.broadcasts.control import pause, resume
from core.broadcasts.reminders import MESSAGES, plan_reminders, reminder_broadcast
from core.i18n import has_message
from core.models import (
    Broadcast,
    BroadcastKind,
    BroadcastMessage,
    BroadcastRun,
    Participant,
    Proposal,
    ProposalStatus,
    Vote,
)
from tests.core.test_broadcast_planning import people

QUIET_OFF: dict[str, Any] = {"quiet_start": None, "quiet_end": None, "max_per_week": 50}


def _settings(published: bool = False, **reminders: Any) -> dict[str, Any]:
    return {
        "sequence_size": 4,
        "results_published": published,
        "broadcasts": {**QUIET_OFF, "reminders": reminders},
    }


async def remind(sessions, clock, consultation) -> int:
    async with sessions() as session, session.begin():
        return await plan_reminders(session, consultation, clock())


async def reminded(sessions, kind: str) -> list[tuple[int | None, str]]:
    async with sessions() as session:
        rows = await session.exec(
            select(BroadcastMessage.participant_id, BroadcastMessage.locale)
            .join(Broadcast, col(Broadcast.id) == BroadcastMessage.broadcast_id)
            .where(Broadcast.kind == kind)
            .order_by(col(BroadcastMessage.id))
        )
        return list(rows.all())


async def runs(sessions) -> int:
    async with sessions() as session:
        return len((await session.exec(select(BroadcastRun))).all())


async def on_step(sessions, participant_id: int, step: str) -> None:
    async with sessions() as session, session.begin():
        participant = await session.get(Participant, participant_id)
        assert participant is not None
        participant.step = step
        session.add(participant)


async def vote(sessions, clock, participant_id: int, at) -> None:
    async with sessions() as session, session.begin():
        proposal = (await session.exec(select(Proposal).order_by(col(Proposal.id)))).first()
        assert proposal is not None
        found = (
            await session.exec(
                select(Vote).where(
                    Vote.participant_id == participant_id, Vote.proposal_id == proposal.id
                )
            )
        ).first()
        if found is None:
            found = Vote(
                participant_id=participant_id, proposal_id=proposal.id, key="agree", created_at=at
            )
        found.updated_at = at
        session.add(found)


async def accepted_proposal(sessions, clock, consultation, at, author=None) -> None:
    async with sessions() as session, session.begin():
        session.add(
            Proposal(
                consultation_id=consultation.id,
                locale="fr",
                text=f"Il faut une idée de {at:%H:%M %d/%m}",
                author_id=author,
                status=ProposalStatus.ACCEPTED,
                created_at=at,
                updated_at=at,
            )
        )


async def test_a_participant_who_stopped_mid_sequence_is_reminded_once(
    load_consultation, sessions, clock
):
    consultation = await load_consultation(settings=_settings(stalled=True, stalled_after_hours=24))
    stuck, busy, done = await people(
        sessions, clock, consultation, ("en", "telegram"), ("fr", "slack"), ("fr", "telegram")
    )
    for participant in (stuck, busy):
        await on_step(sessions, participant, "card")
    clock.advance(hours=23)
    assert await remind(sessions, clock, consultation) == 0  # not yet: 23 hours
    await vote(sessions, clock, busy, clock())
    clock.advance(hours=2)
    assert await remind(sessions, clock, consultation) == 1
    assert await reminded(sessions, "stalled") == [(stuck, "en")]
    assert await remind(sessions, clock, consultation) == 0  # again at once: nothing new
    assert await runs(sessions) == 1
    clock.advance(hours=24)  # `busy` stalled too now; `stuck` had theirs
    assert await remind(sessions, clock, consultation) == 1
    assert await reminded(sessions, "stalled") == [(stuck, "en"), (busy, "fr")]
    clock.advance(days=3)
    assert await remind(sessions, clock, consultation) == 0
    assert done not in {p for p, _ in await reminded(sessions, "stalled")}


async def test_the_digest_needs_news_since_the_last_vote_and_waits_its_days(
    load_consultation, sessions, clock
):
    consultation = await load_consultation(settings=_settings(digest=True, digest_days=7))
    early, late, author = await people(
        sessions, clock, consultation, ("fr", "telegram"), ("en", "telegram"), ("en", "slack")
    )
    clock.advance(hours=1)
    await vote(sessions, clock, early, clock())
    assert await remind(sessions, clock, consultation) == 0  # nothing new since they joined
    clock.advance(hours=1)
    await accepted_proposal(sessions, clock, consultation, clock(), author=author)
    clock.advance(hours=1)
    await vote(sessions, clock, late, clock())  # voted after it was accepted
    assert await remind(sessions, clock, consultation) == 1  # `author` wrote it: not news
    assert await reminded(sessions, "digest") == [(early, "fr")]
    assert await remind(sessions, clock, consultation) == 0

    clock.advance(days=2)
    await accepted_proposal(sessions, clock, consultation, clock())
    assert await remind(sessions, clock, consultation) == 2  # `early` had one 2 days ago
    assert {p for p, _ in await reminded(sessions, "digest")} == {early, late, author}
    clock.advance(days=6)
    assert await remind(sessions, clock, consultation) == 1  # 8 days on, `early` again
    assert [p for p, _ in await reminded(sessions, "digest")].count(early) == 2


async def test_closing_soon_and_results_reach_everyone_once_in_their_language(
    load_consultation, sessions, clock
):
    ends_at = clock() + timedelta(hours=50)
    consultation = await load_consultation(
        settings=_settings(closing=True, closing_before_hours=48),
        ends_at=ends_at.isoformat(),
    )
    fr, en = await people(sessions, clock, consultation, ("fr", "telegram"), ("en", "slack"))
    assert await remind(sessions, clock, consultation) == 0  # 50 hours before: not yet
    clock.advance(hours=3)
    assert await remind(sessions, clock, consultation) == 2
    assert await remind(sessions, clock, consultation) == 0
    assert await reminded(sessions, "closing") == [(fr, "fr"), (en, "en")]
    async with sessions() as session:
        closing = (await session.exec(select(Broadcast))).one()
    assert closing.texts == {
        "fr": "La consultation « Comment mieux prendre soin de nos aînés ? » se termine "
        "bientôt : il est encore temps de voter et de proposer.",
        "en": '"How can we better care for our elders?" closes soon: there is still time to '
        "vote and to make a proposal.",
    }
    assert (closing.button, closing.created_by, closing.next_run_at) == (True, "reminders", None)

    published = await load_consultation(settings=_settings(published=True, results=True))
    assert await remind(sessions, clock, published) == 2
    assert await remind(sessions, clock, published) == 0
    clock.advance(days=1)
    assert await remind(sessions, clock, published) == 0
    assert await reminded(sessions, "results") == [(fr, "fr"), (en, "en")]


async def test_switched_off_or_paused_reminders_queue_nothing(load_consultation, sessions, clock):
    consultation = await load_consultation(settings=_settings(published=True))
    [stuck] = await people(sessions, clock, consultation, ("fr", "telegram"))
    await on_step(sessions, stuck, "qualify")
    clock.advance(days=2)
    assert await remind(sessions, clock, consultation) == 0  # every reminder is off
    async with sessions() as session:
        assert (await session.exec(select(Broadcast))).all() == []

    consultation = await load_consultation(settings=_settings(stalled=True))
    async with sessions() as session, session.begin():
        stalled = await reminder_broadcast(session, consultation, BroadcastKind.STALLED, clock())
        assert stalled is not None and stalled.id is not None
        await pause(session, stalled.id, "cli:ana", clock())
    assert await remind(sessions, clock, consultation) == 0  # the organiser paused it
    async with sessions() as session, session.begin():
        await resume(session, stalled.id, "cli:ana", clock())
    assert await remind(sessions, clock, consultation) == 1
    assert await reminded(sessions, "stalled") == [(stuck, "fr")]


@pytest.mark.parametrize("locale", ["en", "fr"])
def test_every_reminder_is_written_in_both_languages(locale: str) -> None:
    assert set(MESSAGES) == {
        BroadcastKind.STALLED,
        BroadcastKind.DIGEST,
        BroadcastKind.CLOSING,
        BroadcastKind.RESULTS,
    }
    for msgid in MESSAGES.values():
        assert has_message(locale, msgid), msgid

"""A broadcast's figures, on both databases: messages by state and by channel (blocked and
cancelled apart from failed), recipients skipped by reason, and who came back to vote or
propose within 24 hours of their message; and the list of a consultation's broadcasts."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import col, select

from core.broadcasts.stats import broadcast_stats, list_broadcasts
from core.models import BroadcastMessage, NoticeState, Proposal, Vote
from tests.core.test_broadcast_planning import NO_QUIET, _settings, create, people, plan


async def test_the_figures_add_up_by_state_by_channel_and_by_reason(
    load_consultation, sessions, clock
):
    consultation = await load_consultation(settings=_settings(max_per_week=1, **NO_QUIET))
    ids = await people(
        sessions,
        clock,
        consultation,
        *[("fr", "telegram")] * 6,
        *[("en", "slack")] * 3,
    )
    capped = await create(sessions, clock, consultation, "channel:slack")
    await plan(sessions, clock)
    broadcast = await create(sessions, clock, consultation)
    await plan(sessions, clock)  # the three on Slack are over the cap of one a week
    sent_at = clock()
    async with sessions() as session, session.begin():
        proposal = (await session.exec(select(Proposal).order_by(col(Proposal.id)))).first()
        assert proposal is not None
        rows = (
            await session.exec(
                select(BroadcastMessage)
                .where(BroadcastMessage.broadcast_id == broadcast.id)
                .order_by(col(BroadcastMessage.id))
            )
        ).all()
        outcomes = [
            (NoticeState.SENT, None),
            (NoticeState.SENT, None),
            (NoticeState.SENT, None),
            (NoticeState.FAILED, "unreachable"),
            (NoticeState.FAILED, "refused"),
            (NoticeState.UNKNOWN, "worker-died"),
        ]
        for message, (state, problem) in zip(rows, outcomes, strict=True):
            message.state, message.problem = state, problem
            message.sent_at = sent_at if state == NoticeState.SENT else None
            session.add(message)
        came, late, silent = ids[0], ids[1], ids[2]
        session.add(
            Vote(
                participant_id=came,
                proposal_id=proposal.id,
                key="agree",
                created_at=sent_at + timedelta(hours=2),
                updated_at=sent_at + timedelta(hours=2),
            )
        )
        session.add(
            Vote(
                participant_id=late,
                proposal_id=proposal.id,
                key="agree",
                created_at=sent_at + timedelta(hours=25),
                updated_at=sent_at + timedelta(hours=25),
            )
        )
        session.add(
            Vote(  # before the message: not a comeback
                participant_id=silent,
                proposal_id=proposal.id,
                key="agree",
                created_at=sent_at - timedelta(minutes=1),
                updated_at=sent_at - timedelta(minutes=1),
            )
        )
        session.add(
            Proposal(  # the slack recipient of the other broadcast, who proposed
                consultation_id=consultation.id,
                locale="en",
                text="We should open more day centres",
                author_id=ids[6],
                created_at=clock() + timedelta(hours=23),
                updated_at=clock() + timedelta(hours=23),
            )
        )
    clock.advance(days=2)
    async with sessions() as session:
        stats = await broadcast_stats(session, broadcast.id, clock())
        other = await broadcast_stats(session, capped.id, clock())
        views = await list_broadcasts(session, consultation.id)
    assert (stats.runs, stats.sent, stats.failed, stats.blocked, stats.unknown) == (1, 3, 1, 1, 1)
    assert (stats.queued, stats.claimed, stats.waiting, stats.cancelled) == (0, 0, 0, 0)
    assert stats.total == 6
    assert stats.skipped == {"cap": 3}
    assert stats.came_back == 1
    assert stats.by_channel == {
        "telegram": {
            "queued": 0,
            "claimed": 0,
            "sent": 3,
            "failed": 1,
            "blocked": 1,
            "unknown": 1,
            "waiting": 0,
            "cancelled": 0,
            "came_back": 1,
        }
    }
    # The Slack broadcast's messages are still queued: nobody came back through them.
    assert (other.queued, other.came_back, other.skipped) == (3, 0, {})
    assert [(v.id, v.kind, v.state, v.audience) for v in views] == [
        (broadcast.id, "manual", "done", "all"),
        (capped.id, "manual", "done", "channel:slack"),
    ]
    assert views[0].counts == {
        "queued": 0,
        "claimed": 0,
        "sent": 3,
        "failed": 1,
        "blocked": 1,
        "unknown": 1,
        "waiting": 0,
        "cancelled": 0,
    }
    assert views[0].texts == {"fr": "Bonjour", "en": "Hello"}


async def test_a_proposal_within_a_day_of_a_sent_message_is_a_comeback(
    load_consultation, sessions, clock
):
    consultation = await load_consultation(settings=_settings(**NO_QUIET))
    [author] = await people(sessions, clock, consultation, ("en", "slack"))
    broadcast = await create(sessions, clock, consultation)
    await plan(sessions, clock)
    async with sessions() as session, session.begin():
        message = (await session.exec(select(BroadcastMessage))).one()
        message.state, message.sent_at = NoticeState.SENT, clock()
        session.add(message)
        session.add(
            Proposal(
                consultation_id=consultation.id,
                locale="en",
                text="We should open more day centres",
                author_id=author,
                created_at=clock() + timedelta(hours=23, minutes=59),
                updated_at=clock() + timedelta(hours=23, minutes=59),
            )
        )
    async with sessions() as session:
        stats = await broadcast_stats(session, broadcast.id, clock())
    assert (stats.sent, stats.came_back, stats.by_channel["slack"]["came_back"]) == (1, 1, 1)


async def test_a_broadcast_without_messages_has_zeros(load_consultation, sessions, clock):
    consultation = await load_consultation()
    broadcast = await create(sessions, clock, consultation, at=clock() + timedelta(days=1))
    async with sessions() as session:
        stats = await broadcast_stats(session, broadcast.id, clock())
    assert (stats.runs, stats.total, stats.came_back, stats.skipped, stats.by_channel) == (
        0,
        0,
        0,
        {},
        {},
    )

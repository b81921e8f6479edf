"""Claiming a broadcast's messages, on both databases: someone reached from outside the
consultation (a Slack workspace's member, a contact of a WhatsApp list) whom the bot has met
since is held to what they said as a participant (/stop, blocked) and as a contact (STOP);
someone who blocked the bot is skipped until they write again, then reached again; a message
back in the queue once its broadcast was cancelled is withdrawn."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select, update

from core.broadcasts.audience import audience_size, parse_audience
from core.broadcasts.control import cancel
from core.broadcasts.delivery import claim_messages, record_messages
from core.identity import enrol, identity_hash
from core.models import (
    Broadcast,
    BroadcastMessage,
    BroadcastRun,
    ChannelIdentity,
    Contact,
    Participation,
)
from core.notices import Handover
from tests.bots.broadcasting import queued_broadcast, states
from tests.conftest import SECRET


async def outside_broadcast(
    sessions: Any, clock: Any, consultation: Any, channel: str, addresses: list[str]
) -> int:
    """An occurrence queued, as `add_outside_recipients` queues it, to people the bot has not
    met at `addresses`; the broadcast's id."""
    now = clock()
    async with sessions() as session, session.begin():
        broadcast = Broadcast(
            consultation_id=consultation.id,
            texts={"fr": "Bonjour !"},
            audience="slack:members",
            first_at=now,
            created_by="ana@example.org",
            created_at=now,
            updated_at=now,
        )
        session.add(broadcast)
        await session.flush()
        assert broadcast.id is not None
        run = BroadcastRun(broadcast_id=broadcast.id, fire_at=now, planned_at=now)
        session.add(run)
        await session.flush()
        assert run.id is not None
        for address in addresses:
            session.add(
                BroadcastMessage(
                    run_id=run.id,
                    broadcast_id=broadcast.id,
                    consultation_id=consultation.id,
                    recipient=identity_hash(SECRET, channel, address),
                    address=address,
                    channel=channel,
                    locale="fr",
                    next_attempt_at=now,
                    created_at=now,
                )
            )
        return broadcast.id


async def participant(sessions: Any, clock: Any, consultation: Any, channel: str, user: str) -> int:
    """`user` of `channel` met as a participant of `consultation`; their id."""
    async with sessions() as session, session.begin():
        enrolment = await enrol(session, SECRET, channel, user, user, clock())
        assert enrolment.participant.id is not None
        session.add(
            Participation(
                participant_id=enrolment.participant.id,
                consultation_id=consultation.id,
                consented_at=clock(),
                created_at=clock(),
                updated_at=clock(),
            )
        )
        return enrolment.participant.id


async def test_a_slack_member_who_stopped_or_blocked_as_a_participant_is_not_reached(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation()
    members = ["T1:U1", "T1:U2", "T1:U3"]
    stopped = await participant(sessions, clock, consultation, "slack", members[0])
    blocked = await participant(sessions, clock, consultation, "slack", members[1])
    async with sessions() as session, session.begin():
        await session.exec(
            update(Participation)
            .where(col(Participation.participant_id) == stopped)
            .values(subscribed=False)
        )
        await session.exec(
            update(ChannelIdentity)
            .where(col(ChannelIdentity.participant_id) == blocked)
            .values(unreachable_at=clock())
        )
    broadcast = await outside_broadcast(sessions, clock, consultation, "slack", members)
    async with sessions() as session, session.begin():
        claimed = await claim_messages(session, "w", ["slack"], clock())
    assert [message.address for message in claimed] == ["T1:U3"]
    assert await states(sessions, broadcast) == [
        ("failed", "unsubscribed"),
        ("failed", "unreachable"),
        ("claimed", None),
    ]


async def test_a_number_that_replied_stop_as_a_contact_is_not_reached_from_another_list(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation()
    numbers = ["33600000091", "33600000092"]
    async with sessions() as session, session.begin():
        session.add(
            Contact(
                consultation_id=consultation.id,
                list_name="spring",
                channel="whatsapp",
                identity_hash=identity_hash(SECRET, "whatsapp", numbers[0]),
                address=None,
                opted_in_at=clock(),
                unsubscribed_at=clock(),
                created_at=clock(),
            )
        )
    broadcast = await outside_broadcast(sessions, clock, consultation, "whatsapp", numbers)
    async with sessions() as session, session.begin():
        claimed = await claim_messages(session, "w", ["whatsapp"], clock())
    assert [message.address for message in claimed] == [numbers[1]]
    assert await states(sessions, broadcast) == [("failed", "unsubscribed"), ("claimed", None)]
    async with sessions() as session:
        left = await session.exec(
            select(BroadcastMessage.address).where(BroadcastMessage.broadcast_id == broadcast)
        )
        assert sorted(left, key=str) == sorted([None, numbers[1]], key=str)  # the refused: erased


async def test_someone_who_blocked_the_bot_is_reached_again_once_they_write_again(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation()
    person = await participant(sessions, clock, consultation, "telegram", "4242")
    async with sessions() as session, session.begin():
        await session.exec(
            update(ChannelIdentity)
            .where(col(ChannelIdentity.participant_id) == person)
            .values(unreachable_at=clock())  # a broadcast found they blocked the bot
        )
    everyone = parse_audience("all")
    async with sessions() as session:
        assert (await audience_size(session, consultation, everyone, clock())).total == 0
    blocked = await queued_broadcast(sessions, clock, consultation, [(person, "telegram", "fr")])
    async with sessions() as session, session.begin():
        assert await claim_messages(session, "w", ["telegram"], clock()) == []
    assert await states(sessions, blocked) == [("failed", "unreachable")]
    clock.advance(hours=2)
    async with sessions() as session, session.begin():  # they unblocked it and wrote
        await enrol(session, SECRET, "telegram", "4242", "4242", clock())
    async with sessions() as session:
        assert (await audience_size(session, consultation, everyone, clock())).total == 1
    again = await queued_broadcast(sessions, clock, consultation, [(person, "telegram", "fr")])
    async with sessions() as session, session.begin():
        claimed = await claim_messages(session, "w", ["telegram"], clock())
    assert [message.address for message in claimed] == ["4242"]
    assert await states(sessions, again) == [("claimed", None)]


async def test_messages_back_in_the_queue_of_a_broadcast_cancelled_meanwhile_are_withdrawn(
    load_consultation, sessions, clock
) -> None:
    consultation = await load_consultation()
    numbers = ["33600000093", "33600000094"]
    broadcast = await outside_broadcast(sessions, clock, consultation, "whatsapp", numbers)
    async with sessions() as session, session.begin():
        claimed = await claim_messages(session, "w", ["whatsapp"], clock())
    async with sessions() as session, session.begin():  # while they are on their way
        await cancel(session, broadcast, "ana@example.org", clock())
    throttled, outside_window = (message.id for message in claimed)
    outcomes = [(throttled, Handover.RETRY), (outside_window, Handover.NEEDS_TEMPLATE)]
    async with sessions() as session, session.begin():
        await record_messages(session, "w", outcomes, clock())
    assert await states(sessions, broadcast) == [("failed", "cancelled")] * 2
    async with sessions() as session:
        left = await session.exec(
            select(BroadcastMessage.address).where(BroadcastMessage.broadcast_id == broadcast)
        )
        assert list(left) == [None, None]  # the numbers are not kept for a message never sent

"""Pausing, resuming and cancelling a broadcast, on both databases: a paused broadcast is
neither planned nor claimed until resumed, a cancelled one's waiting messages are never sent,
an impossible change says why, and every change is in the audit log."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select

from core.broadcasts.control import BroadcastStateError, cancel, pause, resume, sendable_broadcasts
from core.models import (
    AuditEntry,
    Broadcast,
    BroadcastMessage,
    BroadcastState,
    NoticeState,
)
from core.moderation.actors import Actor, Source
from core.notices import beat, claim_ready
from tests.core.test_broadcast_planning import (
    NO_QUIET,
    _settings,
    create,
    messages,
    people,
    plan,
    reload,
)

ANA = Actor("ana@example.org", Source.CONSOLE)


async def change(sessions, clock, what, broadcast_id: int, actor=ANA) -> Broadcast:
    async with sessions() as session, session.begin():
        return await what(session, broadcast_id, actor, clock())


async def claimed(sessions, clock, worker: str = "w1") -> list[int]:
    async with sessions() as session, session.begin():
        await beat(session, worker, clock())
        return await claim_ready(
            session, BroadcastMessage, worker, clock(), 100, sendable_broadcasts()
        )


async def test_a_paused_broadcast_is_neither_planned_nor_sent_until_resumed(
    load_consultation, sessions, clock
):
    consultation = await load_consultation(settings=_settings(**NO_QUIET))
    await people(sessions, clock, consultation, ("fr", "telegram"), ("en", "telegram"))
    running = await create(sessions, clock, consultation)
    held = await create(sessions, clock, consultation, every="0 10 * * 1")
    await change(sessions, clock, pause, held.id)
    assert [p.broadcast_id for p in await plan(sessions, clock)] == [running.id]

    await change(sessions, clock, pause, running.id)  # done already: its messages are held
    assert (await reload(sessions, running.id)).state == BroadcastState.PAUSED
    assert await claimed(sessions, clock) == []

    resumed = await change(sessions, clock, resume, running.id)
    assert resumed.state == BroadcastState.DONE  # no occurrence to come
    assert len(await claimed(sessions, clock)) == 2
    clock.advance(days=1)
    await change(sessions, clock, resume, held.id)
    assert (await reload(sessions, held.id)).state == BroadcastState.SCHEDULED
    planned = await plan(sessions, clock)  # its missed occurrence, once
    assert [(p.broadcast_id, p.queued) for p in planned] == [(held.id, 2)]
    assert len(await claimed(sessions, clock)) == 2


async def test_cancelling_fails_what_waits_and_leaves_what_is_on_its_way(
    load_consultation, sessions, clock
):
    consultation = await load_consultation(settings=_settings(**NO_QUIET))
    await people(sessions, clock, consultation, *[("fr", "telegram")] * 3)
    broadcast = await create(sessions, clock, consultation, every="0 10 * * 1")
    await plan(sessions, clock)
    async with sessions() as session, session.begin():
        await beat(session, "w1", clock())
        sending = await claim_ready(session, BroadcastMessage, "w1", clock(), 1)
    cancelled = await change(sessions, clock, cancel, broadcast.id)
    assert (cancelled.state, cancelled.next_run_at) == (BroadcastState.CANCELLED, None)
    assert [(m.id in sending, m.state, m.problem) for m in await messages(sessions)] == [
        (True, NoticeState.CLAIMED, None),
        (False, NoticeState.FAILED, "cancelled"),
        (False, NoticeState.FAILED, "cancelled"),
    ]
    clock.advance(days=8)
    assert await plan(sessions, clock) == []
    assert await claimed(sessions, clock, "w2") == []


async def test_queued_and_waiting_messages_of_a_cancelled_broadcast_fail(
    load_consultation, sessions, clock
):
    consultation = await load_consultation(settings=_settings(**NO_QUIET))
    await people(sessions, clock, consultation, *[("fr", "telegram")] * 4)
    broadcast = await create(sessions, clock, consultation)
    await plan(sessions, clock)
    async with sessions() as session, session.begin():
        rows = (
            await session.exec(select(BroadcastMessage).order_by(col(BroadcastMessage.id)))
        ).all()
        for message, state in zip(
            rows,
            (NoticeState.QUEUED, NoticeState.WAITING, NoticeState.CLAIMED, NoticeState.SENT),
            strict=True,
        ):
            message.state = state
            message.address = f"U0{message.id}"  # as for someone the bot has not met
            session.add(message)
    await change(sessions, clock, cancel, broadcast.id)
    assert [(m.state, m.problem, m.address is None) for m in await messages(sessions)] == [
        (NoticeState.FAILED, "cancelled", True),  # nothing will be sent: the address goes
        (NoticeState.FAILED, "cancelled", True),
        (NoticeState.CLAIMED, None, False),
        (NoticeState.SENT, None, False),
    ]


async def test_impossible_changes_say_why_and_change_nothing(load_consultation, sessions, clock):
    consultation = await load_consultation()
    broadcast = await create(sessions, clock, consultation, at=clock() + timedelta(days=1))
    with pytest.raises(BroadcastStateError) as running:
        await change(sessions, clock, resume, broadcast.id)
    assert running.value.msgid == "broadcast.error.not_paused"
    await change(sessions, clock, pause, broadcast.id)
    with pytest.raises(BroadcastStateError) as twice:
        await change(sessions, clock, pause, broadcast.id)
    assert twice.value.msgid == "broadcast.error.paused_already"
    await change(sessions, clock, cancel, broadcast.id)
    for what in (pause, resume, cancel):
        with pytest.raises(BroadcastStateError) as cancelled:
            await change(sessions, clock, what, broadcast.id)
        assert cancelled.value.msgid == "broadcast.error.cancelled_already"
    with pytest.raises(BroadcastStateError) as unknown:
        await change(sessions, clock, pause, 999_999)
    assert (unknown.value.msgid, unknown.value.values) == (
        "broadcast.error.unknown",
        {"id": 999_999},
    )
    assert (await reload(sessions, broadcast.id)).state == BroadcastState.CANCELLED


async def test_every_change_is_audited_with_who_and_from_where(load_consultation, sessions, clock):
    consultation = await load_consultation()
    broadcast = await create(sessions, clock, consultation, at=clock() + timedelta(days=1))
    await change(sessions, clock, pause, broadcast.id)
    await change(sessions, clock, resume, broadcast.id, actor="api-organiser@example.org")
    await change(sessions, clock, cancel, broadcast.id, actor="cli:root")
    async with sessions() as session:
        entries = (await session.exec(select(AuditEntry).order_by(col(AuditEntry.id)))).all()
    assert [(e.action, e.actor, e.source, e.target) for e in entries] == [
        ("broadcast-create", "cli:ana", "cli", f"broadcast:{broadcast.id}"),
        ("broadcast-pause", "ana@example.org", "console", f"broadcast:{broadcast.id}"),
        ("broadcast-resume", "api-organiser@example.org", "api", f"broadcast:{broadcast.id}"),
        ("broadcast-cancel", "cli:root", "cli", f"broadcast:{broadcast.id}"),
    ]
    assert entries[-1].detail == {"kind": "manual", "withdrawn": 0}
    assert {e.consultation_id for e in entries} == {consultation.id}

"""Broadcasts scheduled and planned, on both databases: each occurrence is planned once (even
with two planners at once), its messages queued in the recipient's language, the weekly cap
skips who had enough, quiet hours defer to the morning (pure tests across midnight and the
clock changes), and people outside the consultation are reached through their lists."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from typing import Any

import pytest
from sqlalchemy import event, func
from sqlmodel import col, select

from core.broadcasts.audience import AudienceError, parse_audience, participant_recipients
from core.broadcasts.messages import BroadcastContent, MessageError
from core.broadcasts.planning import (
    CAP,
    PlannedRun,
    ScheduleError,
    add_outside_recipients,
    create_broadcast,
    plan_due,
    plan_occurrence,
)
from core.broadcasts.quiet import is_quiet, next_allowed
from core.definitions import BroadcastSettings
from core.models import (
    AuditEntry,
    Broadcast,
    BroadcastMessage,
    BroadcastRun,
    BroadcastState,
    ChannelIdentity,
    Consultation,
    Contact,
    NoticeState,
    Participant,
    Participation,
)
from core.storage import create_engine, session_factory

HELLO = BroadcastContent({"fr": "Bonjour", "en": "Hello"}, button=True, template=None)
NO_QUIET: dict[str, Any] = {"quiet_start": None, "quiet_end": None}


def weekly(cron: str, after: datetime, zone: str) -> datetime | None:
    """A stand-in for the scheduler's cron reader: every cron fires a week later."""
    return after + timedelta(days=7)


def never(cron: str, after: datetime, zone: str) -> datetime | None:
    return None


def unreadable(cron: str, after: datetime, zone: str) -> datetime | None:
    raise ValueError("a cron expression has 5 fields, not 1")


def _settings(**broadcasts: Any) -> dict[str, Any]:
    return {"sequence_size": 4, "broadcasts": broadcasts}


async def people(sessions, clock, consultation, *specs: tuple[str, str], **extra: Any) -> list[int]:
    """Participants of `consultation` who consented, one per (locale, channel), each with a
    reachable address."""
    ids = []
    async with sessions() as session, session.begin():
        for locale, channel in specs:
            participant = Participant(
                locale=locale, current_consultation_id=consultation.id, created_at=clock()
            )
            session.add(participant)
            await session.flush()
            assert participant.id is not None
            session.add(
                ChannelIdentity(
                    channel=channel,
                    identity_hash=f"hash-{participant.id}",
                    address=f"addr-{participant.id}",
                    participant_id=participant.id,
                    created_at=clock(),
                    **extra,
                )
            )
            session.add(
                Participation(
                    participant_id=participant.id,
                    consultation_id=consultation.id,
                    consented_at=clock(),
                    created_at=clock(),
                    updated_at=clock(),
                )
            )
            ids.append(participant.id)
    return ids


async def create(sessions, clock, consultation, audience="all", at=None, every=None, **kw):
    async with sessions() as session, session.begin():
        return await create_broadcast(
            session,
            consultation,
            kw.pop("content", HELLO),
            audience,
            at or clock(),
            every,
            kw.pop("next_fire", weekly),
            "cli:ana",
            clock(),
            **kw,
        )


async def plan(sessions, clock, next_fire=weekly):
    async with sessions() as session, session.begin():
        return await plan_due(session, clock(), next_fire)


async def messages(sessions, broadcast_id=None) -> list[BroadcastMessage]:
    query = select(BroadcastMessage).order_by(col(BroadcastMessage.id))
    if broadcast_id is not None:
        query = query.where(BroadcastMessage.broadcast_id == broadcast_id)
    async with sessions() as session:
        return list((await session.exec(query)).all())


async def reload(sessions, broadcast_id: int) -> Broadcast:
    async with sessions() as session:
        found = await session.get(Broadcast, broadcast_id)
        assert found is not None
        return found


# -- quiet hours (pure) -----------------------------------------------------------------------

PARIS = BroadcastSettings(time_zone="Europe/Paris")  # quiet from 21:00 to 09:00


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("moment", "allowed"),
    [
        (utc(2026, 1, 15, 12, 0), utc(2026, 1, 15, 12, 0)),  # 13:00 in Paris: at once
        (utc(2026, 1, 15, 21, 30), utc(2026, 1, 16, 8, 0)),  # 22:30: the next morning, 09:00
        (utc(2026, 1, 15, 2, 0), utc(2026, 1, 15, 8, 0)),  # 03:00: the same morning
        (utc(2026, 1, 15, 20, 0), utc(2026, 1, 16, 8, 0)),  # 21:00 sharp is quiet
        (utc(2026, 1, 15, 8, 0), utc(2026, 1, 15, 8, 0)),  # 09:00 sharp is not
        (utc(2026, 12, 31, 22, 0), utc(2027, 1, 1, 8, 0)),  # across a year's end
        # Clocks go forward on 29 March 2026: the night is an hour shorter, 09:00 is UTC+2.
        (utc(2026, 3, 28, 22, 0), utc(2026, 3, 29, 7, 0)),
        # Clocks go back on 25 October 2026: the night is an hour longer, 09:00 is UTC+1.
        (utc(2026, 10, 24, 21, 0), utc(2026, 10, 25, 8, 0)),
        (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 8, 0)),  # 02:30, the first of two
    ],
)
def test_quiet_hours_wait_for_the_morning_in_the_consultations_time_zone(
    moment: datetime, allowed: datetime
) -> None:
    assert next_allowed(moment, PARIS) == allowed


def test_a_quiet_end_the_clocks_skip_is_when_they_reach_it() -> None:
    # 22:00-02:30 in Paris; 02:30 does not exist on 29 March 2026 (02:00 -> 03:00).
    settings = BroadcastSettings(
        time_zone="Europe/Paris", quiet_start=clock_time(22), quiet_end=clock_time(2, 30)
    )
    assert next_allowed(utc(2026, 3, 29, 0, 0), settings) == utc(2026, 3, 29, 1, 30)


def test_quiet_hours_within_a_day_without_quiet_hours_and_in_other_zones() -> None:
    early = BroadcastSettings(
        time_zone="America/New_York", quiet_start=clock_time(1), quiet_end=clock_time(6)
    )
    assert next_allowed(utc(2026, 7, 1, 6, 0), early) == utc(2026, 7, 1, 10, 0)  # 02:00 EDT
    assert next_allowed(utc(2026, 7, 1, 4, 0), early) == utc(2026, 7, 1, 4, 0)  # 00:00 EDT
    silent = BroadcastSettings(**NO_QUIET)
    assert next_allowed(utc(2026, 7, 1, 23, 0), silent) == utc(2026, 7, 1, 23, 0)
    assert not is_quiet(clock_time(3), clock_time(5), clock_time(5))  # start == end: none
    with pytest.raises(ValueError):
        next_allowed(datetime(2026, 7, 1, 12, 0), PARIS)


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/Sao_Paulo", "Australia/Sydney"])
def test_whatever_the_moment_the_answer_is_not_earlier_and_never_at_night(zone: str) -> None:
    rng = random.Random(18)
    settings = BroadcastSettings(time_zone=zone)
    start = utc(2026, 1, 1)
    for _ in range(2000):
        moment = start + timedelta(minutes=rng.randrange(366 * 24 * 60))
        allowed = next_allowed(moment, settings)
        local = allowed.astimezone(settings_zone(zone)).time()
        assert allowed >= moment
        assert allowed - moment <= timedelta(hours=13)
        assert not is_quiet(local, clock_time(21), clock_time(9))


def settings_zone(zone: str):
    from zoneinfo import ZoneInfo

    return ZoneInfo(zone)


# -- creating -------------------------------------------------------------------------------


async def test_a_broadcast_is_written_with_its_audit_entry(load_consultation, sessions, clock):
    consultation = await load_consultation()
    broadcast = await create(sessions, clock, consultation, "locale:en", every="0 10 * * 1")
    assert (broadcast.state, broadcast.next_run_at, broadcast.every) == (
        BroadcastState.SCHEDULED,
        clock(),
        "0 10 * * 1",
    )
    async with sessions() as session:
        entry = (await session.exec(select(AuditEntry))).one()
    assert (entry.actor, entry.action, entry.source, entry.target) == (
        "cli:ana",
        "broadcast-create",
        "cli",
        f"broadcast:{broadcast.id}",
    )
    assert entry.detail["audience"] == "locale:en"


async def test_bad_schedules_and_audiences_are_refused_and_nothing_is_written(
    load_consultation, sessions, clock
):
    consultation = await load_consultation()
    with pytest.raises(ScheduleError) as past:
        await create(sessions, clock, consultation, at=clock() - timedelta(minutes=5))
    assert past.value.msgid == "broadcast.error.at_past"
    with pytest.raises(ScheduleError) as bad:
        await create(sessions, clock, consultation, every="sometimes", next_fire=unreadable)
    assert bad.value.msgid == "broadcast.error.every_invalid"
    assert "5 fields" in bad.value.values["problem"]
    with pytest.raises(ScheduleError) as dead:
        await create(sessions, clock, consultation, every="0 0 31 2 *", next_fire=never)
    assert dead.value.msgid == "broadcast.error.every_never_fires"
    with pytest.raises(AudienceError):
        await create(sessions, clock, consultation, "locale:de")
    with pytest.raises(AudienceError):
        await create(sessions, clock, consultation, "all and (")
    await create(sessions, clock, consultation, at=clock() - timedelta(seconds=30))  # "now"
    async with sessions() as session:
        assert len((await session.exec(select(Broadcast))).all()) == 1
        assert len((await session.exec(select(AuditEntry))).all()) == 1


# -- planning -------------------------------------------------------------------------------


async def test_an_occurrence_is_planned_once_in_each_recipients_language(
    load_consultation, sessions, clock
):
    consultation = await load_consultation(settings=_settings(max_per_week=10, **NO_QUIET))
    fr, en, de = await people(
        sessions, clock, consultation, ("fr", "telegram"), ("en", "slack"), ("de", "whatsapp")
    )
    once = await create(sessions, clock, consultation)
    weekly_one = await create(sessions, clock, consultation, "channel:slack", every="0 10 * * 1")
    later = await create(sessions, clock, consultation, at=clock() + timedelta(hours=1))

    planned = await plan(sessions, clock)
    assert sorted((p.broadcast_id, p.queued, p.skipped) for p in planned) == [
        (once.id, 3, {}),
        (weekly_one.id, 1, {}),
    ]
    assert await plan(sessions, clock) == []  # planned already
    sent = await messages(sessions, once.id)
    assert [(m.participant_id, m.channel, m.locale, m.recipient) for m in sent] == [
        (fr, "telegram", "fr", f"p:{fr}"),
        (en, "slack", "en", f"p:{en}"),
        (de, "whatsapp", "fr", f"p:{de}"),  # German is not spoken: the default locale
    ]
    assert {(m.state, m.next_attempt_at, m.address) for m in sent} == {
        (NoticeState.QUEUED, clock(), None)
    }
    assert (await reload(sessions, once.id)).state == BroadcastState.DONE
    recurring = await reload(sessions, weekly_one.id)
    assert (recurring.state, recurring.next_run_at) == (
        BroadcastState.SCHEDULED,
        clock() + timedelta(days=7),
    )
    assert (await reload(sessions, later.id)).next_run_at == clock() + timedelta(hours=1)

    clock.advance(days=7)
    planned = await plan(sessions, clock)
    assert sorted(p.broadcast_id for p in planned) == [weekly_one.id, later.id]
    async with sessions() as session:
        runs = (await session.exec(select(BroadcastRun).order_by(col(BroadcastRun.id)))).all()
    assert sorted((r.broadcast_id, r.recipients) for r in runs) == [
        (once.id, 3),
        (weekly_one.id, 1),
        (weekly_one.id, 1),
        (later.id, 3),
    ]


async def test_occurrences_missed_while_nobody_planned_are_planned_once(
    load_consultation, sessions, clock
):
    consultation = await load_consultation(settings=_settings(**NO_QUIET))
    await people(sessions, clock, consultation, ("fr", "telegram"))
    weekly_one = await create(sessions, clock, consultation, every="0 10 * * 1")
    first_at = clock()
    clock.advance(days=30)  # the scheduler was down for four occurrences
    planned = await plan(sessions, clock)
    assert len(planned) == 1
    async with sessions() as session:
        run = (await session.exec(select(BroadcastRun))).one()
    assert run.fire_at == first_at
    assert (await reload(sessions, weekly_one.id)).next_run_at == clock() + timedelta(days=7)
    assert await plan(sessions, clock) == []


async def test_the_weekly_cap_skips_who_had_enough_across_broadcasts(
    load_consultation, sessions, clock
):
    consultation = await load_consultation(settings=_settings(max_per_week=2, **NO_QUIET))
    busy, quiet = await people(sessions, clock, consultation, ("fr", "telegram"), ("en", "slack"))
    for _ in range(2):
        await create(sessions, clock, consultation, "channel:telegram")
    await plan(sessions, clock)  # `busy` has two messages on their way
    third = await create(sessions, clock, consultation)
    planned = await plan(sessions, clock)
    assert [(p.broadcast_id, p.queued, p.skipped) for p in planned] == [(third.id, 1, {CAP: 1})]
    assert [m.participant_id for m in await messages(sessions, third.id)] == [quiet]

    # Sent eight days ago, they no longer count; sent six days ago, they do.
    async with sessions() as session, session.begin():
        for n, message in enumerate(await messages(sessions)):
            days = 8 if n == 0 else 6
            message.state, message.sent_at = NoticeState.SENT, clock() - timedelta(days=days)
            session.add(message)
    fourth = await create(sessions, clock, consultation, "channel:telegram")
    planned = await plan(sessions, clock)
    assert [(p.queued, p.skipped) for p in planned] == [(1, {})]
    assert [m.participant_id for m in await messages(sessions, fourth.id)] == [busy]
    fifth = await create(sessions, clock, consultation, "channel:telegram")
    planned = await plan(sessions, clock)
    assert [(p.queued, p.skipped) for p in planned] == [(0, {CAP: 1})]
    assert await messages(sessions, fifth.id) == []


async def test_a_broadcast_due_at_night_waits_for_the_morning(load_consultation, sessions, clock):
    consultation = await load_consultation(settings=_settings(time_zone="Europe/Paris"))
    await people(sessions, clock, consultation, ("fr", "telegram"), ("en", "telegram"))
    clock.now = utc(2026, 3, 2, 22, 15)  # 23:15 in Paris
    await create(sessions, clock, consultation)
    await plan(sessions, clock)
    assert {m.next_attempt_at for m in await messages(sessions)} == {utc(2026, 3, 3, 8, 0)}


async def test_unreachable_forgotten_unsubscribed_and_unconsented_people_get_nothing(
    load_consultation, sessions, clock
):
    consultation = await load_consultation(settings=_settings(**NO_QUIET))
    kept, blocked, gone, stopped, undecided = await people(
        sessions, clock, consultation, *[("fr", "telegram")] * 5
    )
    async with sessions() as session, session.begin():
        identity = (
            await session.exec(
                select(ChannelIdentity).where(ChannelIdentity.participant_id == blocked)
            )
        ).one()
        identity.unreachable_at = clock()
        session.add(identity)
        forgotten = await session.get(Participant, gone)
        assert forgotten is not None
        forgotten.forgotten_at = clock()
        session.add(forgotten)
        for participant, change in ((stopped, "subscribed"), (undecided, "consented_at")):
            participation = (
                await session.exec(
                    select(Participation).where(Participation.participant_id == participant)
                )
            ).one()
            setattr(participation, change, False if change == "subscribed" else None)
            session.add(participation)
    await create(sessions, clock, consultation)
    await plan(sessions, clock)
    assert [m.participant_id for m in await messages(sessions)] == [kept]


async def test_a_whatsapp_list_is_reached_through_its_opted_in_contacts(
    load_consultation, sessions, clock
):
    offer = {"name": "offer", "language": "en", "category": "marketing"}
    consultation = await load_consultation(settings=_settings(**NO_QUIET, templates=[offer]))
    async with sessions() as session, session.begin():
        for n, (opted, unsubscribed, locale, name) in enumerate(
            [
                (True, False, "en", "crm"),
                (True, False, "de", "crm"),
                (False, False, "en", "crm"),  # never opted in
                (True, True, "en", "crm"),  # unsubscribed since
                (True, False, "en", "other"),  # another list
            ]
        ):
            session.add(
                Contact(
                    consultation_id=consultation.id,
                    list_name=name,
                    channel="whatsapp",
                    identity_hash=f"contact-{n}",
                    address=f"+3360000000{n}",
                    locale=locale,
                    opted_in_at=clock() if opted else None,
                    unsubscribed_at=clock() if unsubscribed else None,
                    created_at=clock(),
                )
            )
    with pytest.raises(MessageError) as refused:  # it would wait for ever without a template
        await create(sessions, clock, consultation, "whatsapp:list:crm")
    assert (refused.value.msgid, refused.value.values) == (
        "broadcast.message.template_needed",
        {"list": "crm"},
    )
    content = BroadcastContent(HELLO.texts, button=False, template="offer")
    broadcast = await create(sessions, clock, consultation, "whatsapp:list:crm", content=content)
    [planned] = await plan(sessions, clock)
    assert (planned.queued, planned.outside) == (2, None)
    sent = await messages(sessions, broadcast.id)
    assert [(m.recipient, m.channel, m.locale, m.address) for m in sent] == [
        ("contact-0", "whatsapp", "en", "+33600000000"),
        ("contact-1", "whatsapp", "fr", "+33600000001"),
    ]
    assert {m.participant_id for m in sent} == {None}


async def test_slack_members_are_added_by_the_bots_layer_once_each(
    load_consultation, sessions, clock
):
    consultation = await load_consultation(settings=_settings(time_zone="Europe/Paris"))
    clock.now = utc(2026, 3, 2, 21, 0)  # 22:00 in Paris
    broadcast = await create(sessions, clock, consultation, "slack:channel:C0123")
    [planned] = await plan(sessions, clock)
    assert (planned.queued, planned.outside.kind, planned.outside.name) == (
        0,
        "slack-members",
        "C0123",
    )
    members = [("U1", "en-GB"), ("U2", None), ("U1", "en"), ("U3", "de")]

    async def add(recipients) -> int:
        async with sessions() as session, session.begin():
            return await add_outside_recipients(
                session, planned.run_id, iter(recipients), lambda a: f"h-{a}", clock()
            )

    assert await add(members) == 3
    assert await add([("U3", None), ("U4", "fr")]) == 1  # U3 is in the run already
    sent = await messages(sessions, broadcast.id)
    assert [(m.recipient, m.channel, m.locale, m.address) for m in sent] == [
        ("h-U1", "slack", "en", "U1"),
        ("h-U2", "slack", "fr", "U2"),
        ("h-U3", "slack", "fr", "U3"),
        ("h-U4", "slack", "fr", "U4"),
    ]
    assert {m.next_attempt_at for m in sent} == {utc(2026, 3, 3, 8, 0)}
    async with sessions() as session:
        assert (await session.exec(select(BroadcastRun))).one().recipients == 4


# -- two planners ---------------------------------------------------------------------------


async def test_two_planners_at_once_plan_each_occurrence_once(
    database_url, engine, load_consultation, sessions, clock
):
    consultation = await load_consultation(settings=_settings(max_per_week=100, **NO_QUIET))
    await people(sessions, clock, consultation, *[("fr", "telegram")] * 20)
    for n in range(12):
        await create(sessions, clock, consultation, every="0 10 * * 1" if n % 2 else None)
    other_engine = create_engine(database_url)
    other = session_factory(other_engine)
    try:
        results = await asyncio.gather(
            plan(sessions, clock), plan(other, clock), plan(sessions, clock), plan(other, clock)
        )
        assert sorted(p.broadcast_id for r in results for p in r) == list(range(1, 13))
        clock.advance(days=7)
        for _ in range(2):
            await create(sessions, clock, consultation)
        results = await asyncio.gather(plan(other, clock), plan(sessions, clock))
        assert sum(len(r) for r in results) == 6 + 2
    finally:
        await other_engine.dispose()
    async with sessions() as session:
        runs = (await session.exec(select(func.count()).select_from(BroadcastRun))).one()
        rows = (await session.exec(select(func.count()).select_from(BroadcastMessage))).one()
        twice = (
            await session.exec(
                select(BroadcastMessage.run_id, BroadcastMessage.participant_id)
                .group_by(col(BroadcastMessage.run_id), col(BroadcastMessage.participant_id))
                .having(func.count() > 1)
            )
        ).all()
    assert runs == 12 + 8  # each occurrence once
    assert rows == runs * 20
    assert twice == []


async def test_a_planner_passes_by_what_another_is_planning(
    database_url, engine, load_consultation, sessions, clock
):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: the second planner waits for the lock")
    consultation = await load_consultation(settings=_settings(**NO_QUIET))
    await people(sessions, clock, consultation, *[("fr", "telegram")] * 5)
    broadcast = await create(sessions, clock, consultation)
    other_engine = create_engine(database_url)
    other = session_factory(other_engine)
    try:
        async with sessions() as first, first.begin():
            planned = await plan_due(first, clock(), weekly)
            assert [p.broadcast_id for p in planned] == [broadcast.id]
            # The first planner's transaction is open: the second skips the locked broadcast.
            assert await plan(other, clock) == []
        assert await plan(other, clock) == []  # committed: it is done
    finally:
        await other_engine.dispose()
    assert len(await messages(sessions)) == 5


@pytest.mark.parametrize("locale", ["en", "fr"])
def test_every_schedule_and_state_error_is_said_in_both_languages(locale: str) -> None:
    from core.broadcasts import control, planning
    from core.i18n import has_message

    for msgid in (*planning.MSGIDS, *control.MSGIDS):
        assert has_message(locale, msgid), msgid


async def test_a_planner_that_lost_the_race_for_an_occurrence_writes_nothing(
    database_url, engine, load_consultation, sessions, clock
):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: the loser waits before it looks")
    consultation = await load_consultation(settings=_settings(**NO_QUIET))
    await people(sessions, clock, consultation, *[("fr", "telegram")] * 3)
    created = await create(sessions, clock, consultation)
    fire_at = clock()
    other_engine = create_engine(database_url)
    inserting = asyncio.Event()

    @event.listens_for(other_engine.sync_engine, "before_cursor_execute")
    def _spot(_connection, _cursor, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO broadcastrun"):
            inserting.set()  # past its check: the winner's run is not committed yet

    async def occur(session) -> PlannedRun | None:
        broadcast = await session.get(Broadcast, created.id)
        consultation_ = await session.get(Consultation, consultation.id)
        audience = participant_recipients(consultation_, parse_audience("all"), fire_at)
        return await plan_occurrence(session, broadcast, consultation_, fire_at, clock(), audience)

    async def loser() -> PlannedRun | None:
        async with session_factory(other_engine)() as session, session.begin():
            return await occur(session)

    try:
        async with sessions() as session, session.begin():
            won = await occur(session)
            race = asyncio.create_task(loser())
            await inserting.wait()
        assert won is not None and won.queued == 3
        assert await race is None  # its insert met the winner's run: rolled back to a savepoint
    finally:
        await other_engine.dispose()
    async with sessions() as session:
        assert len((await session.exec(select(BroadcastRun))).all()) == 1
    assert len(await messages(sessions)) == 3

"""Broadcasts scheduled, and each occurrence turned into outbox rows, once.

`create_broadcast` checks what an organiser asks for (the audience, the time, the cron) and
writes the broadcast. `plan_due`, called every few seconds by the scheduler, takes the due
broadcasts and for each plans its occurrence: a `BroadcastRun` (unique per broadcast and fire
time: a second planner's copy is a no-op) and its `BroadcastMessage` rows, written by one
INSERT ... SELECT, so that memory stays flat whether the audience is 10 or 2,000,000 people.
The automatic reminders (`core.broadcasts.reminders`) queue their occurrences with the same
`plan_occurrence`.

While queued, a participant is skipped (counted by reason in the run) when they had
`max_per_week` broadcast messages in the last seven days (sent, or on their way); a message
queued during the quiet hours waits for the morning (`core.broadcasts.quiet`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from sqlalchemy import Integer, String, and_, case, cast, func, insert, literal, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col
from sqlmodel import select as select_rows
from sqlmodel.ext.asyncio.session import AsyncSession

from core.broadcasts.audience import (
    AudienceError,
    Outside,
    outside_target,
    parse_audience,
    participant_recipients,
    resolve_audience,
    validate_audience,
)
from core.broadcasts.messages import BroadcastContent, check_reach
from core.broadcasts.quiet import next_allowed
from core.broadcasts.stats import BroadcastView as BroadcastView
from core.broadcasts.stats import list_broadcasts as list_broadcasts
from core.definitions import BroadcastSettings, settings_of
from core.i18n import negotiate
from core.models import (
    Broadcast,
    BroadcastKind,
    BroadcastMessage,
    BroadcastRun,
    BroadcastState,
    Consultation,
    Contact,
    NoticeState,
    UTCDateTime,
)
from core.moderation.actors import Actor, Source
from core.moderation.history import record_action

NextFire = Callable[[str, datetime, str], datetime | None]
"""(cron expression, after (aware), time zone) -> the next fire time strictly after, in UTC,
or None if it never fires again; ValueError if the expression does not parse."""

PAST_SLACK = timedelta(minutes=1)  # "now" typed a few seconds ago is not in the past
CAP_WINDOW = timedelta(days=7)
CAP = "cap"  # the reason a participant over the weekly cap is skipped
INVALID_AUDIENCE = "invalid-audience"  # the audience no longer fits the consultation
OUTSIDE_BATCH = 1000
# A message counts against the weekly cap once sent (or possibly sent), or while on its way.
_ON_ITS_WAY = (NoticeState.QUEUED, NoticeState.CLAIMED, NoticeState.WAITING)
_SENT_OR_MAYBE = (NoticeState.SENT, NoticeState.UNKNOWN)
# Every msgid a ScheduleError can carry (tests check both catalogues hold them).
MSGIDS = (
    "broadcast.error.at_naive",
    "broadcast.error.at_past",
    "broadcast.error.every_invalid",
    "broadcast.error.every_never_fires",
)
_OUTSIDE_CHANNEL = {
    "slack-members": "slack",
    "whatsapp-list": "whatsapp",
    "telegram-post": "telegram",
}


class ScheduleError(ValueError):
    """A schedule that cannot be kept: a time in the past, a cron that does not parse or never
    fires. `msgid` (a gettext id) and `values` say what to fix."""

    def __init__(self, msgid: str, **values: Any) -> None:
        super().__init__(msgid)
        self.msgid = msgid
        self.values = values


@dataclass(frozen=True)
class PlannedRun:
    """One occurrence planned: its messages queued and the recipients skipped, by reason.
    `outside` is set when the recipients live outside the consultation (a Slack workspace, a
    Telegram channel's post): the bots layer adds them with `add_outside_recipients`."""

    run_id: int
    broadcast_id: int
    queued: int
    skipped: dict[str, int]
    outside: Outside | None


def as_actor(actor: Actor | str) -> Actor:
    """An organiser as the audit log records them; a bare name from the CLI ("cli:<login>")
    is recorded from the CLI, any other from the API (pass an `Actor` to say otherwise)."""
    if isinstance(actor, Actor):
        return actor
    return Actor(actor, Source.CLI if actor.startswith("cli:") else Source.API)


def template_of(settings: BroadcastSettings, name: str | None) -> dict[str, Any] | None:
    """The registry's template `name` as a broadcast keeps it: its language code per locale
    (one registry entry per language), category and parameters; None for no template."""
    if name is None:
        return None
    entries = [entry for entry in settings.templates if entry.name == name]
    if not entries:
        return None
    return {
        "name": name,
        "category": entries[0].category,
        "language": {entry.language.split("_")[0]: entry.language for entry in entries},
        "parameters": list(entries[0].parameters),
    }


async def create_broadcast(
    session: AsyncSession,
    consultation: Consultation,
    content: BroadcastContent,
    audience: str,
    first_at: datetime,
    every: str | None,
    next_fire: NextFire,
    actor: Actor | str,
    now: datetime,
    *,
    paid: bool = False,
    kind: BroadcastKind = BroadcastKind.MANUAL,
) -> Broadcast:
    """Schedule a broadcast (first at `first_at`, then each time `every` fires in the
    consultation's time zone), in the caller's transaction, with its audit entry.

    Raises AudienceError for an audience that does not parse or names what the consultation
    lacks; ScheduleError for `first_at` in the past (beyond a minute), a cron that does not
    parse or never fires after `first_at`."""
    assert consultation.id is not None
    expression = parse_audience(audience)
    validate_audience(consultation, expression)
    outside = outside_target(expression)
    check_reach(content, outside.kind if outside else None, outside.name if outside else None)
    if first_at.tzinfo is None:
        raise ScheduleError("broadcast.error.at_naive")
    if first_at < now - PAST_SLACK:
        raise ScheduleError("broadcast.error.at_past", at=first_at.isoformat(timespec="minutes"))
    settings = settings_of(consultation).broadcasts
    if every is not None:
        try:
            following = next_fire(every, first_at, settings.time_zone)
        except ValueError as error:
            raise ScheduleError(
                "broadcast.error.every_invalid", every=every, problem=str(error)
            ) from None
        if following is None:
            raise ScheduleError("broadcast.error.every_never_fires", every=every)
    broadcast = Broadcast(
        consultation_id=consultation.id,
        kind=kind,
        texts=dict(content.texts),
        button=content.button,
        audience=audience,
        template=template_of(settings, content.template),
        paid=paid,
        first_at=first_at,
        every=every,
        next_run_at=first_at,
        state=BroadcastState.SCHEDULED,
        created_by=as_actor(actor).organiser,
        created_at=now,
        updated_at=now,
    )
    session.add(broadcast)
    await session.flush()
    detail = {"kind": str(kind), "audience": audience, "first_at": first_at.isoformat()}
    if every is not None:
        detail["every"] = every
    await record_action(
        session,
        as_actor(actor),
        "broadcast-create",
        f"broadcast:{broadcast.id}",
        consultation.id,
        now,
        detail,
    )
    return broadcast


async def plan_due(
    session: AsyncSession, now: datetime, next_fire: NextFire, *, limit: int = 20
) -> list[PlannedRun]:
    """Plan the occurrence of each scheduled broadcast due by `now` (up to `limit`), in the
    caller's transaction, and move it to its next occurrence (done when there is none).

    Two planners at once plan each occurrence once: on PostgreSQL the due broadcasts are
    locked with SKIP LOCKED (the other planner passes them by), and a run is unique per
    broadcast and fire time; SQLite holds the write lock already. A broadcast that was due
    several times meanwhile (the scheduler was down) is planned once, at its oldest due time,
    then moves to its first occurrence after `now`: nobody gets a week's backlog at once."""
    due = await session.exec(
        select_rows(Broadcast)
        .where(
            col(Broadcast.state) == BroadcastState.SCHEDULED,
            col(Broadcast.next_run_at) <= now,
        )
        .order_by(col(Broadcast.next_run_at), col(Broadcast.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    planned: list[PlannedRun] = []
    for broadcast in due.all():
        fire_at = broadcast.next_run_at
        assert fire_at is not None
        consultation = await session.get(Consultation, broadcast.consultation_id)
        assert consultation is not None
        run = await _plan(session, broadcast, consultation, fire_at, now)
        if run is not None:
            planned.append(run)
        zone = settings_of(consultation).broadcasts.time_zone
        broadcast.next_run_at = _following(next_fire, broadcast.every, max(fire_at, now), zone)
        if broadcast.next_run_at is None:
            broadcast.state = BroadcastState.DONE
        broadcast.updated_at = now
        session.add(broadcast)
    await session.flush()
    return planned


def _following(
    next_fire: NextFire, every: str | None, after: datetime, zone: str
) -> datetime | None:
    if every is None:
        return None
    try:
        following = next_fire(every, after, zone)
    except ValueError:  # checked at creation; a cron library that changed its mind
        return None
    if following is not None and following <= after:  # "strictly after", whatever the library
        following = next_fire(every, after + timedelta(seconds=1), zone)
    return following


async def _plan(
    session: AsyncSession,
    broadcast: Broadcast,
    consultation: Consultation,
    fire_at: datetime,
    now: datetime,
) -> PlannedRun | None:
    try:
        expression = parse_audience(broadcast.audience)
        validate_audience(consultation, expression)
    except AudienceError:  # the consultation changed since (a profile question removed)
        return await plan_occurrence(
            session, broadcast, consultation, fire_at, now, None, skipped={INVALID_AUDIENCE: 1}
        )
    outside = outside_target(expression)
    if outside is None:
        expression = await resolve_audience(session, consultation, expression, fire_at)
        recipients = participant_recipients(consultation, expression, fire_at)
        return await plan_occurrence(session, broadcast, consultation, fire_at, now, recipients)
    if outside.kind == "whatsapp-list":
        contacts = _contacts(consultation, outside.name or "")
        return await plan_occurrence(
            session, broadcast, consultation, fire_at, now, None, contacts=contacts
        )
    return await plan_occurrence(
        session, broadcast, consultation, fire_at, now, None, outside=outside
    )


async def plan_occurrence(
    session: AsyncSession,
    broadcast: Broadcast,
    consultation: Consultation,
    fire_at: datetime,
    now: datetime,
    recipients: Select[Any] | None,
    *,
    contacts: Select[Any] | None = None,
    outside: Outside | None = None,
    skipped: dict[str, int] | None = None,
    keep_empty: bool = True,
) -> PlannedRun | None:
    """Write one occurrence of `broadcast` at `fire_at` and queue its messages, in the
    caller's transaction; None if that occurrence exists already (another planner's), or if it
    would queue nothing and not `keep_empty` (a reminder with nobody to remind).

    `recipients` is a SELECT of (participant_id, channel, locale), one row per participant
    (`core.broadcasts.audience.participant_recipients`, possibly narrowed); those over the
    weekly cap are skipped and counted under "cap". `contacts` is a SELECT of `Contact` rows
    (a WhatsApp list). Messages wait for the end of the quiet hours if they fall in them."""
    assert broadcast.id is not None and consultation.id is not None
    exists = await session.exec(
        select(BroadcastRun.id).where(  # type: ignore[call-overload]
            col(BroadcastRun.broadcast_id) == broadcast.id, col(BroadcastRun.fire_at) == fire_at
        )
    )
    if exists.first() is not None:
        return None
    run = BroadcastRun(
        broadcast_id=broadcast.id, fire_at=fire_at, planned_at=now, skipped=dict(skipped or {})
    )
    savepoint = await session.begin_nested()
    try:
        session.add(run)
        await session.flush()
    except IntegrityError:  # a concurrent planner wrote it first
        await savepoint.rollback()
        return None
    assert run.id is not None
    settings = settings_of(consultation).broadcasts
    ready_at = next_allowed(max(fire_at, now), settings)
    counts = dict(run.skipped)
    if recipients is not None:
        capped = await _queue_participants(
            session, run.id, broadcast, consultation, recipients, ready_at, now
        )
        if capped:
            counts[CAP] = capped
    if contacts is not None:
        await _queue_contacts(session, run.id, broadcast, consultation, contacts, ready_at, now)
    queued = await _queued(session, run.id)
    if queued == 0 and not keep_empty:
        await savepoint.rollback()
        return None
    await savepoint.commit()
    run.recipients, run.skipped = queued, counts
    session.add(run)
    await session.flush()
    return PlannedRun(run.id, broadcast.id, queued, counts, outside)


def materialized(query: Select[Any], name: str) -> Any:
    """`query` as a CTE that PostgreSQL computes first, on its own: filters added around it
    (the cap, a reminder's conditions) are then applied to its rows. Inlined, they multiply
    their guessed selectivities into an estimate of a couple of rows, and the planner joins
    100,000 participants to 100,000 others in a nested loop."""
    return query.cte(name).prefix_with("MATERIALIZED", dialect="postgresql")


def _recent_messages(participant: ColumnElement[Any], since: datetime) -> Any:
    """How many broadcast messages `participant` got since `since` (sent, or maybe sent) or
    has on their way. The WHERE names only the participant and `sent_at`, the columns of
    their index, and the states are counted by CASE: whatever the table's statistics say, the
    database then reads each participant's few messages, never every queued row for each."""
    since_at = literal(since, UTCDateTime())
    state = col(BroadcastMessage.state)
    counted = case(
        (state.in_(_ON_ITS_WAY), 1),
        (
            and_(
                state.in_(_SENT_OR_MAYBE),
                func.coalesce(BroadcastMessage.sent_at, BroadcastMessage.claimed_at) >= since_at,
            ),
            1,
        ),
        else_=0,
    )
    return (
        select(func.coalesce(func.sum(counted), 0))
        .where(
            col(BroadcastMessage.participant_id) == participant,
            or_(col(BroadcastMessage.sent_at) >= since_at, col(BroadcastMessage.sent_at).is_(None)),
        )
        .scalar_subquery()
    )


_COLUMNS = (
    "run_id",
    "broadcast_id",
    "consultation_id",
    "recipient",
    "participant_id",
    "contact_id",
    "address",
    "channel",
    "locale",
    "state",
    "attempts",
    "next_attempt_at",
    "created_at",
)


async def _queue_participants(
    session: AsyncSession,
    run_id: int,
    broadcast: Broadcast,
    consultation: Consultation,
    recipients: Select[Any],
    ready_at: datetime,
    now: datetime,
) -> int:
    """Queue a message per recipient under the cap (one INSERT ... SELECT); how many were
    over it."""
    settings = settings_of(consultation).broadcasts
    audience = materialized(recipients, "audience")
    recent = _recent_messages(audience.c.participant_id, now - CAP_WINDOW)
    capped = await session.exec(
        select(func.count()).select_from(audience).where(recent >= settings.max_per_week)  # type: ignore[call-overload]
    )
    rows = select(
        literal(run_id),
        literal(broadcast.id),
        literal(consultation.id),
        literal("p:", String()).concat(cast(audience.c.participant_id, String())),
        audience.c.participant_id,
        literal(None, Integer()),
        literal(None, String()),
        audience.c.channel,
        audience.c.locale,
        literal(str(NoticeState.QUEUED)),
        literal(0),
        literal(ready_at, UTCDateTime()),
        literal(now, UTCDateTime()),
    ).where(recent < settings.max_per_week)
    # Sorted, the rows are all chosen before the first is written: the statement's reads of
    # this table (the cap, a reminder's "had it already") never scan rows it is adding, which
    # a plan made on an almost empty table's statistics would, once per recipient.
    rows = rows.order_by(audience.c.participant_id)
    await session.exec(insert(BroadcastMessage).from_select(list(_COLUMNS), rows))
    return int(capped.one()[0])


def _contacts(consultation: Consultation, list_name: str) -> Select[Any]:
    """The opted-in, still subscribed contacts of a WhatsApp list."""
    return select(Contact).where(
        col(Contact.consultation_id) == consultation.id,
        col(Contact.list_name) == list_name,
        col(Contact.channel) == "whatsapp",
        col(Contact.opted_in_at).is_not(None),
        col(Contact.unsubscribed_at).is_(None),
        col(Contact.address).is_not(None),
    )


async def _queue_contacts(
    session: AsyncSession,
    run_id: int,
    broadcast: Broadcast,
    consultation: Consultation,
    contacts: Select[Any],
    ready_at: datetime,
    now: datetime,
) -> None:
    listed = contacts.subquery("listed")
    # A contact's language if the consultation speaks it, else the default locale.
    locale = case(
        (listed.c.locale.in_(list(consultation.locales)), listed.c.locale),
        else_=literal(consultation.default_locale),
    )
    rows = select(
        literal(run_id),
        literal(broadcast.id),
        literal(consultation.id),
        listed.c.identity_hash,
        literal(None, Integer()),
        listed.c.id,
        listed.c.address,
        listed.c.channel,
        locale,
        literal(str(NoticeState.QUEUED)),
        literal(0),
        literal(ready_at, UTCDateTime()),
        literal(now, UTCDateTime()),
    )
    await session.exec(insert(BroadcastMessage).from_select(list(_COLUMNS), rows))


async def _queued(session: AsyncSession, run_id: int) -> int:
    found = await session.exec(
        select(func.count()).where(col(BroadcastMessage.run_id) == run_id)  # type: ignore[call-overload]
    )
    return int(found.one()[0])


async def add_outside_recipients(
    session: AsyncSession,
    run_id: int,
    recipients: Iterable[tuple[str, str | None]],
    hasher: Callable[[str], str],
    now: datetime,
) -> int:
    """Queue the occurrence's messages to people outside the consultation (the members of a
    Slack channel, a Telegram channel's post), as (address, locale or None) pairs read from
    the platform; how many were added. A recipient is `hasher(address)` (a keyed hash): one
    already in the run is not added again. Read in batches: memory stays flat."""
    run = await session.get(BroadcastRun, run_id)
    if run is None:
        raise LookupError(f"no broadcast occurrence {run_id}")
    broadcast = await session.get(Broadcast, run.broadcast_id)
    assert broadcast is not None
    consultation = await session.get(Consultation, broadcast.consultation_id)
    assert consultation is not None
    outside = outside_target(parse_audience(broadcast.audience))
    if outside is None:
        raise ValueError(f"broadcast {broadcast.id} is to participants, not outside people")
    channel = _OUTSIDE_CHANNEL[outside.kind]
    ready_at = next_allowed(max(run.fire_at, now), settings_of(consultation).broadcasts)
    added = 0
    for batch in _batches(recipients, OUTSIDE_BATCH):
        fresh: dict[str, tuple[str, str]] = {}
        for address, locale in batch:
            wanted = negotiate(locale, consultation.locales) or consultation.default_locale
            fresh.setdefault(hasher(address), (address, wanted))
        known = await session.exec(
            select(BroadcastMessage.recipient).where(  # type: ignore[call-overload]
                col(BroadcastMessage.run_id) == run_id,
                col(BroadcastMessage.recipient).in_(list(fresh)),
            )
        )
        for (recipient,) in known.all():
            fresh.pop(recipient, None)
        if not fresh:
            continue
        await session.exec(
            insert(BroadcastMessage),
            params=[
                {
                    "run_id": run_id,
                    "broadcast_id": broadcast.id,
                    "consultation_id": consultation.id,
                    "recipient": recipient,
                    "address": address,
                    "channel": channel,
                    "locale": locale,
                    "state": NoticeState.QUEUED,
                    "attempts": 0,
                    "next_attempt_at": ready_at,
                    "created_at": now,
                }
                for recipient, (address, locale) in fresh.items()
            ],
        )
        added += len(fresh)
    run.recipients += added
    session.add(run)
    await session.flush()
    return added


def _batches(
    items: Iterable[tuple[str, str | None]], size: int
) -> Iterator[list[tuple[str, str | None]]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch

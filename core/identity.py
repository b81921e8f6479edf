"""Pseudonymous participants: a keyed hash of (channel, user id) is all the database keeps of
who someone is, plus a delivery address where a channel needs one to write first."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import ChannelIdentity, Consultation, Participant, Participation
from core.sqlite import one_writer_at_a_time

# Activity times (last seen, last took part) are kept to the minute: rewriting them on every
# event would add a write to most events' transactions.
ACTIVITY_GRAIN = timedelta(minutes=1)


def outdated(stamp: datetime | None, now: datetime) -> bool:
    """Whether an activity time is worth rewriting at `now`."""
    return stamp is None or now - stamp >= ACTIVITY_GRAIN


def identity_hash(secret: bytes, channel: str, user_id: str) -> str:
    """HMAC-SHA256 of (channel, user id) under the deployment's secret key, as hex."""
    message = f"{channel}\x1f{user_id}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


# Built once: every event starts with one of these (see core.voting on why that matters). The
# participant, locked...
_IDENTIFIED = (
    select(Participant, ChannelIdentity)
    .join(ChannelIdentity, col(ChannelIdentity.participant_id) == col(Participant.id))
    .where(
        col(ChannelIdentity.channel) == bindparam("b_channel"),
        col(ChannelIdentity.identity_hash) == bindparam("b_digest"),
    )
    .with_for_update(of=Participant)
)
# ...and, where one writer runs at a time (SQLite), with their current consultation and their
# participation in it, which the conversation needs next: one statement fewer per event.
_BY_IDENTITY = (
    select(Participant, ChannelIdentity, Consultation, Participation)
    .join(ChannelIdentity, col(ChannelIdentity.participant_id) == col(Participant.id))
    .outerjoin(Consultation, col(Consultation.id) == col(Participant.current_consultation_id))
    .outerjoin(
        Participation,
        and_(
            col(Participation.participant_id) == col(Participant.id),
            col(Participation.consultation_id) == col(Participant.current_consultation_id),
        ),
    )
    .where(
        col(ChannelIdentity.channel) == bindparam("b_channel"),
        col(ChannelIdentity.identity_hash) == bindparam("b_digest"),
    )
    .with_for_update(of=Participant)
)
# Elsewhere (PostgreSQL) those two are read once the participant's lock is held; objects the
# session holds are refreshed from the rows.
_CURRENT = (
    select(Consultation, Participation)
    .outerjoin(
        Participation,
        and_(
            col(Participation.consultation_id) == col(Consultation.id),
            col(Participation.participant_id) == bindparam("b_participant"),
        ),
    )
    .where(col(Consultation.id) == bindparam("b_consultation"))
    .execution_options(populate_existing=True)
)


@dataclass(frozen=True)
class Enrolment:
    """A participant, with their current consultation (None if none is selected) and their
    participation in it (None before consent)."""

    participant: Participant
    consultation: Consultation | None = None
    participation: Participation | None = None


async def enrol(
    session: AsyncSession,
    secret: bytes,
    channel: str,
    user_id: str,
    address: str | None,
    now: datetime,
) -> Enrolment:
    """The participant behind (channel, user id), created on first contact, with their
    current consultation and their participation in it; the participant's row is locked until
    the transaction ends (on PostgreSQL: events of one participant take turns).

    Two first messages racing on two workers both try the insert; the loser gets an
    IntegrityError from the unique (channel, identity_hash) and the caller retries.
    """
    digest = identity_hash(secret, channel, user_id)
    parameters = {"b_channel": channel, "b_digest": digest}
    serial = one_writer_at_a_time(session.get_bind().dialect)
    consultation: Consultation | None = None
    participation: Participation | None = None
    if serial:
        joined = (await session.exec(_BY_IDENTITY, params=parameters)).first()
        held = None if joined is None else (joined[0], joined[1])
        if joined is not None:  # outer joins: None when there is none
            consultation, participation = joined[2], joined[3]
    else:
        held = (await session.exec(_IDENTIFIED, params=parameters)).first()
    if held is not None:
        participant, identity = held
        if address is not None and identity.address != address:
            identity.address = address
            session.add(identity)
        if outdated(identity.last_seen_at, now):
            identity.last_seen_at = now
            session.add(identity)
        current = participant.current_consultation_id
        if current is not None and not serial:
            # On PostgreSQL a query that waited for the participant's lock gets the participant
            # as the holder left it, but rows joined to it as they were when the query began
            # (the holder may have switched consultation or answered a question): read after.
            again = await session.exec(
                _CURRENT, params={"b_consultation": current, "b_participant": participant.id}
            )
            consultation, participation = again.first() or (None, None)
        return Enrolment(participant, consultation, participation)
    participant = Participant(created_at=now)
    session.add(participant)
    await session.flush()
    assert participant.id is not None
    session.add(
        ChannelIdentity(
            channel=channel,
            identity_hash=digest,
            address=address,
            participant_id=participant.id,
            created_at=now,
            last_seen_at=now,
        )
    )
    await session.flush()
    return Enrolment(participant)


async def enrolment_by_id(
    session: AsyncSession, participant_id: int, channel: str
) -> tuple[Enrolment, str] | None:
    """A participant by id, locked as `enrol` locks them, with their delivery address on
    `channel`; None once they have no address there (forgotten, say)."""
    found = (
        await session.exec(
            select(Participant, ChannelIdentity)
            .join(ChannelIdentity, col(ChannelIdentity.participant_id) == col(Participant.id))
            .where(Participant.id == participant_id, ChannelIdentity.channel == channel)
            .with_for_update(of=Participant)
        )
    ).first()
    if found is None:
        return None
    participant, identity = found
    address = identity.address
    if address is None:
        return None
    consultation: Consultation | None = None
    participation: Participation | None = None
    current = participant.current_consultation_id
    if current is not None:
        again = await session.exec(
            _CURRENT, params={"b_consultation": current, "b_participant": participant.id}
        )
        consultation, participation = again.first() or (None, None)
    return Enrolment(participant, consultation, participation), address


async def forget_participant(
    session: AsyncSession, participant: Participant, now: datetime
) -> None:
    """Erase what links a participant to a person; their votes stay as anonymous counts.

    Channel identities (hash and delivery address) go, so the next message from the same user
    starts afresh as a new, unrelated participant.
    """
    await session.exec(
        delete(ChannelIdentity).where(col(ChannelIdentity.participant_id) == participant.id)
    )
    participations = await session.exec(
        select(Participation).where(Participation.participant_id == participant.id)
    )
    for participation in participations:
        participation.source = None
        participation.profile = {}
        participation.subscribed = False
        participation.consented_at = None
        participation.updated_at = now
        session.add(participation)
    participant.locale = None
    participant.step = "forgotten"
    participant.state = {}
    participant.current_consultation_id = None
    participant.forgotten_at = now
    session.add(participant)


async def enrol_many(
    session: AsyncSession, secret: bytes, channel: str, user_ids: list[str], now: datetime
) -> dict[str, int]:
    """Participant ids for many users of one channel at once, creating the missing ones.

    For imports: a few queries per thousand users instead of a few per user.
    """
    digests = {user_id: identity_hash(secret, channel, user_id) for user_id in user_ids}
    known: dict[str, int] = {}
    wanted = list(digests.values())
    for start in range(0, len(wanted), 500):
        rows = await session.exec(
            select(ChannelIdentity.identity_hash, ChannelIdentity.participant_id).where(
                ChannelIdentity.channel == channel,
                col(ChannelIdentity.identity_hash).in_(wanted[start : start + 500]),
            )
        )
        known.update({digest: participant_id for digest, participant_id in rows})
    missing = [user_id for user_id in user_ids if digests[user_id] not in known]
    created = [Participant(created_at=now) for _ in missing]
    session.add_all(created)
    await session.flush()
    identities = []
    for user_id, participant in zip(missing, created, strict=True):
        assert participant.id is not None
        known[digests[user_id]] = participant.id
        identities.append(
            ChannelIdentity(
                channel=channel,
                identity_hash=digests[user_id],
                participant_id=participant.id,
                created_at=now,
            )
        )
    session.add_all(identities)
    await session.flush()
    return {user_id: known[digests[user_id]] for user_id in user_ids}

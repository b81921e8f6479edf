"""The recipients of `consult bench broadcast`, written straight into the database.

A fresh schema, one consultation (English and French, no quiet hours: the bench runs at any
hour), and N participants spread over Telegram, WhatsApp and Slack in turn, each with a channel
identity whose address points at the fakes (`bench.broadcast_fakes`), a consented participation,
and one queued `BroadcastMessage` of one `Broadcast` occurrence (`BroadcastRun`). Rows go in
with bulk INSERTs in chunks, so that generating 100,000 recipients takes seconds, not the hours
of playing their conversations; the broadcast is planned already (state done, no next
occurrence), so the scheduler of `consult deliver` leaves it alone and only delivery runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from bench.broadcast_fakes import CHANNELS, SLACK_TEAM, WHATSAPP_NUMBER
from bench.databases import empty_schema
from core.definitions import parse_consultation, upsert_consultation
from core.identity import identity_hash
from core.models import (
    Broadcast,
    BroadcastKind,
    BroadcastMessage,
    BroadcastRun,
    BroadcastState,
    ChannelIdentity,
    NoticeState,
    Participant,
    Participation,
)
from core.storage import create_engine, migrate, session_factory

SLUG = "bench-broadcast"
SECRET = "bench-broadcast-secret"
LOCALES = ("en", "fr")
TEXTS = {
    "en": "The consultation needs you: three minutes to vote on the new proposals.",
    "fr": "La consultation a besoin de vous : trois minutes pour voter sur les nouvelles "
    "propositions.",
}
CHUNK = 5_000


@dataclass(frozen=True)
class Recipient:
    """Participant `index` (their id is index + 1): the channel they are on, their address in
    our database, and the key the fake counts their messages under."""

    index: int
    channel: str
    user_id: str
    address: str
    key: str


def recipient(index: int) -> Recipient:
    channel = CHANNELS[index % len(CHANNELS)]
    if channel == "telegram":
        chat = str(10_000_000 + index)
        return Recipient(index, channel, chat, chat, chat)
    if channel == "whatsapp":
        number = f"3361{index:07d}"
        return Recipient(index, channel, number, f"{WHATSAPP_NUMBER}:{number}", number)
    dm = f"D{index:09d}"
    return Recipient(index, channel, f"U{index:09d}", f"{SLACK_TEAM}:{dm}", dm)


def expected_keys(recipients: int) -> dict[str, set[str]]:
    """Channel -> the keys every recipient of the channel should be counted under, once."""
    keys: dict[str, set[str]] = {channel: set() for channel in CHANNELS}
    for index in range(recipients):
        found = recipient(index)
        keys[found.channel].add(found.key)
    return keys


@dataclass(frozen=True)
class Generated:
    broadcast_id: int
    run_id: int
    by_channel: dict[str, int]
    seconds: float


def bench_consultation() -> dict[str, Any]:
    return {
        "slug": SLUG,
        "status": "open",
        "default_locale": "en",
        "locales": list(LOCALES),
        "question": {
            "en": "How should our town spend its culture budget?",
            "fr": "Comment notre ville devrait-elle dépenser son budget culture ?",
        },
        "settings": {"broadcasts": {"quiet_start": None, "quiet_end": None}},
    }


def _chunks(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def _bulk(connection: AsyncConnection, table: Any, rows: Iterator[dict[str, Any]]) -> None:
    for chunk in _chunks(rows):
        await connection.execute(insert(table), chunk)


async def generate(database_url: str, recipients: int, now: datetime, *, paid: bool) -> Generated:
    """A fresh schema holding the bench consultation and `recipients` queued messages."""
    started = time.perf_counter()
    engine = create_engine(database_url)
    try:
        await empty_schema(engine)
        await migrate(engine)
        async with session_factory(engine)() as session, session.begin():
            consultation, _ = await upsert_consultation(
                session, parse_consultation(bench_consultation()), now
            )
            assert consultation.id is not None
            consultation_id = consultation.id
        async with engine.begin() as connection:
            broadcast_id, run_id = await _broadcast(
                connection, consultation_id, recipients, now, paid
            )
            await _people(connection, consultation_id, recipients, now)
            await _messages(connection, consultation_id, broadcast_id, run_id, recipients, now)
        async with engine.connect() as connection:
            counted = await connection.execute(
                select(BroadcastMessage.channel, func.count())  # type: ignore[call-overload]
                .where(BroadcastMessage.run_id == run_id)
                .group_by(BroadcastMessage.channel)
            )
            by_channel = {str(channel): int(count) for channel, count in counted}
    finally:
        await engine.dispose()
    return Generated(broadcast_id, run_id, by_channel, round(time.perf_counter() - started, 2))


async def _broadcast(
    connection: AsyncConnection, consultation_id: int, recipients: int, now: datetime, paid: bool
) -> tuple[int, int]:
    broadcast = {
        "consultation_id": consultation_id,
        "kind": BroadcastKind.MANUAL,
        "texts": TEXTS,
        "button": False,
        "audience": "all",
        "template": None,
        "paid": paid,
        "first_at": now,
        "every": None,
        "next_run_at": None,
        "state": BroadcastState.DONE,
        "created_by": "bench",
        "created_at": now,
        "updated_at": now,
    }
    made = await connection.execute(
        insert(Broadcast).values(broadcast).returning(col(Broadcast.id))
    )
    broadcast_id = _id(made.scalar_one())
    run = {
        "broadcast_id": broadcast_id,
        "fire_at": now,
        "planned_at": now,
        "recipients": recipients,
        "skipped": {},
    }
    made = await connection.execute(
        insert(BroadcastRun).values(run).returning(col(BroadcastRun.id))
    )
    return broadcast_id, _id(made.scalar_one())


def _id(value: int | None) -> int:
    assert value is not None  # a primary key, just inserted
    return value


async def _people(
    connection: AsyncConnection, consultation_id: int, recipients: int, now: datetime
) -> None:
    secret = SECRET.encode()

    def participants() -> Iterator[dict[str, Any]]:
        for index in range(recipients):
            yield {
                "id": index + 1,
                "locale": LOCALES[index // 3 % 2],
                "current_consultation_id": consultation_id,
                "step": "new",
                "state": {},
                "created_at": now,
                "forgotten_at": None,
            }

    def identities() -> Iterator[dict[str, Any]]:
        for index in range(recipients):
            found = recipient(index)
            yield {
                "channel": found.channel,
                "identity_hash": identity_hash(secret, found.channel, found.user_id),
                "address": found.address,
                "participant_id": index + 1,
                "created_at": now,
                "last_seen_at": now,  # within WhatsApp's 24 hours: free text may go
                "unreachable_at": None,
            }

    def participations() -> Iterator[dict[str, Any]]:
        for index in range(recipients):
            yield {
                "participant_id": index + 1,
                "consultation_id": consultation_id,
                "source": None,
                "consented_at": now,
                "profile": {},
                "subscribed": True,
                "created_at": now,
                "updated_at": now,
            }

    await _bulk(connection, Participant, participants())
    await _bulk(connection, ChannelIdentity, identities())
    await _bulk(connection, Participation, participations())
    if connection.dialect.name == "postgresql":  # ids were given: the sequence follows them
        await connection.execute(
            text("SELECT setval(pg_get_serial_sequence('participant', 'id'), :last)"),
            {"last": max(recipients, 1)},
        )


async def _messages(
    connection: AsyncConnection,
    consultation_id: int,
    broadcast_id: int,
    run_id: int,
    recipients: int,
    now: datetime,
) -> None:
    def rows() -> Iterator[dict[str, Any]]:
        for index in range(recipients):
            yield {
                "run_id": run_id,
                "broadcast_id": broadcast_id,
                "consultation_id": consultation_id,
                "recipient": f"p:{index + 1}",
                "participant_id": index + 1,
                "contact_id": None,
                "address": None,  # a participant's address is their channel identity's
                "channel": recipient(index).channel,
                "locale": LOCALES[index // 3 % 2],
                "state": NoticeState.QUEUED,
                "attempts": 0,
                "next_attempt_at": now,
                "claimed_by": None,
                "claimed_at": None,
                "sent_at": None,
                "problem": None,
                "created_at": now,
            }

    await _bulk(connection, BroadcastMessage, rows())

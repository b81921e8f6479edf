"""A broadcast is written in the language a participant's conversation speaks, whether they chose
it (/language) or their app gave it, not in the consultation's default for want of a choice."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.broadcasts.audience import parse_audience, participant_recipients
from core.models import ChannelIdentity
from tests.conftest import Loader
from tests.support import Chat, Clock


async def test_the_app_language_and_the_chosen_one_are_both_kept_for_broadcasts(
    chat: Callable[..., Chat],
    load_consultation: Loader,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
) -> None:
    consultation = await load_consultation()  # French by default, English too
    await chat("ann", locale_hint="en").enrol()  # her app speaks English: never asked
    await chat("fred", locale_hint="fr").enrol()
    cleo = await chat("cleo", locale_hint="fr").enrol()
    await cleo.command("language")
    await cleo.tap("en")
    async with sessions() as session, session.begin():
        found = await session.exec(select(ChannelIdentity).order_by(col(ChannelIdentity.id)))
        order = []
        for identity in found:  # the test channel keeps no address: a broadcast needs one
            identity.address = f"address-{identity.id}"
            session.add(identity)
            order.append(identity.participant_id)
    async with sessions() as session:
        connection = await session.connection()
        rows = await connection.execute(
            participant_recipients(consultation, parse_audience("all"), clock())
        )
        language = {participant: locale for participant, _, locale in rows}
    assert [language[participant] for participant in order] == ["en", "fr", "en"]

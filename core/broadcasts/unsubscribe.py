"""Unsubscribing from every broadcast with one word, as WhatsApp's users expect ("STOP").

Meta asks businesses to honour opt-out replies; a person who writes STOP (or ARRÊT,
UNSUBSCRIBE) is never written to again by a broadcast: all their participations stop being
subscribed, and a contact imported from a CRM list with that number is unsubscribed. The
conversation's own /stop leaves one consultation; this leaves them all.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.identity import identity_hash
from core.models import ChannelIdentity, Contact, Participant, Participation

STOP_WORDS = frozenset({"stop", "arret", "unsubscribe", "stopp", "desabonner"})


def is_stop_word(text: str) -> bool:
    """Whether `text` is an opt-out reply alone: STOP, ARRET/ARRÊT, UNSUBSCRIBE (any case,
    accents, surrounding spaces or a final full stop or exclamation mark)."""
    folded = unicodedata.normalize("NFKD", text.strip().rstrip(".!").strip().casefold())
    bare = "".join(c for c in folded if not unicodedata.combining(c))
    return bare in STOP_WORDS


async def unsubscribe_everywhere(
    session: AsyncSession, secret: bytes, channel: str, user_id: str, now: datetime
) -> str | None:
    """Stop every broadcast to the person `user_id` of `channel`, in the caller's
    transaction: their participations are unsubscribed, their contacts too. Their language
    (None when unknown), to confirm it in."""
    hashed = identity_hash(secret, channel, user_id)
    found = (
        await session.exec(
            select(Participant.id, Participant.locale)
            .join(ChannelIdentity, col(ChannelIdentity.participant_id) == Participant.id)
            .where(ChannelIdentity.channel == channel, ChannelIdentity.identity_hash == hashed)
        )
    ).first()
    locale: str | None = None
    if found is not None:
        participant_id, locale = found
        await session.exec(
            update(Participation)
            .where(col(Participation.participant_id) == participant_id)
            .values(subscribed=False, updated_at=now)
        )
    contacts = await session.exec(
        select(Contact).where(Contact.channel == channel, Contact.identity_hash == hashed)
    )
    for contact in contacts:
        locale = locale or contact.locale
        if contact.unsubscribed_at is None:
            contact.unsubscribed_at = now
            session.add(contact)
    await session.flush()
    return locale

"""What a participant takes part in: the open consultations and their progress in each, for a
channel's overview (Slack's App Home, say). Read-only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.conversation.turn import OPEN, availability
from core.i18n import negotiate
from core.identity import identity_hash
from core.models import ChannelIdentity, Consultation, Participant, Proposal, ProposalStatus, Vote


@dataclass(frozen=True)
class ConsultationEntry:
    """An open consultation as one participant sees it: its question in their language, the
    votes they gave in it, and the accepted proposals in that language (the cards to vote on)."""

    slug: str
    question: str
    votes_given: int
    proposals: int


async def open_consultations_for(
    session: AsyncSession,
    secret: bytes,
    channel: str,
    user_id: str,
    locale_hint: str | None,
    now: datetime,
) -> tuple[str | None, list[ConsultationEntry]]:
    """(the locale the participant chose, if any; the consultations open at `now`, oldest
    first). A person not yet known has given 0 votes; the hint picks their language."""
    digest = identity_hash(secret, channel, user_id)
    participant = (
        await session.exec(
            select(Participant)
            .join(ChannelIdentity, col(ChannelIdentity.participant_id) == col(Participant.id))
            .where(ChannelIdentity.channel == channel, ChannelIdentity.identity_hash == digest)
        )
    ).first()
    chosen = participant.locale if participant is not None else None
    found = await session.exec(
        select(Consultation)
        .where(col(Consultation.status).in_(OPEN))
        .order_by(col(Consultation.id))
    )
    consultations = [c for c in found if availability(c, now) in OPEN]
    ids = [c.id for c in consultations]
    # Two grouped counts for every consultation at once, rather than two queries for each.
    cards = await session.exec(
        select(Proposal.consultation_id, Proposal.locale, func.count())
        .where(col(Proposal.consultation_id).in_(ids), Proposal.status == ProposalStatus.ACCEPTED)
        .group_by(col(Proposal.consultation_id), col(Proposal.locale))
    )
    proposals = {(consultation, locale): count for consultation, locale, count in cards}
    votes: dict[int, int] = {}
    if participant is not None:
        given = await session.exec(
            select(Proposal.consultation_id, func.count())
            .join(Vote, col(Vote.proposal_id) == col(Proposal.id))
            .where(Vote.participant_id == participant.id, col(Proposal.consultation_id).in_(ids))
            .group_by(col(Proposal.consultation_id))
        )
        votes = dict(given.all())
    entries = []
    for consultation in consultations:
        assert consultation.id is not None
        locale = (
            negotiate(chosen or locale_hint, consultation.locales) or consultation.default_locale
        )
        entries.append(
            ConsultationEntry(
                slug=consultation.slug,
                question=consultation.question[locale],
                votes_given=votes.get(consultation.id, 0),
                # Cards are shown in one language: only proposals in the participant's count.
                proposals=proposals.get((consultation.id, locale), 0),
            )
        )
    return chosen, entries

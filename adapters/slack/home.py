"""What the App Home tab shows a participant: open consultations and their own progress.

Read-only: nothing here changes a conversation. A person not yet known sees 0 votes.
"""

from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.conversation.turn import availability
from core.flow import Flow
from core.i18n import negotiate
from core.identity import identity_hash
from core.models import ChannelIdentity, Consultation, Participant, Proposal, ProposalStatus, Vote

OPEN = ("open", "vote-only")


async def home_entries(
    flow: Flow, channel: str, user_id: str, locale_hint: str | None
) -> tuple[str | None, list[tuple[str, str, int, int]]]:
    """(the participant's chosen locale if any, [(slug, question, votes given, proposals)])."""
    sessions: async_sessionmaker[AsyncSession] = flow.sessions
    digest = identity_hash(flow.secret, channel, user_id)
    now = flow.clock()
    async with sessions() as session:
        found = await session.exec(
            select(Participant)
            .join(ChannelIdentity, col(ChannelIdentity.participant_id) == col(Participant.id))
            .where(ChannelIdentity.channel == channel, ChannelIdentity.identity_hash == digest)
        )
        participant = found.first()
        consultations = await session.exec(
            select(Consultation)
            .where(col(Consultation.status).in_(OPEN))
            .order_by(col(Consultation.id))
        )
        chosen = participant.locale if participant else None
        entries = []
        for consultation in consultations:
            if availability(consultation, now) not in OPEN:
                continue
            locale = (
                negotiate(chosen or locale_hint, consultation.locales)
                or consultation.default_locale
            )
            total = await _count(
                session,
                select(func.count()).where(
                    Proposal.consultation_id == consultation.id,
                    Proposal.status == ProposalStatus.ACCEPTED,
                    Proposal.locale == locale,  # cards are shown in one language
                ),
            )
            voted = 0
            if participant is not None:
                voted = await _count(
                    session,
                    select(func.count())
                    .select_from(Vote)
                    .join(Proposal, col(Proposal.id) == col(Vote.proposal_id))
                    .where(
                        Vote.participant_id == participant.id,
                        Proposal.consultation_id == consultation.id,
                    ),
                )
            entries.append((consultation.slug, consultation.question[locale], voted, total))
    return chosen, entries


async def _count(session: AsyncSession, query: object) -> int:
    result = await session.exec(query)  # type: ignore[call-overload]
    return int(result.one())

"""Participants' proposals: checking the text, the daily limit, and storing them."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.definitions import ConsultationSettings
from core.models import Proposal, ProposalStatus
from core.voting import add_proposal

_SPACES = re.compile(r"\s+")
_TRAILING = " .,;:!?…-–—'\"«»"


@dataclass(frozen=True)
class TextProblem:
    """Why a proposal text was refused: a message id and the values its sentence needs."""

    msgid: str
    values: dict[str, int]


def compose_proposal(typed: str, prefix: str) -> str:
    """The full proposal from what was typed: spaces tidied, the prefix added if missing.

    Control characters are dropped; everything else (emoji, other scripts, RTL text, markup
    characters) is kept exactly as typed.
    """
    visible = "".join(ch for ch in typed if unicodedata.category(ch) != "Cc" or ch in "\n\t")
    text = _SPACES.sub(" ", visible).strip()
    if not any(unicodedata.category(ch)[0] not in "CZ" for ch in text):
        return ""  # nothing visible: only spaces or invisible format characters
    if text.casefold().startswith(prefix.casefold()):
        return text
    return f"{prefix} {text}"


def check_proposal(text: str, prefix: str, settings: ConsultationSettings) -> TextProblem | None:
    """None if `text` (as composed) can be proposed, else the problem to explain."""
    if not text:
        return TextProblem("propose.error.empty", {})
    body = text[len(prefix) :] if text.casefold().startswith(prefix.casefold()) else text
    if not body.strip(_TRAILING + " "):
        return TextProblem("propose.error.prefix_only", {})
    if len(text) < settings.proposal_min_length:
        return TextProblem("propose.error.too_short", {"minimum": settings.proposal_min_length})
    if len(text) > settings.proposal_max_length:
        return TextProblem(
            "propose.error.too_long",
            {"maximum": settings.proposal_max_length, "length": len(text)},
        )
    return None


def start_of_day(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


async def proposals_today(
    session: AsyncSession, participant_id: int, consultation_id: int, now: datetime
) -> int:
    """How many proposals the participant made in this consultation since midnight (UTC)."""
    since = start_of_day(now)
    query = select(func.count()).where(
        Proposal.author_id == participant_id,
        Proposal.consultation_id == consultation_id,
        col(Proposal.created_at) >= since,
        col(Proposal.created_at) < since + timedelta(days=1),
    )
    return (await session.exec(query)).one()


async def submit_proposal(
    session: AsyncSession,
    participant_id: int,
    consultation_id: int,
    text: str,
    locale: str,
    settings: ConsultationSettings,
    now: datetime,
) -> Proposal:
    """Store a checked proposal: pending under pre-moderation, accepted (shown) under post;
    flagged for moderators (`core.moderation.flags`), in the caller's transaction."""
    status = ProposalStatus.ACCEPTED if settings.moderation == "post" else ProposalStatus.PENDING
    proposal = Proposal(
        consultation_id=consultation_id,
        locale=locale,
        text=text,
        author_id=participant_id,
        status=status,
        created_at=now,
        updated_at=now,
    )
    # Imported here: core.moderation builds on this module (checking an edited text).
    from core.moderation.flags import flag_submission, flag_text

    await flag_text(session, proposal)
    await add_proposal(session, proposal)
    await flag_submission(session, proposal, now)
    return proposal

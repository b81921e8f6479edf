"""`consult import polis DIR`: a conversation in the Polis export format becomes a consultation.

Comments become proposals (moderated 1 -> accepted; 0 -> accepted too, since Polis shows
unmoderated comments unless a conversation is strictly moderated; -1 -> refused), voters and
authors become pseudonymous participants of the channel "polis:<slug>", and each voter's latest
vote becomes a sequence vote (1 agree, -1 disagree, 0 neutral). Importing the same export twice
changes nothing: proposals are matched by their ref (`polis-<comment id>`), participants by
their identity, and a vote that exists is left as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.definitions import parse_consultation, upsert_consultation
from core.identity import enrol_many
from core.models import Proposal, ProposalStatus, Vote, VoteKey
from core.polis import PolisConversation, PolisFormatError
from core.voting import CastVote, add_proposal, import_votes

CHUNK = 10_000
MAX_TEXT = 1000  # Proposal.text
KEYS = {1: VoteKey.AGREE, -1: VoteKey.DISAGREE, 0: VoteKey.NEUTRAL}

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ImportSummary:
    slug: str
    proposals_created: int
    proposals_updated: int
    participants: int
    votes_imported: int
    votes_skipped: int


def default_slug(name: str) -> str:
    """A slug from a directory name: "vtaiwan.uberx" -> "vtaiwan-uberx"."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48] or "polis"


def _status(moderated: int) -> ProposalStatus:
    return ProposalStatus.REFUSED if moderated == -1 else ProposalStatus.ACCEPTED


async def import_polis(
    sessions: async_sessionmaker[AsyncSession],
    secret: bytes,
    conversation: PolisConversation,
    slug: str,
    locale: str,
    now: datetime,
    progress: Progress | None = None,
) -> ImportSummary:
    """Create or update the consultation `slug` from `conversation`; see the module docstring."""
    for comment in conversation.comments:
        if len(comment.text) > MAX_TEXT:
            raise PolisFormatError(
                f"comments.csv, comment {comment.id}: {len(comment.text)} characters, "
                f"more than the {MAX_TEXT} a proposal can hold"
            )
    spec = parse_consultation(
        {
            "slug": slug,
            "status": "open",
            "default_locale": locale,
            "locales": [locale],
            "question": {locale: conversation.topic.strip() or slug},
        }
    )
    channel = f"polis:{slug}"
    async with sessions() as session, session.begin():
        consultation, _ = await upsert_consultation(session, spec, now)
        assert consultation.id is not None
        authors = {c.author_id for c in conversation.comments if c.author_id is not None}
        everyone = sorted(set(conversation.voters) | authors)
        ids = await enrol_many(session, secret, channel, [str(v) for v in everyone], now)
        people = {voter: ids[str(voter)] for voter in everyone}
        created, updated, proposals = await _proposals(
            session, consultation.id, conversation, people, locale, now
        )
        existing = await session.exec(
            select(Vote.participant_id, Vote.proposal_id).where(
                col(Vote.proposal_id).in_(list(proposals.values()))
            )
        )
        already = set(existing.all())
    pending = [
        CastVote(people[voter], proposals[comment], KEYS[vote])
        for (voter, comment), vote in sorted(conversation.votes.items())
        if comment in proposals and (people[voter], proposals[comment]) not in already
    ]
    for start in range(0, len(pending), CHUNK):
        async with sessions() as session, session.begin():
            await import_votes(session, pending[start : start + CHUNK], now)
        if progress is not None:
            progress(min(start + CHUNK, len(pending)), len(pending))
    return ImportSummary(
        slug=slug,
        proposals_created=created,
        proposals_updated=updated,
        participants=len(people),
        votes_imported=len(pending),
        votes_skipped=len(conversation.votes) - len(pending),
    )


async def _proposals(
    session: AsyncSession,
    consultation_id: int,
    conversation: PolisConversation,
    people: dict[int, int],
    locale: str,
    now: datetime,
) -> tuple[int, int, dict[int, int]]:
    """Create or update one proposal per comment; returns (created, updated, comment -> id)."""
    found = await session.exec(
        select(Proposal).where(
            Proposal.consultation_id == consultation_id,
            col(Proposal.ref).startswith("polis-"),
        )
    )
    existing = {p.ref: p for p in found}
    created = updated = 0
    ids: dict[int, int] = {}
    for comment in conversation.comments:
        ref = f"polis-{comment.id}"
        status = _status(comment.moderated)
        reason = "rejected by the Polis moderators" if status == ProposalStatus.REFUSED else None
        proposal = existing.get(ref)
        if proposal is None:
            written = datetime.fromtimestamp(comment.timestamp / 1000, UTC)
            proposal = await add_proposal(
                session,
                Proposal(
                    consultation_id=consultation_id,
                    ref=ref,
                    locale=locale,
                    text=comment.text,
                    author_id=None if comment.author_id is None else people[comment.author_id],
                    status=status,
                    refusal_reason=reason,
                    created_at=written,
                    updated_at=now,
                ),
            )
            created += 1
        elif (proposal.text, proposal.status) != (comment.text, status):
            proposal.text, proposal.status, proposal.refusal_reason = comment.text, status, reason
            proposal.updated_at = now
            session.add(proposal)
            updated += 1
        assert proposal.id is not None
        ids[comment.id] = proposal.id
    return created, updated, ids

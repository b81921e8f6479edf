"""`consult import polis DIR`: a conversation in the Polis export format becomes a consultation.

Comments become proposals (moderated 1 -> accepted; 0 -> accepted too, since Polis shows
unmoderated comments unless a conversation is strictly moderated; -1 -> refused); the
moderator's seed comments become the organiser's proposals, without an author (see
`core.polis`). Voters and the other comments' authors become pseudonymous participants of the
channel "polis:<slug>", and each voter's latest vote becomes a sequence vote (1 agree,
-1 disagree, 0 neutral). Importing the same export twice changes nothing: proposals are
matched by their ref (`polis-<comment id>`), participants by their identity, and a vote that
exists is left as it is (even if a newer export changed it).

Everything keeps its time in the conversation, so that the Live page's timelines and the trust
rules (how fast cards were answered, who joined in a burst) read the conversation as it
happened, not as one burst on the day of the import: a proposal is written when its comment
was, a vote cast when votes.csv says (its latest time), and each person joins the
consultation (a participation of source "polis", its consent given on Polis) with their
first vote or comment. An export without votes.csv dates no vote: its votes are cast at the
import, and so are the joins of people who wrote nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.definitions import parse_consultation, upsert_consultation
from core.identity import enrol_many
from core.models import (
    ChannelIdentity,
    Consultation,
    Participant,
    Participation,
    Proposal,
    ProposalStatus,
    Vote,
    VoteKey,
)
from core.polis import PolisConversation, PolisFormatError
from core.voting import CastVote, add_proposal, import_votes

# A refusal reason code (not a sentence: what people read is rendered from catalogues).
POLIS_REJECTED = "polis-moderation"
CHUNK = 5_000  # votes per transaction
MAX_TEXT = 1000  # Proposal.text
MAX_CHANNEL = 32  # ChannelIdentity.channel
KEYS = {1: VoteKey.AGREE, -1: VoteKey.DISAGREE, 0: VoteKey.NEUTRAL}
SOURCE = "polis"  # the participations' recruitment source
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Progress = Callable[[int, int], None]


class NotAPolisConsultation(ValueError):
    """The slug belongs to a consultation with proposals of its own: importing would mix them."""

    def __init__(self, slug: str) -> None:
        super().__init__(f"consultation {slug!r} has proposals that do not come from Polis")
        self.slug = slug


@dataclass(frozen=True)
class ImportSummary:
    slug: str
    proposals_created: int
    proposals_updated: int
    participants: int
    votes_imported: int
    votes_skipped: int  # already in the database


def default_slug(name: str) -> str:
    """A slug from a directory name: "vtaiwan.uberx" -> "vtaiwan-uberx"."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48].strip("-") or "polis"


def polis_channel(slug: str) -> str:
    """The channel of the conversation's participants: "polis:<slug>", shortened to fit."""
    channel = f"polis:{slug}"
    if len(channel) <= MAX_CHANNEL:
        return channel
    digest = hashlib.sha256(slug.encode()).hexdigest()[:8]
    return f"polis:{slug[: MAX_CHANNEL - 15]}~{digest}"


def polis_time(stamp: int) -> datetime:
    """A Polis timestamp (milliseconds since 1970) as a UTC datetime, to the millisecond."""
    return EPOCH + timedelta(milliseconds=stamp)


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
    """Create or update the consultation `slug` from `conversation`; see the module docstring.

    Raises PolisFormatError for a comment longer than a proposal can be, DefinitionError for a
    bad slug or locale, NotAPolisConsultation when `slug` holds proposals of its own. The
    consultation, participants and proposals are written in one transaction, then the votes
    in transactions of CHUNK votes; `progress(done, total)` is called after each.
    """
    too_long = [c for c in conversation.comments if len(c.text) > MAX_TEXT]
    if too_long:
        first, more = too_long[0], len(too_long) - 1
        where = f", line {first.line}" if first.line else ""
        raise PolisFormatError(
            f"comments.csv{where}, column comment-body: comment {first.id} has "
            f"{len(first.text)} characters, longer than the {MAX_TEXT} a proposal can hold"
            + (f" ({more} more comments too)" if more else "")
        )
    spec = parse_consultation(
        {
            "slug": slug,
            "status": "open",
            "audience": "citizens",
            "default_locale": locale,
            "locales": [locale],
            "question": {locale: conversation.topic.strip() or slug},
        }
    )
    async with sessions() as session, session.begin():
        await _refuse_foreign(session, slug)
        consultation, _ = await upsert_consultation(session, spec, now)
        assert consultation.id is not None
        authors = {a for c in conversation.comments if (a := c.participant_author) is not None}
        everyone = sorted(set(conversation.voters) | authors)
        channel = polis_channel(slug)
        ids = await enrol_many(session, secret, channel, [str(v) for v in everyone], now)
        people = {voter: ids[str(voter)] for voter in everyone}
        await _keep_polis_numbers(session, channel, people)
        await _join(session, consultation.id, people, _first_seen(conversation, people), now)
        created, updated, proposals = await _proposals(
            session, consultation.id, conversation, people, locale, now
        )
        existing = await session.exec(
            select(Vote.participant_id, Vote.proposal_id).where(
                col(Vote.proposal_id).in_(list(proposals.values()))
            )
        )
        already = set(existing.all())
    times = conversation.vote_times
    # By proposal, so that a transaction updates the counters of a few proposals, not all.
    pending = sorted(
        (
            CastVote(
                people[voter],
                proposals[comment],
                KEYS[vote],
                at=None if (stamp := times.get((voter, comment))) is None else polis_time(stamp),
            )
            for (voter, comment), vote in conversation.votes.items()
            if (people[voter], proposals[comment]) not in already
        ),
        key=lambda cast: (cast.proposal_id, cast.participant_id),
    )
    for start in range(0, len(pending), CHUNK):
        async with sessions() as session, session.begin():
            await import_votes(session, pending[start : start + CHUNK], now)
        if progress is not None:
            progress(min(start + CHUNK, len(pending)), len(pending))
    if progress is not None and not pending:
        progress(0, 0)
    return ImportSummary(
        slug=slug,
        proposals_created=created,
        proposals_updated=updated,
        participants=len(people),
        votes_imported=len(pending),
        votes_skipped=len(conversation.votes) - len(pending),
    )


async def _keep_polis_numbers(session: AsyncSession, channel: str, people: dict[int, int]) -> None:
    """Write each participant's Polis number on their identity (`ChannelIdentity.ref`), so that
    `consult export polis` gives the conversation back with its own ids. Identities imported
    before the column existed get theirs when the export is imported again."""
    number = {participant: str(voter) for voter, participant in people.items()}
    found = await session.exec(
        select(ChannelIdentity).where(
            ChannelIdentity.channel == channel, col(ChannelIdentity.ref).is_(None)
        )
    )
    for identity in found:
        if identity.participant_id in number:
            identity.ref = number[identity.participant_id]
            session.add(identity)
    await session.flush()


def _first_seen(conversation: PolisConversation, people: dict[int, int]) -> dict[int, datetime]:
    """Participant id -> the time of their first dated vote or comment (the undated have none)."""
    first: dict[int, int] = {}
    activity = [(voter, stamp) for (voter, _), stamp in conversation.vote_times.items()]
    activity += [(c.author_id, c.timestamp) for c in conversation.comments if c.author_id in people]
    for voter, stamp in activity:
        if voter is not None and (voter not in first or stamp < first[voter]):
            first[voter] = stamp
    return {people[voter]: polis_time(stamp) for voter, stamp in first.items()}


async def _join(
    session: AsyncSession,
    consultation_id: int,
    people: dict[int, int],
    first_seen: dict[int, datetime],
    now: datetime,
) -> None:
    """Give everyone without one a participation of source "polis", from their first vote or
    comment (else `now`), and date their identity's creation no later (the trust rules tell a
    new identity by it). Participations that exist are left as they are."""
    joined = await session.exec(
        select(Participation.participant_id).where(Participation.consultation_id == consultation_id)
    )
    had = set(joined.all())
    since = {pid: first_seen.get(pid, now) for pid in people.values() if pid not in had}
    newcomers = sorted(since)
    for start in range(0, len(newcomers), 500):
        found = await session.exec(
            select(Participant).where(col(Participant.id).in_(newcomers[start : start + 500]))
        )
        for participant in found:
            assert participant.id is not None
            if since[participant.id] < participant.created_at:
                participant.created_at = since[participant.id]
                session.add(participant)
    session.add_all(
        Participation(
            participant_id=pid,
            consultation_id=consultation_id,
            source=SOURCE,
            consented_at=since[pid],
            created_at=since[pid],
            updated_at=since[pid],
        )
        for pid in newcomers
    )
    await session.flush()


async def _refuse_foreign(session: AsyncSession, slug: str) -> None:
    """Raise NotAPolisConsultation if `slug` has a proposal not imported from Polis."""
    foreign = await session.exec(
        select(Proposal.id)
        .join(Consultation, col(Consultation.id) == col(Proposal.consultation_id))
        .where(
            Consultation.slug == slug,
            or_(col(Proposal.ref).is_(None), ~col(Proposal.ref).startswith("polis-")),
        )
        .limit(1)
    )
    if foreign.first() is not None:
        raise NotAPolisConsultation(slug)


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
        reason = POLIS_REJECTED if status == ProposalStatus.REFUSED else None
        proposal = existing.get(ref)
        if proposal is None:
            written = polis_time(comment.timestamp)
            proposal = await add_proposal(
                session,
                Proposal(
                    consultation_id=consultation_id,
                    ref=ref,
                    locale=locale,
                    text=comment.text,
                    author_id=None
                    if (author := comment.participant_author) is None
                    else people[author],
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

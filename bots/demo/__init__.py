"""The demo consultation ("How can we make culture accessible to everyone?") and the simulated
participants whose votes give its summaries something to show."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bots.definitions_file import read_definition
from core.definitions import settings_of, upsert_consultation
from core.identity import enrol
from core.models import (
    QUALIFICATIONS,
    Consultation,
    Participation,
    Proposal,
    QualificationKey,
    VoteKey,
)
from core.proposals import compose_proposal, submit_proposal
from core.voting import CastVote, import_votes

DEMO_FILE = Path(__file__).resolve().parent / "culture.yaml"
# The simulated participants live on Telegram, under chat ids no real chat has (from
# SIMULATED_CHAT_IDS on), so that a broadcast to them can be sent for real to the local stand-in
# for Telegram that the tests use (README, "Broadcasting"); a real bot never reaches them.
SIMULATED_CHANNEL = "telegram"
SIMULATED_CHAT_IDS = 9_000_000_001
SIMULATED_PARTICIPANTS = 300
JOINED_WITHIN_DAYS = 14
SECONDS_PER_CARD = (6.0, 25.0)
VOTES_EACH = 12
GROUP_SHARES = (0.5, 0.3, 0.2)

# How the simulated population leans on some demo proposals, so that the demo's summaries show
# what a real consultation shows: consensus, a split between groups, rejection, platitudes.
LEANINGS = {
    "libraries-open-late": "consensus",
    "accessible-venues": "consensus",
    "subtitles-sign-language": "consensus",
    "night-transport": "consensus",
    "mobile-library": "consensus",
    "artists-in-schools": "consensus",
    "art-in-schools": "consensus",
    "opera-to-festivals": "split",
    "tourists-pay-museums": "split",
    "ban-blockbusters": "split",
    "private-sponsors": "split",
    "close-small-theatres": "rejected",
    "end-public-funding": "rejected",
    "compulsory-museum-visits": "rejected",
    "culture-better-for-all": "platitude",
    "culture-everywhere": "platitude",
}

# Proposals simulated participants sent, waiting for a moderator, so that a newcomer has a queue
# to moderate: a copy of an accepted proposal in other words, texts that earn each kind of flag
# (shouting, a link, a phone number, three from one author within minutes), ordinary ones.
# (simulated participant, locale, minutes before the demo was seeded, what they typed)
PENDING = (
    (11, "fr", 95, "ouvrir gratuitement les musées chaque premier dimanche du mois"),
    (23, "en", 80, "give every pupil a free theatre ticket each school year"),
    (42, "fr", 64, "organiser des concerts gratuits dans les maisons de retraite"),
    (57, "en", 50, "LOWER ALL TICKET PRICES NOW!!!!!!"),
    (68, "fr", 41, "publier le programme culturel sur www.culture-pour-tous.example"),
    (75, "en", 33, "set up a phone line for bookings, call 06 12 34 56 78"),
    (88, "fr", 9, "créer un pass culture pour les chômeurs"),
    (88, "fr", 7, "prêter des instruments de musique à la médiathèque"),
    (88, "fr", 5, "ouvrir les cinémas aux lycéens le mercredi matin"),
)


def _seed_ref(proposal: Proposal) -> str:
    """The seed ref shared by a proposal's versions in each language ("ref.fr" -> "ref")."""
    return (proposal.ref or str(proposal.id)).rsplit(".", 1)[0]


def _truth(leaning: str, rng: random.Random) -> tuple[list[float], float]:
    """P(agree | not neutral) for each opinion group, and P(neutral)."""
    neutral = rng.uniform(0.05, 0.25)
    if leaning == "consensus":
        leans = [rng.uniform(1.5, 3.0) for _ in GROUP_SHARES]
    elif leaning == "rejected":
        leans = [rng.uniform(-3.0, -1.5) for _ in GROUP_SHARES]
    elif leaning == "split":
        leans = [2.0, -2.0, rng.uniform(-1.0, 1.0)]
    elif leaning == "platitude":
        leans, neutral = [rng.uniform(0.0, 1.0) for _ in GROUP_SHARES], rng.uniform(0.45, 0.6)
    else:
        appeal = rng.uniform(-1.0, 1.5)
        leans = [appeal + rng.gauss(0, 1.0) for _ in GROUP_SHARES]
    return [1 / (1 + math.exp(-lean)) for lean in leans], neutral


@dataclass(frozen=True)
class SeedReport:
    slug: str
    created: bool
    proposals: int
    simulated_votes: int


async def seed_demo(
    sessions: async_sessionmaker[AsyncSession], secret: bytes, now: datetime, seed: int = 2026
) -> SeedReport:
    """Load the demo consultation and, the first time only, simulated participants' votes."""
    spec = read_definition(DEMO_FILE)
    async with sessions() as session, session.begin():
        consultation, created = await upsert_consultation(session, spec, now)
        found = await session.exec(
            select(Proposal).where(Proposal.consultation_id == consultation.id)
        )
        proposals = list(found)
        already = sum(p.vote_count for p in proposals)
        votes = 0
        if already == 0:
            votes, authors = await _simulate(session, secret, consultation.id, proposals, now, seed)
            await _propose(session, consultation, authors, now)
    return SeedReport(spec.slug, created, len(proposals), votes)


async def _propose(
    session: AsyncSession, consultation: Consultation, authors: list[int], now: datetime
) -> None:
    """The pending proposals of `PENDING`, sent as a participant's are (checked, flagged)."""
    assert consultation.id is not None
    settings = settings_of(consultation)
    for author, locale, minutes_ago, typed in PENDING:
        text = compose_proposal(typed, settings.prefix[locale])
        sent = now - timedelta(minutes=minutes_ago)
        await submit_proposal(
            session, authors[author], consultation.id, text, locale, settings, sent
        )


async def _simulate(
    session: AsyncSession,
    secret: bytes,
    consultation_id: int | None,
    proposals: list[Proposal],
    now: datetime,
    seed: int,
) -> tuple[int, list[int]]:
    """Votes from a population of three opinion groups of unequal size: how many, and the
    participants' ids.

    Each proposal (the same in both languages) has a general appeal, a lean per group and a
    share of neutral answers, so the demo shows consensus, controversy and rejection.
    """
    assert consultation_id is not None
    rng = random.Random(seed)
    truths: dict[str, tuple[list[float], float]] = {}
    by_locale: dict[str, list[Proposal]] = {}
    for proposal in proposals:
        by_locale.setdefault(proposal.locale, []).append(proposal)
        ref = _seed_ref(proposal)
        if ref not in truths:
            truths[ref] = _truth(LEANINGS.get(ref, "mixed"), rng)
    votes: list[CastVote] = []
    participants: list[int] = []
    # When each simulated participant joined (over the last two weeks) and how long each card
    # took them: a separate stream, so the opinions drawn above stay those of earlier demos.
    timing = random.Random(seed + 1)
    for index in range(SIMULATED_PARTICIPANTS):
        joined = now - timedelta(minutes=timing.uniform(30, JOINED_WITHIN_DAYS * 24 * 60))
        chat_id = str(SIMULATED_CHAT_IDS + index)
        enrolment = await enrol(session, secret, SIMULATED_CHANNEL, chat_id, chat_id, joined)
        participant = enrolment.participant
        assert participant.id is not None
        participants.append(participant.id)
        locale = "fr" if rng.random() < 0.65 else "en"
        participant.locale = locale
        participant.current_consultation_id = consultation_id
        session.add(
            Participation(
                participant_id=participant.id,
                consultation_id=consultation_id,
                source="simulation",
                consented_at=joined,
                created_at=joined,
                updated_at=joined,
            )
        )
        cast_at = joined
        group = rng.choices(range(len(GROUP_SHARES)), weights=GROUP_SHARES)[0]
        pool = by_locale.get(locale, [])
        for proposal in rng.sample(pool, min(VOTES_EACH, len(pool))):
            assert proposal.id is not None
            agree_given_opinion, neutral = truths[_seed_ref(proposal)]
            draw = rng.random()
            if draw < neutral:
                key = VoteKey.NEUTRAL
            elif draw < neutral + (1 - neutral) * agree_given_opinion[group]:
                key = VoteKey.AGREE
            else:
                key = VoteKey.DISAGREE
            qualifications: tuple[QualificationKey, ...] = ()
            if rng.random() < 0.4:
                qualifications = (rng.choice(QUALIFICATIONS[key]),)
            cast_at += timedelta(seconds=timing.uniform(*SECONDS_PER_CARD))  # reading, then a tap
            votes.append(
                CastVote(participant.id, proposal.id, key, True, qualifications, at=cast_at)
            )
    await import_votes(session, votes, now)
    return len(votes), participants

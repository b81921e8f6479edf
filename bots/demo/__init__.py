"""The demo consultation ("How can we make culture accessible to everyone?") and the simulated
participants whose votes give its summaries something to show."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bots.definitions_file import read_definition
from core.definitions import upsert_consultation
from core.identity import enrol_participant
from core.models import QUALIFICATIONS, Participation, Proposal, QualificationKey, VoteKey
from core.voting import record_qualification, record_vote

DEMO_FILE = Path(__file__).resolve().parent / "culture.yaml"
SIMULATED_CHANNEL = "simulation"
SIMULATED_PARTICIPANTS = 300
VOTES_EACH = 12
GROUP_SHARES = (0.5, 0.3, 0.2)


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
            votes = await _simulate(session, secret, consultation.id, proposals, now, seed)
    return SeedReport(spec.slug, created, len(proposals), votes)


async def _simulate(
    session: AsyncSession,
    secret: bytes,
    consultation_id: int | None,
    proposals: list[Proposal],
    now: datetime,
    seed: int,
) -> int:
    """Votes from a population of three opinion groups of unequal size.

    Each proposal (the same in both languages) has a general appeal, a lean per group and a
    share of neutral answers, so the demo shows consensus, controversy and rejection.
    """
    assert consultation_id is not None
    rng = random.Random(seed)
    truths: dict[str, tuple[list[float], float]] = {}
    by_locale: dict[str, list[Proposal]] = {}
    for proposal in proposals:
        by_locale.setdefault(proposal.locale, []).append(proposal)
        ref = (proposal.ref or str(proposal.id)).rsplit(".", 1)[0]
        if ref not in truths:
            appeal = rng.uniform(-1.5, 2.0)
            leans = [appeal + rng.gauss(0, 1.2) for _ in GROUP_SHARES]
            truths[ref] = ([1 / (1 + math.exp(-lean)) for lean in leans], rng.uniform(0.05, 0.4))
    votes = 0
    for index in range(SIMULATED_PARTICIPANTS):
        participant = await enrol_participant(
            session, secret, SIMULATED_CHANNEL, f"sim-{index:04d}", None, now
        )
        assert participant.id is not None
        locale = "fr" if rng.random() < 0.65 else "en"
        participant.locale = locale
        participant.current_consultation_id = consultation_id
        session.add(
            Participation(
                participant_id=participant.id,
                consultation_id=consultation_id,
                source="simulation",
                consented_at=now,
                created_at=now,
                updated_at=now,
            )
        )
        group = rng.choices(range(len(GROUP_SHARES)), weights=GROUP_SHARES)[0]
        pool = by_locale.get(locale, [])
        for proposal in rng.sample(pool, min(VOTES_EACH, len(pool))):
            assert proposal.id is not None
            agree_given_opinion, neutral = truths[(proposal.ref or "").rsplit(".", 1)[0]]
            draw = rng.random()
            if draw < neutral:
                key = VoteKey.NEUTRAL
            elif draw < neutral + (1 - neutral) * agree_given_opinion[group]:
                key = VoteKey.AGREE
            else:
                key = VoteKey.DISAGREE
            await record_vote(session, participant.id, proposal.id, key, trusted=True, now=now)
            votes += 1
            if rng.random() < 0.4:
                qualification: QualificationKey = rng.choice(QUALIFICATIONS[key])
                await record_qualification(
                    session, participant.id, proposal.id, qualification, now=now
                )
    return votes

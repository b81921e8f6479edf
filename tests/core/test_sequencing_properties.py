"""Property-based tests of the hard rules of sequencing, through the database.

Random consultations (authors, statuses, locales, near-duplicates, existing votes, cards already
shown in the sequence) are stored for real (SQLite, and PostgreSQL when configured), then
`next_proposals_for` must never return a proposal that is not accepted, in another locale, voted
on or already shown, the participant's own, two by the same author, or two near-duplicates;
whatever the algorithm.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.definitions import parse_consultation, upsert_consultation
from core.identity import enrol
from core.models import Proposal, ProposalStatus, VoteKey
from core.sequencing import ALGORITHMS, next_proposals_for
from core.sequencing.rules import NEAR_DUPLICATE, shingles, similarity
from core.storage import create_engine, migrate, session_factory
from core.voting import add_proposal, record_vote
from tests.conftest import SECRET, consultation_data
from tests.support import Clock

PREFIX = "We should"  # the English default prefix, stripped before comparing texts
BASES = [
    "open the libraries on sundays",
    "make buses free after seventy",
    "plant trees in every school yard",
    "pay night nurses better",
    "build more bicycle lanes downtown",
    "hold a yearly music festival",
]
_counter = itertools.count()  # every example gets its own consultation and participants


@dataclass(frozen=True)
class Spec:
    locale: str
    status: str
    author: int | None  # -1 is the participant asking for cards
    base: int
    variant: bool  # a near-duplicate of the base text
    my_vote: bool
    other_votes: int
    shown: bool


specs = st.builds(
    Spec,
    locale=st.sampled_from(["en", "en", "en", "fr"]),
    status=st.sampled_from(
        [ProposalStatus.ACCEPTED] * 3 + [ProposalStatus.PENDING, ProposalStatus.REFUSED]
    ),
    author=st.one_of(st.none(), st.integers(-1, 3)),
    base=st.integers(0, len(BASES) - 1),
    variant=st.booleans(),
    my_vote=st.booleans(),
    other_votes=st.integers(0, 11),
    shown=st.booleans(),
)


def _text(spec: Spec, index: int) -> str:
    # Same base: a near-duplicate; otherwise a suffix keeps texts of one base apart.
    body = BASES[spec.base] + ("!" if spec.variant else f" {index * 7919:x}")
    return f"{PREFIX} {body}"


def _body(text: str) -> frozenset[str]:
    return shingles(text.removeprefix(PREFIX))


async def _play(url: str, algorithm: str, proposals: list[Spec], n: int, seed: int) -> None:
    engine = create_engine(url)
    await migrate(engine)
    sessions = session_factory(engine)
    clock = Clock()
    run = next(_counter)
    data = consultation_data(slug=f"prop-{run}", proposals=[], settings={"sequencing": algorithm})
    try:
        async with sessions() as session, session.begin():
            consultation, _ = await upsert_consultation(session, parse_consultation(data), clock())
            me = (await enrol(session, SECRET, "test", f"me-{run}", None, clock())).participant
            authors = [
                (await enrol(session, SECRET, "test", f"a{i}-{run}", None, clock())).participant
                for i in range(4)
            ]
            voters = [
                (await enrol(session, SECRET, "test", f"v{i}-{run}", None, clock())).participant
                for i in range(11)
            ]
            stored: list[Proposal] = []
            for index, spec in enumerate(proposals):
                author = None
                if spec.author is not None:
                    author = me.id if spec.author == -1 else authors[spec.author].id
                proposal = await add_proposal(
                    session,
                    Proposal(
                        consultation_id=consultation.id,
                        locale=spec.locale,
                        text=_text(spec, index),
                        author_id=author,
                        status=spec.status,
                        created_at=clock(),
                        updated_at=clock(),
                    ),
                )
                stored.append(proposal)
                for voter in voters[: spec.other_votes]:
                    await record_vote(
                        session, voter.id, proposal.id, VoteKey.AGREE, trusted=True, now=clock()
                    )
                if spec.my_vote:
                    await record_vote(
                        session, me.id, proposal.id, VoteKey.NEUTRAL, trusted=True, now=clock()
                    )
        shown = [p.id for p, s in zip(stored, proposals, strict=True) if s.shown]
        async with sessions() as session:
            chosen = await next_proposals_for(
                session, me.id, consultation, "en", n, shown=shown, rng=random.Random(seed)
            )
        spec_of = {p.id: s for p, s in zip(stored, proposals, strict=True)}
        text_of = {p.id: p.text for p in stored}
        author_of = {p.id: p.author_id for p in stored}
        ids = [p.id for p in chosen]
        assert len(ids) == len(set(ids)) <= n
        for pid in ids:
            spec = spec_of[pid]
            assert spec.status == ProposalStatus.ACCEPTED
            assert spec.locale == "en"
            assert not spec.my_vote and pid not in shown
            assert author_of[pid] != me.id
        in_sequence = [*shown, *ids]
        for a, b in itertools.combinations(in_sequence, 2):
            if a in ids or b in ids:  # the rules apply to what was added to the sequence
                assert author_of[a] is None or author_of[a] != author_of[b]
                assert similarity(_body(text_of[a]), _body(text_of[b])) < NEAR_DUPLICATE
    finally:
        await engine.dispose()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    algorithm=st.sampled_from(sorted(ALGORITHMS)),
    proposals=st.lists(specs, min_size=0, max_size=14),
    n=st.integers(1, 8),
    seed=st.integers(0, 2**16),
)
def test_next_proposals_keep_every_hard_rule(
    database_url: str, algorithm: str, proposals: list[Spec], n: int, seed: int
) -> None:
    asyncio.run(_play(database_url, algorithm, proposals, n, seed))

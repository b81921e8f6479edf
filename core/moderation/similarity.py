"""Proposals that say nearly the same as a text: for the participant before they send theirs,
and for the moderator deciding it.

One interface (`Similarity`), so that an operator can plug in an embedding model they host;
the default (`TermSimilarity`) is offline and needs nothing but the database:

1. An inverted index of each proposal's stemmed content words (`ProposalTerm`) and how many
   proposals of the consultation have each (`TermCount`), kept by the ORM's flush whenever a
   proposal is written (`core.moderation.index`), so it is never behind the proposals.
2. A lookup reads the counts of the text's terms, then the proposals sharing its rarest terms
   (at most `postings` index rows: a bounded read whatever the consultation's size), keeps the
   `candidates` sharing the most weight, and scores those alone.
3. The score blends the cosine of the two texts' terms weighted by their rarity (IDF), so that
   words every proposal uses weigh nothing, with the cosine of their words' character trigrams,
   which a stemmer's misses and typos still share.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

import core.models  # noqa: F401 - the tables below
from core.moderation.index import ALL
from core.moderation.text import trigrams

# The score from which two proposals say nearly the same, and the words' share of it: chosen
# on tests/data/similarity_pairs.csv, favouring precision (a participant shown unrelated
# proposals stops reading them): 0.85 there, recall 0.68 (`consult bench similarity`).
THRESHOLD = 0.42
WORD_WEIGHT = 0.6

_TERMS = SQLModel.metadata.tables["proposalterm"]
_COUNTS = SQLModel.metadata.tables["termcount"]
_PROPOSALS = SQLModel.metadata.tables["proposal"]


@dataclass(frozen=True)
class Similar:
    """A proposal close to the text looked up; `score` in [0, 1], 1 for the same words."""

    proposal_id: int
    text: str
    status: str
    score: float


class Similarity(Protocol):
    """Finds a consultation's proposals that say nearly the same as `text`, best first."""

    async def similar(
        self,
        session: AsyncSession,
        consultation_id: int,
        text: str,
        locale: str,
        *,
        statuses: tuple[str, ...],
        limit: int,
        exclude_id: int | None,
    ) -> list[Similar]: ...


# Scoring: pure.


def rarity(proposals: int, having: int) -> float:
    """Inverse document frequency, smoothed (a term no proposal has yet counts as in one)."""
    return math.log(1 + proposals / max(having, 1))


@dataclass(frozen=True)
class _Vector:
    weights: dict[str, float]
    norm: float

    @classmethod
    def of(cls, weights: dict[str, float]) -> _Vector:
        return cls(weights, math.sqrt(sum(w * w for w in weights.values())))

    def cosine(self, other: _Vector) -> float:
        small, large = (self, other) if len(self.weights) <= len(other.weights) else (other, self)
        dot = sum(w * large.weights.get(key, 0.0) for key, w in small.weights.items())
        return dot / (self.norm * other.norm) if self.norm and other.norm else 0.0


@dataclass(frozen=True)
class Profile:
    """What the score compares of a text."""

    terms: frozenset[str]
    grams: Mapping[str, Counter[str]]  # per term

    @classmethod
    def of(cls, text: str, locale: str) -> Profile:
        grams = trigrams(text, locale)
        return cls(frozenset(grams), grams)


def score(
    a: Profile, b: Profile, weights: Mapping[str, float], word_weight: float = WORD_WEIGHT
) -> float:
    """How nearly `a` and `b` say the same, in [0, 1]: the terms' cosine weighted by
    `weights` (a term's rarity; 1 when missing), blended with the cosine of the trigrams,
    each weighted as the term it comes from (a common word's trigrams weigh little too)."""
    return _blend(_vectors(a, weights), _vectors(b, weights), word_weight)


def _vectors(profile: Profile, weights: Mapping[str, float]) -> tuple[_Vector, _Vector]:
    words: dict[str, float] = {}
    grams: dict[str, float] = {}
    for term, its_grams in profile.grams.items():
        weight = words[term] = weights.get(term, 1.0)
        for gram, n in its_grams.items():
            grams[gram] = grams.get(gram, 0.0) + weight * n
    return _Vector.of(words), _Vector.of(grams)


def _blend(a: tuple[_Vector, _Vector], b: tuple[_Vector, _Vector], word_weight: float) -> float:
    words, grams = a[0].cosine(b[0]), a[1].cosine(b[1])
    return min(1.0, word_weight * words + (1 - word_weight) * grams)


def rarest(having: Mapping[str, int], budget: int) -> list[str]:
    """The terms to look candidates up by: the rarest first, while their index rows stay
    within `budget`; at least the rarest one."""
    chosen: list[str] = []
    rows = 0
    for term in sorted(having, key=lambda t: (having[t], t)):
        if chosen and rows + having[term] > budget:
            break
        chosen.append(term)
        rows += having[term]
    return chosen


@dataclass(frozen=True)
class TermSimilarity:
    """The offline default: stemmed words and character trigrams (see the module's doc)."""

    threshold: float = THRESHOLD
    word_weight: float = WORD_WEIGHT
    postings: int = 1500
    candidates: int = 30

    async def similar(
        self,
        session: AsyncSession,
        consultation_id: int,
        text: str,
        locale: str,
        *,
        statuses: tuple[str, ...] = ("accepted",),
        limit: int = 3,
        exclude_id: int | None = None,
    ) -> list[Similar]:
        query = Profile.of(text, locale)
        if not query.terms or limit < 1 or not statuses:
            return []
        connection = await session.connection()
        counts = await _counts(connection, consultation_id, query.terms | {ALL})
        proposals = counts.pop(ALL, 0)
        if proposals == 0 or not counts:
            return []
        looked_up = {
            term: rarity(proposals, counts[term]) for term in rarest(counts, self.postings)
        }
        best = await _candidates(
            connection,
            consultation_id,
            looked_up,
            statuses,
            exclude_id,
            self.postings,
            self.candidates,
        )
        if not best:
            return []
        texts, their_terms = await _profiles(connection, best)
        weights = {term: rarity(proposals, n) for term, n in their_terms.items()}
        weights.update({term: rarity(proposals, counts.get(term, 0)) for term in query.terms})
        ours = _vectors(query, weights)
        scored = []
        for proposal_id, (their_text, their_locale, status) in texts.items():
            theirs = _vectors(Profile.of(their_text, their_locale), weights)
            value = _blend(ours, theirs, self.word_weight)
            if value >= self.threshold:
                scored.append(Similar(proposal_id, their_text, status, round(value, 4)))
        scored.sort(key=lambda s: (-s.score, s.proposal_id))
        return scored[:limit]


async def _counts(
    connection: AsyncConnection, consultation_id: int, wanted: Collection[str]
) -> dict[str, int]:
    found = await connection.execute(
        select(_COUNTS.c.term, _COUNTS.c.proposals).where(
            _COUNTS.c.consultation_id == consultation_id,
            _COUNTS.c.term.in_(sorted(wanted)),
            _COUNTS.c.proposals > 0,
        )
    )
    return {term: n for term, n in found}


async def _candidates(
    connection: AsyncConnection,
    consultation_id: int,
    looked_up: Mapping[str, float],
    statuses: tuple[str, ...],
    exclude_id: int | None,
    postings: int,
    candidates: int,
) -> list[int]:
    """The `candidates` proposals sharing the most weight of the `looked_up` terms, read from
    at most `postings` index rows; summed by the database, which returns only the winners."""
    rows = (
        select(_TERMS.c.proposal_id, _TERMS.c.term)
        .where(
            _TERMS.c.consultation_id == consultation_id,
            _TERMS.c.term.in_(sorted(looked_up)),
            _TERMS.c.status.in_(statuses),
        )
        .limit(postings)
    )
    if exclude_id is not None:
        rows = rows.where(_TERMS.c.proposal_id != exclude_id)
    found = rows.subquery()
    weight = func.sum(case(dict(looked_up), value=found.c.term, else_=0.0))
    best = (
        select(found.c.proposal_id)
        .group_by(found.c.proposal_id)
        .order_by(weight.desc(), found.c.proposal_id)
        .limit(candidates)
    )
    return list((await connection.execute(best)).scalars())


async def _profiles(
    connection: AsyncConnection, proposal_ids: list[int]
) -> tuple[dict[int, tuple[str, str, str]], dict[str, int]]:
    """The candidates' texts, locales and statuses; and the counts of all their terms."""
    rows = await connection.execute(
        select(_PROPOSALS.c.id, _PROPOSALS.c.text, _PROPOSALS.c.locale, _PROPOSALS.c.status).where(
            _PROPOSALS.c.id.in_(proposal_ids)
        )
    )
    texts = {proposal_id: (text, locale, status) for proposal_id, text, locale, status in rows}
    counted = await connection.execute(
        select(_TERMS.c.term, _COUNTS.c.proposals)
        .join(
            _COUNTS,
            (_COUNTS.c.consultation_id == _TERMS.c.consultation_id)
            & (_COUNTS.c.term == _TERMS.c.term),
        )
        .where(_TERMS.c.proposal_id.in_(proposal_ids))
        .distinct()
    )
    return texts, {term: n for term, n in counted}


DEFAULT = TermSimilarity()


async def similar_proposals(
    session: AsyncSession,
    consultation_id: int,
    text: str,
    locale: str,
    *,
    statuses: tuple[str, ...] = ("accepted",),
    limit: int = 3,
    exclude_id: int | None = None,
    similarity: Similarity = DEFAULT,
) -> list[Similar]:
    """Up to `limit` of the consultation's proposals in `statuses` that say nearly the same as
    `text` (written in `locale`), best first; `exclude_id` leaves one out (the proposal being
    moderated). Reads the database only; an operator's `similarity` replaces the default."""
    return await similarity.similar(
        session,
        consultation_id,
        text,
        locale,
        statuses=statuses,
        limit=limit,
        exclude_id=exclude_id,
    )


__all__ = [
    "ALL",
    "DEFAULT",
    "THRESHOLD",
    "Profile",
    "Similar",
    "Similarity",
    "TermSimilarity",
    "score",
    "similar_proposals",
]

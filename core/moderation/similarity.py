"""Proposals that say nearly the same as a text: for the participant before they send theirs,
and for the moderator deciding it.

One interface (`Similarity`), so that an operator can plug in an embedding model they host;
the default (`TermSimilarity`) is offline and needs nothing but the database:

1. An inverted index of each proposal's stemmed content words (`ProposalTerm`) and how many
   proposals of the consultation have each (`TermCount`), kept by the ORM's flush whenever a
   proposal is written (`core.models`), so it is never behind the proposals.
2. A lookup reads the counts of the text's terms, then the proposals sharing its rarest terms
   (at most `postings` index rows: a bounded read whatever the consultation's size), keeps the
   `candidates` sharing the most weight, and scores those alone.
3. The score blends the cosine of the two texts' terms weighted by their rarity (IDF), so that
   words every proposal uses weigh nothing, with the cosine of their words' character trigrams,
   which a stemmer's misses and typos still share.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, bindparam, inspect, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Proposal
from core.moderation.text import terms, trigrams

# Chosen on tests/data/similarity_pairs.csv (`consult bench similarity` reports its precision
# and recall): the score above which two proposals say nearly the same.
THRESHOLD = 0.42
WORD_WEIGHT = 0.6
ALL = ""  # TermCount's row counting the consultation's proposals

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


# Keeping the index: called from the ORM's flush (core.models), on its connection.


def _count_upsert(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(_COUNTS).values(
        consultation_id=bindparam("c"), term=bindparam("t"), proposals=1
    )
    return statement.on_conflict_do_update(
        index_elements=[_COUNTS.c.consultation_id, _COUNTS.c.term],
        set_={"proposals": _COUNTS.c.proposals + 1},
    )


_ADD_TERMS = _TERMS.insert().values(
    consultation_id=bindparam("c"), term=bindparam("t"), proposal_id=bindparam("p")
)
_UPSERTS = {name: _count_upsert(name) for name in ("postgresql", "sqlite")}


def _add_terms(
    connection: Connection,
    consultation_id: int,
    proposal_id: int,
    added: Iterable[str],
    *,
    new: bool,
) -> None:
    rows = [{"c": consultation_id, "t": term, "p": proposal_id} for term in sorted(added)]
    if rows:
        connection.execute(_ADD_TERMS, rows)
    # Sorted: concurrent writers lock the counts' rows in one order (no deadlock on PostgreSQL).
    counted = [{"c": consultation_id, "t": ALL}, *rows] if new else rows
    if counted:
        connection.execute(_UPSERTS[connection.dialect.name], counted)


def index_proposal(connection: Connection, proposal: Proposal) -> None:
    """Index a proposal just inserted: its terms, and one more proposal in the counts."""
    assert proposal.id is not None
    found = terms(proposal.text, proposal.locale)
    _add_terms(connection, proposal.consultation_id, proposal.id, found, new=True)


def reindex_if_edited(connection: Connection, proposal: Proposal) -> None:
    """After an update: if the text changed (an edit at acceptance, a seed rewritten), the
    index drops the words it lost and gains the new ones."""
    if not inspect(proposal).attrs.text.history.has_changes():
        return
    assert proposal.id is not None
    old = set(
        connection.execute(
            select(_TERMS.c.term).where(_TERMS.c.proposal_id == proposal.id)
        ).scalars()
    )
    new = terms(proposal.text, proposal.locale)
    lost = sorted(old - new)
    if lost:
        connection.execute(
            _TERMS.delete().where(_TERMS.c.proposal_id == proposal.id, _TERMS.c.term.in_(lost))
        )
        connection.execute(
            update(_COUNTS)
            .where(
                _COUNTS.c.consultation_id == proposal.consultation_id,
                _COUNTS.c.term.in_(lost),
            )
            .values(proposals=_COUNTS.c.proposals - 1)
        )
    _add_terms(connection, proposal.consultation_id, proposal.id, new - old, new=False)


# Scoring: pure.


def rarity(proposals: int, having: int) -> float:
    """Inverse document frequency, smoothed (a term no proposal has yet counts as in one)."""
    return math.log(1 + proposals / max(having, 1))


def _cosine(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    dot = sum(weight * b.get(key, 0.0) for key, weight in a.items())
    norms = math.sqrt(sum(w * w for w in a.values()) * sum(w * w for w in b.values()))
    return dot / norms if norms else 0.0


@dataclass(frozen=True)
class Profile:
    """What the score compares of a text."""

    terms: frozenset[str]
    grams: Counter[str]

    @classmethod
    def of(cls, text: str, locale: str) -> Profile:
        return cls(terms(text, locale), trigrams(text, locale))


def score(
    a: Profile, b: Profile, weights: Mapping[str, float], word_weight: float = WORD_WEIGHT
) -> float:
    """How nearly `a` and `b` say the same, in [0, 1]: the terms' cosine weighted by
    `weights` (a term's rarity; 1 when missing), blended with the trigrams' cosine."""
    words = _cosine(
        {term: weights.get(term, 1.0) for term in a.terms},
        {term: weights.get(term, 1.0) for term in b.terms},
    )
    grams = _cosine(
        {gram: float(n) for gram, n in a.grams.items()},
        {gram: float(n) for gram, n in b.grams.items()},
    )
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
    postings: int = 2000
    candidates: int = 40

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
        counts = await _counts(session, consultation_id, query.terms | {ALL})
        proposals = counts.pop(ALL, 0)
        if proposals == 0 or not counts:
            return []
        looked_up = rarest(counts, self.postings)
        found = await _candidates(
            session, consultation_id, looked_up, statuses, exclude_id, self.postings
        )
        shared: dict[int, float] = {}
        for proposal_id, term in found:
            shared[proposal_id] = shared.get(proposal_id, 0.0) + rarity(proposals, counts[term])
        best = heapq.nlargest(self.candidates, shared, key=shared.__getitem__)
        if not best:
            return []
        texts, their_terms = await _profiles(session, best)
        weights = {term: rarity(proposals, n) for term, n in their_terms.items()}
        weights.update({term: rarity(proposals, counts.get(term, 0)) for term in query.terms})
        scored = []
        for proposal_id, (their_text, their_locale, status) in texts.items():
            value = score(query, Profile.of(their_text, their_locale), weights, self.word_weight)
            if value >= self.threshold:
                scored.append(Similar(proposal_id, their_text, status, round(value, 4)))
        scored.sort(key=lambda s: (-s.score, s.proposal_id))
        return scored[:limit]


async def _counts(
    session: AsyncSession, consultation_id: int, wanted: Collection[str]
) -> dict[str, int]:
    found = await session.execute(
        select(_COUNTS.c.term, _COUNTS.c.proposals).where(
            _COUNTS.c.consultation_id == consultation_id,
            _COUNTS.c.term.in_(sorted(wanted)),
            _COUNTS.c.proposals > 0,
        )
    )
    return {term: n for term, n in found.tuples()}


async def _candidates(
    session: AsyncSession,
    consultation_id: int,
    looked_up: list[str],
    statuses: tuple[str, ...],
    exclude_id: int | None,
    cap: int,
) -> list[tuple[int, str]]:
    query = (
        select(_TERMS.c.proposal_id, _TERMS.c.term)
        .join(_PROPOSALS, _PROPOSALS.c.id == _TERMS.c.proposal_id)
        .where(
            _TERMS.c.consultation_id == consultation_id,
            _TERMS.c.term.in_(looked_up),
            _PROPOSALS.c.status.in_(statuses),
        )
        .limit(cap)
    )
    if exclude_id is not None:
        query = query.where(_TERMS.c.proposal_id != exclude_id)
    return list((await session.execute(query)).tuples())


async def _profiles(
    session: AsyncSession, proposal_ids: list[int]
) -> tuple[dict[int, tuple[str, str, str]], dict[str, int]]:
    """The candidates' texts, locales and statuses; and the counts of all their terms."""
    rows = await session.execute(
        select(_PROPOSALS.c.id, _PROPOSALS.c.text, _PROPOSALS.c.locale, _PROPOSALS.c.status).where(
            _PROPOSALS.c.id.in_(proposal_ids)
        )
    )
    texts = {proposal_id: (text, locale, status) for proposal_id, text, locale, status in rows}
    counted = await session.execute(
        select(_TERMS.c.term, _COUNTS.c.proposals)
        .join(
            _COUNTS,
            (_COUNTS.c.consultation_id == _TERMS.c.consultation_id)
            & (_COUNTS.c.term == _TERMS.c.term),
        )
        .where(_TERMS.c.proposal_id.in_(proposal_ids))
        .distinct()
    )
    return texts, {term: n for term, n in counted.tuples()}


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
    "DEFAULT",
    "THRESHOLD",
    "Profile",
    "Similar",
    "Similarity",
    "TermSimilarity",
    "index_proposal",
    "reindex_if_edited",
    "score",
    "similar_proposals",
]

"""The hard rules every sequence keeps, whatever the algorithm, and what algorithms work on.

An algorithm sees a pool of `Candidate`s that are already eligible for this participant (accepted,
in their language, not voted on, not their own, not shown in this sequence) and offers them to a
`SequenceBuilder` in its order of preference; the builder admits a card only if the sequence has
no card by the same author and no near-duplicate of it yet.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

_PUNCTUATION = re.compile(r"[\W_]+", re.UNICODE)
SHINGLE = 4  # characters: works for scripts written without spaces, too
NEAR_DUPLICATE = 0.5  # Jaccard similarity of shingle sets


def shingles(text: str) -> frozenset[str]:
    """Character shingles of `text` normalised (case, accents, punctuation, spaces)."""
    folded = text.casefold()
    if folded.isascii():  # nothing to decompose: NFKD leaves ASCII as it is
        bare = folded
    else:
        decomposed = unicodedata.normalize("NFKD", folded)
        bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    words = _PUNCTUATION.sub(" ", bare).split()
    squeezed = " ".join(words)
    if len(squeezed) <= SHINGLE:
        return frozenset({squeezed})
    return frozenset(squeezed[i : i + SHINGLE] for i in range(len(squeezed) - SHINGLE + 1))


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


@dataclass
class Candidate:
    """An eligible proposal with its sequence-vote counters (by vote and qualification key).

    `created` is a timestamp in seconds; `prefix` is the consultation's prefix for its locale,
    ignored when comparing texts (every proposal starts with it). Not frozen: a selection makes
    hundreds of them, and a frozen dataclass sets each field through `object.__setattr__`,
    which made their construction cost as much as the algorithm.
    """

    id: int
    author_id: int | None
    created: float
    text: str
    counts: Mapping[str, int] = field(default_factory=dict)
    prefix: str = ""

    @property
    def votes(self) -> int:
        return (
            self.counts.get("agree", 0)
            + self.counts.get("disagree", 0)
            + self.counts.get("neutral", 0)
        )

    def count(self, key: str) -> int:
        return self.counts.get(key, 0)

    @cached_property
    def shingles(self) -> frozenset[str]:
        body = self.text
        if self.prefix and body.casefold().startswith(self.prefix.casefold()):
            body = body[len(self.prefix) :]
        return shingles(body)


class SequenceBuilder:
    """Collects up to `size` cards: one per author, no two near-duplicates.

    `shown` are the cards already in this sequence (they count for both rules).
    """

    def __init__(self, size: int, shown: Iterable[Candidate] = ()) -> None:
        self.size = size
        self.cards: list[Candidate] = []
        self._ids: set[int] = set()
        self._authors: set[int] = set()
        self._texts: list[frozenset[str]] = []
        for card in shown:
            self._remember(card)

    @property
    def full(self) -> bool:
        return len(self.cards) >= self.size

    def admits(self, candidate: Candidate) -> bool:
        if candidate.id in self._ids:
            return False
        if candidate.author_id is not None and candidate.author_id in self._authors:
            return False
        return all(similarity(candidate.shingles, t) < NEAR_DUPLICATE for t in self._texts)

    def offer(self, candidate: Candidate) -> bool:
        """Add `candidate` if the rules allow it and there is room; returns whether it was."""
        if self.full or not self.admits(candidate):
            return False
        self.cards.append(candidate)
        self._remember(candidate)
        return True

    def offer_all(self, candidates: Iterable[Candidate]) -> None:
        for candidate in candidates:
            if self.full:
                return
            self.offer(candidate)

    def _remember(self, card: Candidate) -> None:
        self._ids.add(card.id)
        if card.author_id is not None:
            self._authors.add(card.author_id)
        self._texts.append(card.shingles)

"""The hard rules every sequence keeps, whatever the algorithm, and what algorithms work on.

An algorithm sees a pool of `Candidate`s that are already eligible for this participant (accepted,
in their language, not voted on, not their own, not shown in this sequence) and offers them to a
`SequenceBuilder` in its order of preference; the builder admits a card only if the sequence has
no card by the same author and no near-duplicate of it yet.

A candidate's text may be left unread (None): reading hundreds of texts for the dozen an
algorithm compares cost more than the rest of a selection. The builder then admits it on trust
and keeps the checks it trusted; once the texts are read, `confirmed` says whether every one of
them holds, i.e. whether the sequence is the one the texts would have given (`choose_cards`
otherwise chooses again with the texts known).
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
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

    `created` is a timestamp in seconds; `text` is None while it has not been read; `prefix` is
    the consultation's prefix for its locale, ignored when comparing texts (every proposal
    starts with it). Not frozen: a selection makes hundreds of them, and a frozen dataclass
    sets each field through `object.__setattr__`, which made their construction cost as much
    as the algorithm; and a text is filled in once read.
    """

    id: int
    author_id: int | None
    created: float
    text: str | None
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
        """Raises ValueError while the text is unread."""
        body = self.text
        if body is None:
            raise ValueError(f"the text of proposal {self.id} is not read yet")
        if self.prefix and body.casefold().startswith(self.prefix.casefold()):
            body = body[len(self.prefix) :]
        return shingles(body)


class SequenceBuilder:
    """Collects up to `size` cards: one per author, no two near-duplicates.

    `shown` are the cards already in this sequence (they count for both rules). A candidate
    whose text, or the text of a card it is compared with, is unread passes the
    near-duplicate rule on trust (see the module's docstring).
    """

    def __init__(self, size: int, shown: Iterable[Candidate] = ()) -> None:
        self.size = size
        self.cards: list[Candidate] = []
        self._ids: set[int] = set()
        self._authors: set[int] = set()
        self._sequence: list[Candidate] = []  # shown, then cards
        self._unread_in_sequence = False
        # Near-duplicate checks passed on trust: the candidate and how many of the sequence's
        # cards it was compared with.
        self._trusted: list[tuple[Candidate, int]] = []
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
        if candidate.text is None:
            self._trusted.append((candidate, len(self._sequence)))
            return True
        texts = candidate.shingles
        if any(
            similarity(texts, card.shingles) >= NEAR_DUPLICATE
            for card in self._sequence
            if card.text is not None
        ):
            return False
        if self._unread_in_sequence:
            self._trusted.append((candidate, len(self._sequence)))
        return True

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

    def unread(self) -> list[Candidate]:
        """The candidates whose unread text a check took on trust (each once)."""
        found = {c.id: c for c, _ in self._trusted if c.text is None}
        found.update((c.id, c) for c in self._sequence if c.text is None)
        return list(found.values())

    def confirmed(self) -> bool:
        """Whether every check taken on trust holds with the texts: call once `unread` is empty
        or its texts are filled in."""
        return all(
            similarity(candidate.shingles, card.shingles) < NEAR_DUPLICATE
            for candidate, compared in self._trusted
            for card in self._sequence[:compared]
        )

    def _remember(self, card: Candidate) -> None:
        self._ids.add(card.id)
        if card.author_id is not None:
            self._authors.add(card.author_id)
        self._sequence.append(card)
        self._unread_in_sequence = self._unread_in_sequence or card.text is None


async def choose_cards(
    algorithm: Callable[[SequenceBuilder, Sequence[Candidate], random.Random], None],
    size: int,
    shown: Sequence[Candidate],
    pool: Sequence[Candidate],
    rng: random.Random,
    read_texts: Callable[[Sequence[Candidate]], Awaitable[None]],
) -> list[Candidate]:
    """The cards `algorithm` chooses among `pool`, reading only the texts it compares.

    The pool's texts may be unread: the builder then takes its near-duplicate checks on trust,
    and `read_texts` fills in the texts of those candidates (a dozen or two of the hundreds).
    If a check fails with them, the algorithm runs again from the same random state with these
    texts known, so the cards are always those it chooses with every text at hand. The run after
    a first miss reads all the pool's texts: it runs at most three times.

    The algorithm draws from a generator of its own, seeded from `rng`: `rng` is shared with
    other turns, which draw from it while the texts are read, and rewinding it for a second run
    would hand them the same numbers again.
    """
    seed = rng.getrandbits(64)
    misses = 0
    while True:
        builder = SequenceBuilder(size, shown)
        algorithm(builder, pool, random.Random(seed))
        unread = builder.unread()
        if not unread:
            return builder.cards
        await read_texts(unread if not misses else [c for c in pool if c.text is None])
        if builder.confirmed():
            return builder.cards
        misses += 1

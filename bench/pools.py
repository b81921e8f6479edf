"""Production's bounded pool, rebuilt per selection from a simulated consultation's counters.

`core.sequencing.next_proposals_for` does not hand an algorithm every eligible proposal: it
reads the oldest ones that still need votes, the current contenders of each ranking (for the
algorithms in READS_CONTENDERS) and a run of the shuffle index from a random pivot. With a few
hundred proposals that is all of them; with thousands the bound decides what an algorithm can
see, so the benchmark's large dataset plays it. `ProductionPool` keeps the orders production's
indexes keep, updated vote by vote, so that a selection reads a few hundred entries, never
sorts the consultation.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from core.scoring import contender_scores
from core.sequencing import (
    CONSENSUS_CONTENDERS,
    CONTROVERSY_CONTENDERS,
    FRESH_BELOW,
    FRESH_LIMIT,
    READS_CONTENDERS,
    SAMPLE_LIMIT,
    Candidate,
)


@dataclass(frozen=True)
class PoolShape:
    """How many proposals of each kind one selection's pool holds: production's by default."""

    fresh_limit: int = FRESH_LIMIT
    sample_limit: int = SAMPLE_LIMIT
    consensus_contenders: int = CONSENSUS_CONTENDERS
    controversy_contenders: int = CONTROVERSY_CONTENDERS


# An index entry: what it is ordered by, ending with the proposal (its place in the
# simulation's lists). Production breaks ties by the proposal's id, which follows the order
# proposals arrived in: here, their arrival rank.
_Shuffled = tuple[float, int]  # (shuffle key, proposal)
_Fresh = tuple[float, int, int]  # (created, arrival rank, proposal)
# (-score, -votes, -arrival rank, proposal): production's order (score, vote count and id, all
# descending: core.sequencing's _CONTENDERS)
_Ranked = tuple[float, int, int, int]


def _first(
    index: Sequence[_Shuffled] | Sequence[_Fresh] | Sequence[_Ranked],
    seen: AbstractSet[int],
    limit: int,
) -> list[int]:
    """The first `limit` proposals of `index` not in `seen`."""
    window = index[: limit + len(seen)]  # enough: at most len(seen) of them are skipped
    return [entry[-1] for entry in window if entry[-1] not in seen][:limit]


class ProductionPool:
    """The arrived proposals of a simulation in the orders production reads them in.

    `candidates[p]` is proposal p, with the live counters the simulation updates; `shuffle[p]`
    its fixed key in [0, 1) in the shuffle index; the pool holds the contenders if `algorithm`
    ranks them (READS_CONTENDERS). Call `arrive` when a proposal appears and `voted` after each
    vote on it; `pool_for` then builds what `next_proposals_for` would.
    """

    def __init__(
        self,
        shape: PoolShape,
        candidates: Sequence[Candidate],
        shuffle: Sequence[float],
        algorithm: str,
    ) -> None:
        self.shape = shape
        self.contenders = algorithm in READS_CONTENDERS
        self._candidates = candidates
        self._shuffle = shuffle
        self._arrived: dict[int, int] = {}  # proposal: its arrival rank (production's id)
        self._fresh: list[_Fresh] = []  # fewer than FRESH_BELOW votes, oldest first
        self._by_shuffle: list[_Shuffled] = []  # the tested ones (FRESH_BELOW votes or more)...
        self._by_agree: list[_Ranked] = []  # ...by each contender score, highest first
        self._by_split: list[_Ranked] = []
        self._tested: set[int] = set()
        self._ranked: dict[int, tuple[_Ranked, _Ranked]] = {}  # a tested one's two entries

    def arrive(self, proposal: int) -> None:
        """`proposal` is accepted: from now on it may be in a pool."""
        candidate = self._candidates[proposal]
        self._arrived[proposal] = len(self._arrived)
        if candidate.votes < FRESH_BELOW:
            insort(self._fresh, (candidate.created, self._arrived[proposal], proposal))
        else:
            self._enter_tested(proposal)

    def voted(self, proposal: int) -> None:
        """One more vote on the arrived `proposal` (its candidate's counters already say so)."""
        if proposal in self._tested:
            if self.contenders:
                self._rank(proposal)
        elif self._candidates[proposal].votes >= FRESH_BELOW:
            candidate = self._candidates[proposal]
            entry = (candidate.created, self._arrived[proposal], proposal)
            del self._fresh[bisect_left(self._fresh, entry)]
            self._enter_tested(proposal)

    def pool_for(self, seen: AbstractSet[int], pivot: float) -> list[Candidate]:
        """The pool of one selection for a participant who voted on or was shown `seen`.

        As `next_proposals_for` builds it: the `fresh_limit` oldest eligible fresh proposals;
        with `contenders`, the eligible tested ones with the highest consensus score, then those
        with the highest controversy score (ties: most votes, then the latest arrived first); then
        `sample_limit` eligible tested ones in shuffle order from the first key >= `pivot`,
        wrapping around. A proposal in two of these is in the pool once, at its first place.
        """
        shape = self.shape
        chosen = _first(self._fresh, seen, shape.fresh_limit)
        if self.contenders:
            chosen += _first(self._by_agree, seen, shape.consensus_contenders)
            chosen += _first(self._by_split, seen, shape.controversy_contenders)
        index = self._by_shuffle
        start = bisect_left(index, (pivot,))  # (pivot,) sorts before every (pivot, id)
        wanted = shape.sample_limit + len(seen)
        run = index[start : start + wanted]
        run += index[: min(start, wanted - len(run))]  # wrapping around the index
        chosen += _first(run, seen, shape.sample_limit)
        return [self._candidates[p] for p in dict.fromkeys(chosen)]

    def _enter_tested(self, proposal: int) -> None:
        self._tested.add(proposal)
        insort(self._by_shuffle, (self._shuffle[proposal], proposal))
        if self.contenders:  # else nobody reads the rankings: no need to keep them
            self._rank(proposal)

    def _rank(self, proposal: int) -> None:
        """Moves `proposal` to its place by its current scores in the two contender rankings."""
        old = self._ranked.get(proposal)
        if old is not None:
            del self._by_agree[bisect_left(self._by_agree, old[0])]
            del self._by_split[bisect_left(self._by_split, old[1])]
        candidate = self._candidates[proposal]
        counts = candidate.counts
        votes = candidate.votes
        agree, split = contender_scores(
            counts["agree"], counts["disagree"], counts["neutral"], votes
        )
        rank = -self._arrived[proposal]
        entries = ((-agree, -votes, rank, proposal), (-split, -votes, rank, proposal))
        insort(self._by_agree, entries[0])
        insort(self._by_split, entries[1])
        self._ranked[proposal] = entries

"""How well a proposal is doing, from its counters alone (never a scan of the votes).

Sources of the formulas:

- Smoothed rates, the composite scores and the zones follow Make.org's public proposal scorer
  (`ProposalScorer` in the makeorg/platform repository): every rate is smoothed towards a small
  prior, `rate = (count + 0.33) / (votes + 1)`, so that a proposal with 2 votes out of 2 does
  not outrank one with 900 out of 1,000; the composite scores add and subtract those rates.
- The 95% interval of a rate is the normal approximation of a binomial proportion,
  `1.96 * sqrt(rate * (1 - rate) / (votes + 1))`, on the same smoothed rate; a composite score's
  interval combines the intervals of its terms in quadrature (as if the terms were independent,
  which slightly overstates the width of differences of correlated rates: a conservative error).
- Trust: votes cast in a sequence count fully; votes cast elsewhere (a shared link to a single
  proposal, an embed) count with a weight, 0.5 by default, because they are easier to brigade.
- Engagement, ours: the share of votes that took a side, `1 - neutral`, with the interval of
  the neutral rate.
- The Polis view, for comparison: the pass-adjusted agree rate `(A + 1) / (S + 2)`, where S is
  every vote seen, passes included (the estimate Polis uses in its comment priority and
  representativeness computations).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import QualificationKey, Tally, VoteKey

PRIOR = 0.33  # Make.org's smoothing prior
TESTED_FROM = 10  # votes (all of them): below it a proposal is new, not yet a contender
Z95 = 1.96
DEFAULT_OTHER_WEIGHT = 0.5


class Zone(StrEnum):
    CONSENSUS = "consensus"
    CONTROVERSY = "controversy"
    REJECTION = "rejection"
    LIMBO = "limbo"


@dataclass(frozen=True)
class ZoneThresholds:
    """Consensus if agree >= `strong`, or neutral < `limbo` and disagree < `weak`; rejection
    the same with agree and disagree swapped; limbo if neutral >= `limbo`; else controversy.
    A consultation sets its own (`settings.zones`)."""

    strong: float = 0.6
    weak: float = 0.15
    limbo: float = 0.4


@dataclass(frozen=True)
class Estimate:
    """A value and the half-width of its 95% interval."""

    value: float
    margin: float

    @property
    def low(self) -> float:
        return self.value - self.margin

    @property
    def high(self) -> float:
        return self.value + self.margin


@dataclass(frozen=True)
class ProposalCounts:
    """A proposal's counters by key: votes cast in a sequence, and the others."""

    sequence: Mapping[str, int]
    other: Mapping[str, int]

    def weighted(self, key: str, other_weight: float) -> float:
        return self.sequence.get(key, 0) + other_weight * self.other.get(key, 0)


@dataclass(frozen=True)
class Scores:
    votes: float  # effective number of votes (other votes weighted)
    rates: Mapping[str, Estimate]  # per vote key and qualification key
    top: Estimate
    controversy: Estimate
    rejection: Estimate
    realistic: Estimate
    engagement: Estimate
    zone: Zone
    polis_agree: float


def smoothed(count: float, votes: float) -> Estimate:
    """Make.org's smoothed rate `(count + 0.33) / (votes + 1)` with its 95% interval."""
    rate = (count + PRIOR) / (votes + 1)
    return Estimate(rate, Z95 * math.sqrt(max(rate * (1 - rate), 0.0) / (votes + 1)))


def contender_scores(agree: int, disagree: int, neutral: int, votes: int) -> tuple[float, float]:
    """What sequencing ranks the current contenders by: the smoothed agree rate (the consensus
    ranking) and the smaller of the smoothed agree and disagree rates (the controversy ranking),
    from a proposal's sequence-vote counts; both 0 while it has fewer than TESTED_FROM `votes`
    in all (it is new: sequencing finds it otherwise), so that new proposals, whose few votes
    can make any rate, rank below every contender. Stored on the proposal with its counters
    (`agree_score`, `split_score`: see core.voting) so that the leaders of a consultation of any
    size are found by an index, not by reading every proposal."""
    if votes < TESTED_FROM:
        return 0.0, 0.0
    counted = agree + disagree + neutral
    rate, against = smoothed(agree, counted).value, smoothed(disagree, counted).value
    return rate, min(rate, against)


def combine(*terms: tuple[float, Estimate]) -> Estimate:
    """Sum of `sign * estimate`, intervals combined in quadrature."""
    value = sum(sign * estimate.value for sign, estimate in terms)
    margin = math.sqrt(sum(estimate.margin**2 for _, estimate in terms))
    return Estimate(value, margin)


def _smaller(a: Estimate, b: Estimate) -> Estimate:
    return a if a.value <= b.value else b


def zone_of(agree: float, disagree: float, neutral: float, limits: ZoneThresholds) -> Zone:
    if agree >= limits.strong or (neutral < limits.limbo and disagree < limits.weak):
        return Zone.CONSENSUS
    if disagree >= limits.strong or (neutral < limits.limbo and agree < limits.weak):
        return Zone.REJECTION
    if neutral >= limits.limbo:
        return Zone.LIMBO
    return Zone.CONTROVERSY


def polis_agree(agree: float, seen: float) -> float:
    """Polis' pass-adjusted agree rate (A + 1) / (S + 2), passes counted in S."""
    return (agree + 1) / (seen + 2)


def score(
    counts: ProposalCounts,
    *,
    other_weight: float = DEFAULT_OTHER_WEIGHT,
    limits: ZoneThresholds = ZoneThresholds(),
) -> Scores:
    """Every score of one proposal from its counters."""
    votes = sum(counts.weighted(key, other_weight) for key in VoteKey)
    rates = {
        key.value: smoothed(counts.weighted(key, other_weight), votes)
        for key in (*VoteKey, *QualificationKey)
    }
    agree, disagree, neutral = rates["agree"], rates["disagree"], rates["neutral"]
    like, doable, no_way, impossible = (
        rates["likeIt"],
        rates["doable"],
        rates["noWay"],
        rates["impossible"],
    )
    platitude = combine((1, rates["platitudeAgree"]), (1, rates["platitudeDisagree"]))
    top = combine(
        (1, agree), (1, like), (1, doable), (-1, no_way), (-1, impossible), (-1, platitude)
    )
    controversy = combine((1, _smaller(agree, disagree)), (1, _smaller(like, no_way)))
    rejection = combine(
        (1, disagree), (1, no_way), (1, impossible), (-1, like), (-1, doable), (-1, platitude)
    )
    return Scores(
        votes=votes,
        rates=rates,
        top=top,
        controversy=controversy,
        rejection=rejection,
        realistic=combine((1, doable), (-1, impossible)),
        engagement=Estimate(1 - neutral.value, neutral.margin),
        zone=zone_of(agree.value, disagree.value, neutral.value, limits),
        polis_agree=polis_agree(counts.weighted("agree", other_weight), votes),
    )


async def counts_of(session: AsyncSession, proposal_ids: list[int]) -> dict[int, ProposalCounts]:
    """The counters of each proposal, split by trust level."""
    sequence: dict[int, dict[str, int]] = {pid: {} for pid in proposal_ids}
    other: dict[int, dict[str, int]] = {pid: {} for pid in proposal_ids}
    if proposal_ids:
        # Columns, not Tally objects: a large consultation has hundreds of thousands of counters.
        rows = await session.exec(
            select(Tally.proposal_id, Tally.key, Tally.trusted, Tally.count).where(
                col(Tally.proposal_id).in_(proposal_ids)
            )
        )
        for proposal_id, key, trusted, count in rows:
            (sequence if trusted else other)[proposal_id][key] = count
    return {pid: ProposalCounts(sequence[pid], other[pid]) for pid in proposal_ids}

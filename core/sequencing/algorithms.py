"""The sequencing algorithms: each fills a `SequenceBuilder` from a pool of eligible candidates.

All are pure functions of the counters, the builder and a seeded RNG, so a consultation is
replayable in tests and in the benchmark.

`uniform`   uniformly random among eligible proposals: the baseline.
`polis`     Polis' comment routing: a weighted random choice by
            priority = (importance * (1 + 8 * 2^(-S/5)))^2, importance = (1 - p) * (E + 1) * a,
            p = (P + 1) / (S + 2) (pass), a = (A + 1) / (S + 2) (agree), S = votes seen.
            E, the comment's extremity in the opinion space, is 0 here (no projection yet).
`makeorg`   Make.org's exploration sequence: 30% "new" proposals (fewer than 10 sequence votes,
            oldest first), the rest "tested" ones chosen by Thompson sampling (each key's rate
            drawn from Beta(k + 0.33, n - k + 1)): per slot, the 10 best by sampled top score
            (sampled consensus zone first), and of those the one with the fewest votes; 10% of
            tested slots use the sampled controversy instead; proposals past 1,500 votes leave.
`adaptive`  ours, the default. The goal is to name the 10 most agreed-upon proposals and the 5
            most divisive with as few votes as possible, while every new proposal quickly gets a
            minimum of votes. Both are top-k identification problems (bandit "pure
            exploration"):
            1. Floor: proposals with fewer than 5 votes come first, fewest votes then oldest
               first, so that a new proposal enters the identification quickly; then a quarter
               of the remaining slots raises proposals with 5 to 9 votes to 10.
            2. Consensus, as a thresholding problem: which side of the line between the 10th
               and the 11th best is each proposal on? Each proposal's agree rate m is estimated
               as the results will estimate it (Make.org's smoothing, `core.scoring.smoothed`);
               the line t lies halfway between the 10th and 11th estimates of the pool's
               proposals with 5 votes or more. The pool holds the consultation's leaders by
               that rate (those with 10 votes or more, read by an index next to the sample),
               so t is near the consultation's line, not the sample's; a proposal on 5 to 9
               votes in the pool can move it until its next votes. The cards go to the
               proposals with the smallest index sqrt(n + 1) * (|m - t| + epsilon), n its
               votes: APT (Locatelli, Gutzeit & Carpentier, "An optimal algorithm for the
               thresholding bandit problem", ICML 2016). A proposal near the line with few
               votes is the least settled; as its votes grow it yields to the next. epsilon
               (0.02) is the precision asked: proposals within it of the line are as good as
               tied, and do not absorb every vote in a vain attempt to order them. Each index
               is multiplied by exp(0.3 z), z ~ N(0, 1) drawn per proposal and call, so that
               participants arriving at the same moment do not all get the same cards.
               LUCB (Kalyanakrishnan, Tewari, Auer & Stone, "PAC subset selection in
               stochastic multi-armed bandits", ICML 2012), which asks the weakest member of
               the top 10 and the strongest outsider, chose these cards before. Its two
               extremes are often proposals with many votes, while one with few votes whose
               estimate strayed far from the line by chance waits; APT asks that one next.
               On `consult bench sequencing`'s synthetic suite and both conversations, at 5,
               10 and 20 votes per participant, APT needed 13% fewer votes than LUCB to reach
               precision@10 >= 0.9 (geometric mean over runs), both on the seeds epsilon was
               chosen on (1-9) and on 9 others (10-18). `consult bench sequencing --seeds 18`
               with both --polis conversations, at 8201925 and at ee38c9c (the last commit with
               LUCB), replays them; its large dataset is not in these figures. (Those replays
               drew every vote from the fitted model; they now replay the voters' real votes.)
            3. One card in four goes to the controversy set, the top 5 by min(agree,
               disagree), by LUCB: the member of the current top 5 with the lowest lower bound
               and the non-member with the highest upper bound, alternately, bounds at
               m -/+ (1 + z) standard errors sqrt(m (1 - m) / (n + 1)), z ~ N(0, 1) drawn
               per proposal and call (the Thompson-sampling element, as in top-two Thompson
               sampling, Russo, COLT 2016). With APT for this set too, the benchmark's
               consensus figures were worse, and the Seattle conversation's controversy set,
               at 10 votes per participant, worse than uniform's.
            What this participant's own earlier votes say about them is NOT used: with only
            pooled counters per proposal, showing a proposal preferably to one kind of
            participant biases its pooled rate (voters are no longer a random sample of the
            population). The unbiased use is group-balanced routing (each proposal shown to
            the opinion groups in proportion to their sizes: stratified sampling), which
            needs opinion groups and per-group counters written at vote time. Its ceiling,
            with every participant's group known exactly, is the between-group share of a
            rate's variance, which `consult bench sequencing` reports per population: under a
            tenth near the top of the consensus ranking in the synthetic and both real
            populations, so at most that share of the votes the consensus set needs; more for
            the controversy set, the candidate for it once opinion groups exist.
            Cost: O(pool log pool) per call on the bounded pool of `next_proposals_for`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from itertools import islice

from core.scoring import PRIOR, ZoneThresholds, zone_of
from core.sequencing.rules import Candidate, SequenceBuilder

Algorithm = Callable[[SequenceBuilder, Sequence[Candidate], random.Random], None]


def uniform(builder: SequenceBuilder, pool: Sequence[Candidate], rng: random.Random) -> None:
    shuffled = list(pool)
    rng.shuffle(shuffled)
    builder.offer_all(shuffled)


def polis_priority(candidate: Candidate, extremity: float = 0.0) -> float:
    seen = candidate.votes
    passed = (candidate.count("neutral") + 1) / (seen + 2)
    agreed = (candidate.count("agree") + 1) / (seen + 2)
    importance = (1 - passed) * (extremity + 1) * agreed
    return (importance * (1 + 8 * 2 ** (-seen / 5))) ** 2


def polis(builder: SequenceBuilder, pool: Sequence[Candidate], rng: random.Random) -> None:
    # Weighted sampling without replacement (Efraimidis & Spirakis): key = u^(1/w), largest
    # first, compared as log(u) / w: u^(1/w) itself rounds to 0.0 for the small priorities of
    # well-measured proposals, which would then tie and come in the pool's order.
    keyed = [(math.log(1.0 - rng.random()) / polis_priority(c), c) for c in pool]
    keyed.sort(key=lambda item: item[0], reverse=True)
    builder.offer_all(c for _, c in keyed)


MAKEORG_NEW_SHARE = 0.3
MAKEORG_NEW_BELOW = 10
MAKEORG_MAX_VOTES = 1500
MAKEORG_CONTROVERSY_SHARE = 0.1
MAKEORG_SHORTLIST = 10


def _makeorg_draw(candidate: Candidate, rng: random.Random) -> tuple[float, float, bool, bool]:
    """Sampled (top score, controversy, in consensus zone, in controversy zone)."""
    n = candidate.votes

    def draw(key: str) -> float:
        k = candidate.count(key)
        return rng.betavariate(k + 0.33, max(n - k, 0) + 1)

    agree, disagree, neutral = draw("agree"), draw("disagree"), draw("neutral")
    like, doable, no_way, impossible = (
        draw("likeIt"),
        draw("doable"),
        draw("noWay"),
        draw("impossible"),
    )
    platitude = draw("platitudeAgree") + draw("platitudeDisagree")
    top = agree + like + doable - no_way - impossible - platitude
    controversy = min(agree, disagree) + min(like, no_way)
    total = agree + disagree + neutral
    # Make.org's own thresholds (the defaults), not the consultation's: this is their sequence.
    zone = zone_of(agree / total, disagree / total, neutral / total, ZoneThresholds())
    return top, controversy, zone == "consensus", zone == "controversy"


def makeorg(builder: SequenceBuilder, pool: Sequence[Candidate], rng: random.Random) -> None:
    live = [c for c in pool if c.votes < MAKEORG_MAX_VOTES]
    new = sorted((c for c in live if c.votes < MAKEORG_NEW_BELOW), key=lambda c: c.created)
    tested = [c for c in live if c.votes >= MAKEORG_NEW_BELOW]
    slots = builder.size - len(builder.cards)
    new_slots = round(slots * MAKEORG_NEW_SHARE) if tested else slots
    for candidate in new:
        if len(builder.cards) >= builder.size - slots + new_slots:
            break
        builder.offer(candidate)
    tested_slots = builder.size - len(builder.cards)
    controversial_slots = round(tested_slots * MAKEORG_CONTROVERSY_SHARE)
    draws = {c.id: _makeorg_draw(c, rng) for c in tested}
    by_top = sorted(tested, key=lambda c: (not draws[c.id][2], -draws[c.id][0]))
    by_controversy = sorted(tested, key=lambda c: (not draws[c.id][3], -draws[c.id][1]))
    for slot in range(tested_slots):
        ranking = by_controversy if slot < controversial_slots else by_top
        shortlist = list(islice((c for c in ranking if builder.admits(c)), MAKEORG_SHORTLIST))
        if not shortlist:
            break
        builder.offer(min(shortlist, key=lambda c: c.votes))
    builder.offer_all(new)  # tested ones ran out: more new ones rather than a short sequence


ADAPTIVE_FLOOR = 5  # votes every proposal gets before anything else
ADAPTIVE_SECOND_FLOOR = 10  # then raised to this in a quarter of the remaining slots
ADAPTIVE_SECOND_SHARE = 0.25
ADAPTIVE_CONSENSUS_K = 10
ADAPTIVE_CONTROVERSY_K = 5
ADAPTIVE_CONTROVERSY_EVERY = 4  # one card in 4 for the controversy set
ADAPTIVE_PRECISION = 0.02  # APT's epsilon: rates closer than this to the line are as tied
ADAPTIVE_JITTER = 0.3  # APT's index is multiplied by exp(this * z), z ~ N(0, 1)
ADAPTIVE_BETA = 1.0  # LUCB: half-width of the confidence bounds, in standard errors
ADAPTIVE_NOISE = 1.0  # LUCB: Thompson-style jitter of that width, in standard errors


def _threshold_order(
    tested: Sequence[Candidate],
    means: Sequence[float],
    votes: Sequence[int],
    k: int,
    rng: random.Random,
) -> list[Candidate]:
    """APT's sampling order for the top-`k` set (more than `k` proposals): least settled first.

    The line lies halfway between the k-th and (k+1)-th estimates; a proposal's index is
    sqrt(n + 1) * (|mean - line| + epsilon) (Locatelli, Gutzeit & Carpentier, ICML 2016),
    jittered, and the smallest comes first.
    """
    ranked = sorted(range(len(tested)), key=lambda i: -means[i])
    line = (means[ranked[k - 1]] + means[ranked[k]]) / 2
    gauss = rng.gauss
    index = {
        i: math.sqrt(votes[i] + 1)
        * (abs(means[i] - line) + ADAPTIVE_PRECISION)
        * math.exp(ADAPTIVE_JITTER * gauss(0.0, 1.0))
        for i in ranked
    }
    return [tested[i] for i in sorted(ranked, key=index.__getitem__)]


def _lucb_order(
    tested: Sequence[Candidate],
    means: Sequence[float],
    sds: Sequence[float],
    k: int,
    rng: random.Random,
) -> list[Candidate]:
    """LUCB's sampling order for the top-`k` set: weakest insider, strongest outsider, ...

    With J the empirical top k, LUCB samples the member of J with the lowest lower bound and the
    non-member with the highest upper bound (Kalyanakrishnan, Tewari, Auer & Stone, ICML 2012);
    here the whole order, alternating, so that a sequence of several cards can follow it.
    """
    ranked = sorted(range(len(tested)), key=lambda i: -means[i])
    inside, outside = ranked[:k], ranked[k:]
    gauss = rng.gauss

    def width(i: int) -> float:
        return sds[i] * (ADAPTIVE_BETA + ADAPTIVE_NOISE * gauss(0.0, 1.0))

    low = sorted(inside, key=lambda i: means[i] - width(i))
    high = sorted(outside, key=lambda i: -(means[i] + width(i)))
    order: list[Candidate] = []
    for weakest, strongest in zip(low, high, strict=False):
        order += (tested[weakest], tested[strongest])
    rest = low[len(high) :] if len(low) > len(high) else high[len(low) :]
    order += (tested[i] for i in rest)
    return order


def adaptive(builder: SequenceBuilder, pool: Sequence[Candidate], rng: random.Random) -> None:
    counted = [(c.votes, c) for c in pool]  # each count once: the pool has hundreds
    by_need = sorted(
        ((votes, c) for votes, c in counted if votes < ADAPTIVE_SECOND_FLOOR),
        key=lambda item: (item[0], item[1].created),
    )
    for votes, candidate in by_need:
        if votes >= ADAPTIVE_FLOOR:
            break
        builder.offer(candidate)
    fresh = [c for _, c in by_need]
    tested = [c for votes, c in counted if votes >= ADAPTIVE_FLOOR]
    if builder.full or len(tested) <= ADAPTIVE_CONSENSUS_K:
        builder.offer_all(fresh)
        builder.offer_all(tested)
        return
    second = [c for votes, c in counted if ADAPTIVE_FLOOR <= votes < ADAPTIVE_SECOND_FLOOR]
    second_slots = math.ceil((builder.size - len(builder.cards)) * ADAPTIVE_SECOND_SHARE)
    for candidate in second:
        if second_slots <= 0:
            break
        second_slots -= builder.offer(candidate)
    agree_means, split_means, split_sds, sizes = [], [], [], []
    for c in tested:
        counts = c.counts
        a, d = counts.get("agree", 0), counts.get("disagree", 0)
        n = a + d + counts.get("neutral", 0)
        # Estimates as the results will compute them (core.scoring.smoothed).
        mean_a, mean_d = (a + PRIOR) / (n + 1), (d + PRIOR) / (n + 1)
        smaller = min(mean_a, mean_d)
        agree_means.append(mean_a)
        split_means.append(smaller)
        sizes.append(n)
        split_sds.append(math.sqrt(smaller * (1 - smaller) / (n + 1)))
    consensus = iter(_threshold_order(tested, agree_means, sizes, ADAPTIVE_CONSENSUS_K, rng))
    controversy = iter(
        _lucb_order(
            tested, split_means, split_sds, min(ADAPTIVE_CONTROVERSY_K, len(tested) - 1), rng
        )
    )
    for turn in range(builder.size - len(builder.cards)):
        source = (
            controversy
            if turn % ADAPTIVE_CONTROVERSY_EVERY == ADAPTIVE_CONTROVERSY_EVERY - 1
            else consensus
        )
        for candidate in source:
            if builder.offer(candidate):
                break
    builder.offer_all(fresh)
    builder.offer_all(tested)


# Every algorithm gets each candidate's agree, disagree and neutral counts; these ones also read
# the qualification counters (a query more per selection, so only where they are used).
READS_QUALIFICATIONS = frozenset({"makeorg"})

# These choose from the top of rankings of the counters, so their pool holds the current
# contenders of each ranking besides the sample (see core.sequencing). `uniform` and `polis`
# draw at random among the eligible proposals (uniformly; weighted by priority): a pool
# weighted towards the leaders would make them draw a leader several times more often than
# they would among all the eligible proposals, which a uniform sample does not.
READS_CONTENDERS = frozenset({"makeorg", "adaptive"})

ALGORITHMS: dict[str, Algorithm] = {
    "uniform": uniform,
    "polis": polis,
    "makeorg": makeorg,
    "adaptive": adaptive,
}

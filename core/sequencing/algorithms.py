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
            minimum of votes. It treats both as top-k identification problems (a bandit "pure
            exploration" setting) and uses a randomised version of APT, the anytime
            parameter-free thresholding rule (Locatelli, Gutzeit & Carpentier, ICML 2016): the
            k-th and (k+1)-th best estimates define a threshold tau, and the most informative
            proposals are those whose estimate is close to tau relative to how often they were
            voted on, B = sqrt(n) * (|theta - tau| + eps), smallest first. Proposals far above or
            below the boundary, or already well measured, stop receiving votes they do not need
            (the spirit of successive elimination and LUCB). theta is a Thompson draw from the
            posterior Beta(k + 1/2, n - k + 1/2) (by its normal approximation), not the mean,
            so that participants arriving at the same moment do not all get the same cards (as
            in top-two Thompson sampling).
            A quarter of each sequence goes to proposals with fewer than 5 votes, fewest votes
            first, so that a new proposal reaches the identification pool fast.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from itertools import islice

from core.scoring import ZoneThresholds, zone_of
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
    # Weighted sampling without replacement (Efraimidis & Spirakis): key = u^(1/w), largest first.
    keyed = [(rng.random() ** (1 / polis_priority(c)), c) for c in pool]
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


ADAPTIVE_FLOOR = 5
ADAPTIVE_NEW_SHARE = 0.25
ADAPTIVE_CONSENSUS_K = 10
ADAPTIVE_CONTROVERSY_K = 5
ADAPTIVE_EPSILON = 0.05


def _apt_order(
    tested: Sequence[Candidate], draws: Sequence[float], means: Sequence[float], k: int
) -> list[Candidate]:
    """Candidates by APT priority for the top-`k` boundary, most informative first."""
    ranked = sorted(means, reverse=True)
    k = min(k, len(ranked) - 1)
    tau = (ranked[k - 1] + ranked[k]) / 2 if k >= 1 else ranked[0]
    priority = [
        math.sqrt(c.votes) * (abs(theta - tau) + ADAPTIVE_EPSILON)
        for c, theta in zip(tested, draws, strict=True)
    ]
    order = sorted(range(len(tested)), key=priority.__getitem__)
    return [tested[i] for i in order]


def adaptive(builder: SequenceBuilder, pool: Sequence[Candidate], rng: random.Random) -> None:
    fresh = sorted(
        (c for c in pool if c.votes < ADAPTIVE_FLOOR), key=lambda c: (c.votes, c.created)
    )
    tested = [c for c in pool if c.votes >= ADAPTIVE_FLOOR]
    slots = builder.size - len(builder.cards)
    fresh_slots = math.ceil(slots * ADAPTIVE_NEW_SHARE) if len(tested) > 1 else slots
    taken = 0
    for candidate in fresh:
        if taken >= fresh_slots:
            break
        taken += builder.offer(candidate)
    if len(tested) > 1:
        agree_draws, agree_means, split_draws, split_means = [], [], [], []
        gauss = rng.gauss
        for c in tested:
            counts = c.counts
            a, d = counts.get("agree", 0), counts.get("disagree", 0)
            n = a + d + counts.get("neutral", 0)
            # Posterior Beta(k + 1/2, n - k + 1/2), drawn through its normal approximation
            # (n >= ADAPTIVE_FLOOR here): three times cheaper than betavariate.
            mean_a, mean_d = (a + 0.5) / (n + 1), (d + 0.5) / (n + 1)
            theta_a = mean_a + gauss(0.0, math.sqrt(mean_a * (1 - mean_a) / (n + 2)))
            theta_d = mean_d + gauss(0.0, math.sqrt(mean_d * (1 - mean_d) / (n + 2)))
            agree_draws.append(theta_a)
            agree_means.append(mean_a)
            split_draws.append(min(theta_a, theta_d))
            split_means.append(min(mean_a, mean_d))
        consensus = iter(_apt_order(tested, agree_draws, agree_means, ADAPTIVE_CONSENSUS_K))
        controversy = iter(_apt_order(tested, split_draws, split_means, ADAPTIVE_CONTROVERSY_K))
        # Two consensus cards for one controversy card: the consensus set is twice as large.
        for turn in range(builder.size - len(builder.cards)):
            source = controversy if turn % 3 == 2 else consensus
            for candidate in source:
                if builder.offer(candidate):
                    break
    builder.offer_all(fresh)
    builder.offer_all(tested)


ALGORITHMS: dict[str, Algorithm] = {
    "uniform": uniform,
    "polis": polis,
    "makeorg": makeorg,
    "adaptive": adaptive,
}

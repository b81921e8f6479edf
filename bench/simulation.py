"""The simulated consultations of `consult bench sequencing`: participants arrive one by one
and vote on the cards an algorithm chooses, with the same votes for every algorithm.

`simulate` plays one consultation and scores what emerged against the population's truth
(`bench.populations`); `bench.sequencing` runs them over datasets, budgets and seeds.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.pools import PoolShape, ProductionPool
from bench.populations import CONSENSUS_K, CONTROVERSY_K, Population, top
from core.scoring import smoothed
from core.sequencing import ALGORITHMS, Candidate, SequenceBuilder

SEQUENCE = 12
TARGET = 0.9
CHECKPOINTS = 50


@dataclass
class Run:
    algorithm: str
    budget: int
    consensus_precision: float = 0.0
    controversy_precision: float = 0.0
    votes_to_target: int | None = None
    reached_ten: float = 0.0
    selection_ms: list[float] = field(default_factory=list)
    votes: int = 0
    counts: list[dict[str, int]] = field(default_factory=list)  # per proposal, at the end


def _estimated_sets(
    counts: Sequence[dict[str, int]], present: Sequence[int]
) -> tuple[set[int], set[int]]:
    agree, split = [], []
    for p in present:
        c = counts[p]
        n = c["agree"] + c["disagree"] + c["neutral"]
        a, d = smoothed(c["agree"], n).value, smoothed(c["disagree"], n).value
        agree.append(a)
        split.append(min(a, d))
    consensus = {present[i] for i in top(agree, CONSENSUS_K)}
    controversy = {present[i] for i in top(split, CONTROVERSY_K)}
    return consensus, controversy


_MASK = (1 << 64) - 1


def common_uniform(seed: int, person: int, proposal: int, salt: int = 0) -> float:
    """A uniform in [0, 1) fixed by (seed, person, proposal, salt): the same for every algorithm.

    Common random numbers: participant `person` votes the same way on `proposal` whichever
    algorithm showed it, so differences between algorithms are not noise of the vote draws.
    SplitMix64's finaliser (Steele, Lea & Flood, OOPSLA 2014) mixes the four integers.
    """
    x = (
        seed * 0x9E3779B97F4A7C15
        + person * 0xBF58476D1CE4E5B9
        + proposal * 0x94D049BB133111EB
        + salt * 0xD6E8FEB86659FD93
    ) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return ((x ^ (x >> 31)) & _MASK) / 2.0**64


def arrival_floor(population: Population, participants: int, budget: int) -> int:
    """Votes cast by the time the last true top-10 proposal appears.

    No algorithm can reach precision@10 = 1 before it (and 0.9 before the second-to-last): it is
    the part of "votes to target" that the arrival schedule, not the algorithm, decides.
    """
    consensus, _ = population.true_sets()
    last = max(population.arrival[p] for p in consensus)
    return math.ceil(last * participants) * budget


def simulate(
    population: Population,
    algorithm: str,
    budget: int,
    participants: int,
    seed: int,
    pool: PoolShape | None = None,
) -> Run:
    """One consultation: participants arrive one by one and each votes `budget` times.

    Fair by construction: for a seed, every algorithm faces the same participants in the same
    order (drawn from `crowd`: their opinion groups, or a replayed conversation's voters with
    their real votes), the same proposals arriving at the same moments, and the same vote of a
    participant on a proposal (`common_uniform` where the model draws it); the algorithm's own
    randomness is a separate stream; it sees only the counters, the texts, authors, arrival
    times (never the truth, nor the participant's group).

    Each selection's pool: with `pool` None, every arrived proposal the participant has not
    seen (the "whole" pool); with a shape, the bounded pool production would read
    (`bench.pools`), its pivot drawn from the algorithm's stream as `next_proposals_for` draws
    it, and the proposals' places in the shuffle index the same for every algorithm.
    """
    crowd = random.Random(seed)
    rng = random.Random(seed * 7919 + 17)  # the algorithm's stream, apart from the crowd's
    choose = ALGORITHMS[algorithm]
    size = len(population.texts)
    counts = [
        dict.fromkeys(("agree", "disagree", "neutral", "likeIt", "noWay"), 0) for _ in range(size)
    ]
    candidates = [
        Candidate(p, population.authors[p], population.arrival[p], population.texts[p], counts[p])
        for p in range(size)
    ]
    order = sorted(range(size), key=lambda p: population.arrival[p])
    voters = population.voters
    if voters:  # a replayed conversation: its voters, drawn at random
        drawn = crowd.choices(voters, k=participants)
        groups = [voter.group for voter in drawn]
    else:
        groups = crowd.choices(
            range(len(population.shares)), weights=population.shares, k=participants
        )
    agree_rates, disagree_rates = population.rates_for_draws()
    true_consensus, true_controversy = population.true_sets()
    run = Run(algorithm, budget)
    total = participants * budget
    checkpoint_every = max(1, total // CHECKPOINTS)
    reached_at: int | None = None
    arrived = 0
    bounded = None
    if pool is not None:
        places = random.Random(seed * 7919 + 29)  # the shuffle index, apart from both streams
        shuffle = [places.random() for _ in range(size)]
        bounded = ProductionPool(pool, candidates, shuffle, algorithm)
    arrived_pool: list[Candidate] = []
    for person in range(participants):
        while arrived < size and population.arrival[order[arrived]] <= person / participants:
            if bounded is not None:
                bounded.arrive(order[arrived])
            arrived += 1
        if bounded is None:
            arrived_pool = [candidates[p] for p in order[:arrived]]
        group = groups[person]
        seen: list[Candidate] = []
        seen_ids: set[int] = set()
        voted = 0
        while voted < budget:
            if bounded is None:
                remaining = [c for c in arrived_pool if c.id not in seen_ids]
            else:
                remaining = bounded.pool_for(seen_ids, rng.random())
            if not remaining:
                break
            started = time.perf_counter()
            builder = SequenceBuilder(min(SEQUENCE, budget - voted), seen[-SEQUENCE:])
            choose(builder, remaining, rng)
            run.selection_ms.append((time.perf_counter() - started) * 1000)
            if not builder.cards:  # a participant may see an author twice across sequences
                builder.offer_all(remaining)
            if not builder.cards:
                break
            for card in builder.cards:
                seen.append(card)
                seen_ids.add(card.id)
                key = drawn[person].votes.get(card.id) if voters else None
                if key is None:  # a vote the model draws
                    draw = common_uniform(seed, person, card.id)
                    agree = agree_rates[card.id][group]
                    disagree = disagree_rates[card.id][group]
                    key = (
                        "agree"
                        if draw < agree
                        else "disagree"
                        if draw < agree + disagree
                        else "neutral"
                    )
                counts[card.id][key] += 1
                if key != "neutral" and common_uniform(seed, person, card.id, 1) < 0.35:
                    counts[card.id]["likeIt" if key == "agree" else "noWay"] += 1
                if bounded is not None:
                    bounded.voted(card.id)
                voted += 1
                run.votes += 1
                if run.votes % checkpoint_every == 0:
                    present = order[:arrived]
                    consensus, _ = _estimated_sets(counts, present)
                    precision = len(consensus & true_consensus) / CONSENSUS_K
                    if precision >= TARGET and reached_at is None:
                        reached_at = run.votes
                    elif precision < TARGET:
                        reached_at = None
    consensus, controversy = _estimated_sets(counts, list(range(size)))
    run.consensus_precision = len(consensus & true_consensus) / CONSENSUS_K
    run.controversy_precision = len(controversy & true_controversy) / CONTROVERSY_K
    run.votes_to_target = reached_at if run.consensus_precision >= TARGET else None
    run.reached_ten = (
        sum(1 for c in counts if c["agree"] + c["disagree"] + c["neutral"] >= 10) / size
    )
    run.counts = counts
    return run

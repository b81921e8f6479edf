"""`consult bench sequencing`: which sequencing finds the consensus with the fewest votes.

Each algorithm plays the same simulated consultations (`bench.populations`: synthetic ones and
Polis replays) with the same votes budget per participant; what emerged is scored against the
truth of the simulated population. The small datasets hand each selection every arrived proposal;
the large one (a full run's, or --large) the bounded pool production would read (`bench.pools`).
The figures:
- precision@10 of the consensus set and precision@5 of the controversy set at the end, both
  estimated from the counters the same way for every algorithm (smoothed rates of
  `core.scoring`);
- the votes needed to reach precision@10 >= 0.9 for good (checked every 2% of the run), next
  to the votes cast when the last of the true top 10 arrived: proposals arrive while the
  participants do, so no algorithm can be sure of the whole top 10 before that point (it
  censors the comparison: an algorithm can only beat another by what lies above it);
- the share of proposals that got 10 votes; the median and p99 time of one selection.
"""

from __future__ import annotations

import asyncio
import gc
import math
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert
from sqlmodel import SQLModel

from bench.pools import PoolShape, ProductionPool
from bench.populations import CONSENSUS_K, CONTROVERSY_K, Dataset, Population, synthetic, top
from core.models import Consultation
from core.scoring import contender_scores, smoothed
from core.sequencing import (
    ALGORITHMS,
    FRESH_BELOW,
    READS_CONTENDERS,
    Candidate,
    SequenceBuilder,
    next_proposals_for,
)
from core.storage import create_engine, migrate, session_factory
from core.voting import COUNTED_KEYS

SEQUENCE = 12
WARM_UP = 5  # untimed selections before each timed series
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
    order (their groups drawn from `crowd`), the same proposals arriving at the same moments,
    and the same vote of a participant on a proposal (`common_uniform`); the algorithm's own
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
    groups = crowd.choices(range(len(population.shares)), weights=population.shares, k=participants)
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
                draw = common_uniform(seed, person, card.id)
                agree = population.agree[card.id][group]
                disagree = population.disagree[card.id][group]
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
    return run


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


SCALE_WORDS = (  # noqa: SIM905 - a sentence's worth of words reads better as one string
    "fund train open build share visit care pay help teach listen cook drive repair welcome "
    "homes nurses canteens buses libraries parks benches gardens clinics phones meals streets "
    "neighbours volunteers students families carers doctors shops halls villages towns every "
    "week weekend night morning free local public shared small rural better more elders"
).split()


_Row = tuple[int, int, float, str, dict[str, int]]


def _scale_rows(proposals: int, seed: int) -> list[_Row]:
    """Proposals with counters as 2,000,000 participants voting 12 times each would leave
    them, and texts of a proposal's usual length: (id, author, created, text, counts)."""
    rng = random.Random(seed)
    rows: list[_Row] = []
    for p in range(1, proposals + 1):
        n = rng.randint(0, 1600)
        a = rng.randint(0, n)
        d = rng.randint(0, n - a)
        counts = {
            "agree": a,
            "disagree": d,
            "neutral": n - a - d,
            "likeIt": a // 3,
            "noWay": d // 3,
        }
        text = f"We should {' '.join(rng.choices(SCALE_WORDS, k=rng.randint(6, 16)))}"
        rows.append((p, p, float(p), text, counts))
    return rows


def _votes(counts: dict[str, int]) -> int:
    return counts["agree"] + counts["disagree"] + counts["neutral"]


def _scores(counts: dict[str, int]) -> tuple[float, float]:
    """The contender scores the database keeps for these counts (core.scoring)."""
    return contender_scores(counts["agree"], counts["disagree"], counts["neutral"], _votes(counts))


HISTORY = 200  # votes of the timed participant: 16 sequences of 12, and a few more
OTHER_VOTERS = 100  # with as many votes each, so that the vote table is not theirs alone


def _histories(rows: Sequence[_Row], rng: random.Random) -> dict[int, list[int]]:
    """The proposals each participant voted on, the timed one (1) first: a quarter of its
    HISTORY among the oldest proposals that still need votes (shown first to everyone), the
    rest among the tested ones; the others' among the tested ones (their counters allow it)."""
    fresh = [row[0] for row in rows if _votes(row[4]) < FRESH_BELOW][: HISTORY // 4]
    tested = [row[0] for row in rows if _votes(row[4]) >= FRESH_BELOW]
    votes = min(HISTORY, len(tested))  # a small test pool: as many as there are
    histories = {1: fresh + rng.sample(tested, max(0, votes - len(fresh)))}
    for person in range(2, OTHER_VOTERS + 2):
        histories[person] = rng.sample(tested, votes)
    return histories


async def database_timing(
    algorithms: Sequence[str], rows: Sequence[_Row], seed: int, calls: int
) -> dict[str, tuple[float, float]]:
    """Median and p99 ms of `core.sequencing.next_proposals_for` itself, database reads
    included, on an SQLite file holding `rows` as accepted proposals with their counters (as
    `core.voting` keeps them) and a participant who already voted HISTORY times.

    The history is what makes the exclusion of voted proposals cost what it costs in a real
    consultation: it holds the oldest proposals that still need votes (every algorithm shows
    those first, so a returning participant voted on them) and tested ones spread over the
    shuffle index; other participants' votes sit in the same table and indexes.
    """
    tables = SQLModel.metadata.tables
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="consult-bench-") as scratch:
        engine = create_engine(f"sqlite:///{Path(scratch) / 'scale.sqlite3'}")
        await migrate(engine)
        consultation = Consultation(
            id=1,
            slug="scale",
            status="open",
            default_locale="en",
            locales=["en"],
            question={"en": "How can we better care for our elders?"},
            created_at=now,
            updated_at=now,
        )
        shuffle = random.Random(seed)
        async with engine.begin() as connection:
            await connection.execute(
                insert(tables["consultation"]).values(consultation.model_dump())
            )
            await connection.execute(
                insert(tables["participant"]),
                [
                    {"id": person, "step": "card", "state": {}, "created_at": now}
                    for person in range(1, OTHER_VOTERS + 2)
                ],
            )
            await connection.execute(
                insert(tables["proposal"]),
                [
                    {
                        "id": pid,
                        "consultation_id": 1,
                        "ref": f"s{pid}",
                        "locale": "en",
                        "text": text,
                        "status": "accepted",
                        "vote_count": _votes(counts),
                        "agree_count": counts["agree"],
                        "disagree_count": counts["disagree"],
                        "neutral_count": counts["neutral"],
                        **dict(zip(("agree_score", "split_score"), _scores(counts), strict=True)),
                        "shuffle": shuffle.random(),
                        "created_at": datetime.fromtimestamp(created, UTC),
                        "updated_at": now,
                    }
                    for pid, _, created, text, counts in rows
                ],
            )
            await connection.execute(
                insert(tables["tally"]),
                [
                    {"proposal_id": row[0], "key": key, "trusted": trusted, "count": count}
                    for row in rows
                    for key in COUNTED_KEYS
                    for trusted, count in ((True, row[4].get(key, 0)), (False, 0))
                ],
            )
            await connection.execute(
                insert(tables["vote"]),
                [
                    {
                        "participant_id": person,
                        "proposal_id": pid,
                        "key": "agree",
                        "trusted": True,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for person, history in _histories(rows, shuffle).items()
                    for pid in history
                ],
            )
        sessions = session_factory(engine)
        rng = random.Random(seed)
        timings: dict[str, tuple[float, float]] = {}
        gc.collect()  # as in scale_timing: the benchmark's own rows are not the selection's
        gc.freeze()
        for algorithm in algorithms:
            settings = {"sequencing": algorithm, "sequence_size": SEQUENCE}
            current = consultation.model_copy(update={"settings": settings})
            times = []
            for call in range(WARM_UP + calls):  # the first calls read the file into memory
                async with sessions() as session, session.begin():
                    started = time.perf_counter()
                    await next_proposals_for(session, 1, current, "en", SEQUENCE, rng=rng)
                    if call >= WARM_UP:
                        times.append((time.perf_counter() - started) * 1000)
            timings[algorithm] = _quantiles(times)
        gc.unfreeze()
        await engine.dispose()
    return timings


def _quantiles(times: Sequence[float]) -> tuple[float, float]:
    return statistics.median(times), percentile(times, 0.99)


def scale_timing(
    algorithm: str, rows: Sequence[_Row], seed: int, calls: int
) -> tuple[float, float]:
    """Median and p99 ms of one selection of 12 cards by the algorithm alone.

    As in `core.sequencing.next_proposals_for`, the algorithm sees a bounded pool: the oldest
    proposals with fewer than FRESH_BELOW votes, the contenders of each ranking if it reads
    them, and a sample of the others from a random point of the shuffle index (emulated here by
    a random sample), in production's `PoolShape`, as new `Candidate`s each call, so the hard
    rules' text comparisons are paid for as they are in a sequence. `database_timing` adds the
    reads.
    """
    rng = random.Random(seed)
    shape = PoolShape()  # production's
    tested = [row for row in rows if _votes(row[4]) >= FRESH_BELOW]
    first = [row for row in rows if _votes(row[4]) < FRESH_BELOW][: shape.fresh_limit]
    if algorithm in READS_CONTENDERS:
        scored = [(_scores(row[4]), row) for row in tested]
        contenders = (shape.consensus_contenders, shape.controversy_contenders)
        for which, limit in enumerate(contenders):  # in the score index's order
            ranked = sorted(scored, key=lambda s: (s[0][which], _votes(s[1][4]), s[1][0]))
            first += [r for _, r in ranked[::-1][:limit]]
    # The rows stand for the database: a full collection of them (50 ms with 30,000) is the
    # benchmark's own garbage, not the selection's, and must not land in a timed call.
    gc.collect()
    gc.freeze()
    times = []
    for call in range(WARM_UP + calls):
        drawn = rng.sample(tested, min(shape.sample_limit, len(tested)))
        sample = list({row[0]: row for row in [*first, *drawn]}.values())
        started = time.perf_counter()
        pool = [Candidate(*row, prefix="We should") for row in sample]
        ALGORITHMS[algorithm](SequenceBuilder(SEQUENCE), pool, rng)
        if call >= WARM_UP:
            times.append((time.perf_counter() - started) * 1000)
    gc.unfreeze()
    return _quantiles(times)


@dataclass(frozen=True)
class LargeDataset:
    """A synthetic consultation large enough that production's bounded pool binds: each
    selection sees a few hundred of its proposals, built as `next_proposals_for` builds it."""

    proposals: int = 2000
    participants: int = 20_000
    seeds: tuple[int, ...] = (1, 2, 3)  # a consultation: from 25 s (uniform) to 9 min (makeorg)
    pool: PoolShape = field(default_factory=PoolShape)


LARGE = "synthetic-large"  # its name in the report


@dataclass(frozen=True)
class Plan:
    """How much to simulate: `--quick` stays under a minute on a 2-core machine."""

    participants: int
    proposals: int
    seeds: tuple[int, ...]
    budgets: tuple[int, ...] = (5, 10, 20)
    scale_proposals: int = 30_000
    scale_calls: int = 200
    large: LargeDataset | None = None  # None: left out


QUICK = Plan(participants=600, proposals=120, seeds=(1, 2, 3), scale_calls=50)
# Whether P@10 stays >= 0.9 swings a lot from one simulated crowd to the next when true rates
# nearly tie (as in both real conversations): 9 seeds, quartiles next to the medians.
FULL = Plan(participants=2000, proposals=240, seeds=tuple(range(1, 10)), large=LargeDataset())

_Task = tuple[Population, str, int, int, int, PoolShape | None]


def _play(task: _Task) -> Run:
    return simulate(*task)


def _played(tasks: Sequence[_Task], jobs: int) -> list[Run]:
    """The runs of `tasks`, in their order; the longest started first, so that no process is
    left alone with a large consultation at the end."""
    longest = sorted(range(len(tasks)), key=lambda i: -tasks[i][2] * tasks[i][3])
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            runs = list(pool.map(_play, [tasks[i] for i in longest]))
    else:
        runs = [_play(tasks[i]) for i in longest]
    played = dict(zip(longest, runs, strict=True))
    return [played[i] for i in range(len(tasks))]


def _describe_pool(pool: PoolShape | None) -> dict[str, object]:
    if pool is None:
        return {"mode": "whole"}
    return {
        "mode": "production",
        **asdict(pool),
        "note": "sample_limit (--sample-limit) changes the simulated pool only; selection_at_scale"
        f" times production's next_proposals_for, sample of {PoolShape().sample_limit}",
    }


def _quartiles(values: Sequence[int | None]) -> tuple[int | None, int | None, int | None]:
    """Lower quartile, median and upper quartile, "never" (None) ranking after any number.

    Values of the list, not interpolated (a mean of a number and "never" means nothing): with
    an even count, the median is the upper of the two middle values.
    """
    ranked = sorted(values, key=lambda v: math.inf if v is None else v)
    count = len(ranked)
    return ranked[(count - 1) // 4], ranked[count // 2], ranked[min(count - 1, 3 * count // 4)]


def run_suite(
    datasets: Sequence[Dataset], plan: Plan, algorithms: Sequence[str], jobs: int = 1
) -> dict[str, object]:
    """Every algorithm on every dataset and budget, once per seed; medians over seeds.

    A dataset makes its population for a seed (a synthetic one is drawn anew; a fitted real
    one stays the same and only the simulated participants change). With `jobs` > 1 the
    consultations are played in that many processes (each is independent and seeded, so the
    figures do not depend on `jobs`; only the selection times feel the neighbours).
    The `datasets` are played with the plan's participants and seeds and the whole pool; the
    plan's large dataset, if any, with its own, and production's bounded pool.
    """
    played_as: list[tuple[str, Callable[[int], Population], int, tuple[int, ...], PoolShape | None]]
    played_as = [(name, make, plan.participants, plan.seeds, None) for name, make in datasets]
    large = plan.large
    if large is not None:
        proposals = large.proposals
        played_as.append(
            (
                LARGE,
                lambda seed: synthetic(seed, proposals),
                large.participants,
                large.seeds,
                large.pool,
            )
        )
    described: list[dict[str, object]] = []
    tasks: list[_Task] = []
    cells: list[tuple[str, int, str, list[int], slice]] = []
    for name, make, participants, seeds, pool in played_as:
        populations = {seed: make(seed) for seed in seeds}
        first = populations[seeds[0]]
        described.append(
            {
                "name": name,
                "proposals": len(first.texts),
                "participants": participants,
                "seeds": list(seeds),
                "pool": _describe_pool(pool),
                "truth": first.truth,
                "group_balance_gain": first.balance_gains(),
            }
        )
        for budget in plan.budgets:
            floors = [arrival_floor(populations[seed], participants, budget) for seed in seeds]
            for algorithm in algorithms:
                start = len(tasks)
                tasks += [
                    (populations[seed], algorithm, budget, participants, seed, pool)
                    for seed in seeds
                ]
                cells.append((name, budget, algorithm, floors, slice(start, len(tasks))))
    played = _played(tasks, jobs)
    rows: list[dict[str, object]] = []
    for name, budget, algorithm, floors, runs_of_cell in cells:
        runs = played[runs_of_cell]
        timings = [t for r in runs for t in r.selection_ms]
        reached = [r.votes_to_target for r in runs]
        low, middle, high = _quartiles(reached)
        rows.append(
            {
                "dataset": name,
                "algorithm": algorithm,
                "budget": budget,
                "consensus_precision_at_10": statistics.median(r.consensus_precision for r in runs),
                "controversy_precision_at_5": statistics.median(
                    r.controversy_precision for r in runs
                ),
                "votes_to_precision_0_9": middle,
                "votes_to_precision_0_9_quartiles": [low, high],
                "votes_to_precision_0_9_per_seed": reached,
                "seeds_reaching_0_9": sum(v is not None for v in reached),
                "votes_when_last_true_top10_arrived": statistics.median(floors),
                "votes": runs[0].votes,
                "share_with_10_votes": statistics.median(r.reached_ten for r in runs),
                "selection_ms_median": statistics.median(timings) if timings else None,
                "selection_ms_p99": percentile(timings, 0.99) if timings else None,
            }
        )
    rows_at_scale = _scale_rows(plan.scale_proposals, 7)
    with_database = asyncio.run(database_timing(algorithms, rows_at_scale, 7, plan.scale_calls))
    scale = {}
    for name in algorithms:
        alone = scale_timing(name, rows_at_scale, 7, plan.scale_calls)
        scale[name] = {
            "median_ms": alone[0],
            "p99_ms": alone[1],
            "with_database_median_ms": with_database[name][0],
            "with_database_p99_ms": with_database[name][1],
        }
    return {
        "benchmark": "sequencing",
        "algorithms": list(algorithms),
        "budgets": list(plan.budgets),
        "seeds": list(plan.seeds),
        "participants": plan.participants,
        "jobs": jobs,
        "datasets": described,
        "large_dataset": "included"
        if large
        else f"left out: --quick runs {LARGE} only with --large",
        "results": rows,
        "goal": goal(rows),
        "selection_at_scale": {"proposals": plan.scale_proposals, "by_algorithm": scale},
    }


GOAL_REDUCTION = 0.3  # adaptive needs at least 30% fewer votes than makeorg to reach P@10 >= 0.9
QUALITY = (  # (metric, True when higher is better): what adaptive may never do worse than uniform
    ("consensus_precision_at_10", True),
    ("controversy_precision_at_5", True),
    ("votes_to_precision_0_9", False),
    ("share_with_10_votes", True),
)


def _worse(ours: object, theirs: object, higher_is_better: bool) -> bool:
    if higher_is_better:
        assert isinstance(ours, float | int) and isinstance(theirs, float | int)
        return ours < theirs
    if ours is None:  # never reached
        return theirs is not None
    return theirs is not None and ours > theirs  # type: ignore[operator]


def goal(rows: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    """Per dataset and budget: adaptive against makeorg (votes to P@10 >= 0.9) and uniform.

    `reduction` is 1 - adaptive / makeorg on the medians; None when either never reached it
    (adaptive alone reaching it counts as meeting the goal). Selection times are not compared
    with uniform's (doing nothing is always fastest): the budget for them is 5 ms at scale.
    """
    by = {(r["dataset"], r["budget"], r["algorithm"]): r for r in rows}
    verdicts: list[dict[str, object]] = []
    for (dataset, budget, algorithm), ours in by.items():
        makeorg, uniform = (
            by.get((dataset, budget, "makeorg")),
            by.get((dataset, budget, "uniform")),
        )
        if algorithm != "adaptive" or makeorg is None or uniform is None:
            continue
        mine, theirs = ours["votes_to_precision_0_9"], makeorg["votes_to_precision_0_9"]
        reduction = None
        if isinstance(mine, int) and isinstance(theirs, int):
            reduction = 1 - mine / theirs
        met = mine is not None and (theirs is None or (reduction or 0) >= GOAL_REDUCTION)
        worse = [
            metric for metric, higher in QUALITY if _worse(ours[metric], uniform[metric], higher)
        ]
        verdicts.append(
            {
                "dataset": dataset,
                "budget": budget,
                "adaptive_votes": mine,
                "makeorg_votes": theirs,
                "reduction": reduction,
                "fewer_votes_goal_met": met,
                "worse_than_uniform_on": worse,
            }
        )
    return verdicts


def _fmt(value: object) -> str:
    if value is None:
        return "never"
    if isinstance(value, list):
        return "-".join(_fmt(v) for v in value)
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _describe_dataset(dataset: dict[str, object]) -> str:
    pool = dataset["pool"]
    seeds = dataset["seeds"]
    assert isinstance(pool, dict) and isinstance(seeds, list)
    said = (
        f"{dataset['name']}: {dataset['proposals']:,} proposals, "
        f"{dataset['participants']:,} participants, {len(seeds)} seed{'s' * (len(seeds) != 1)}, "
    )
    if pool["mode"] == "whole":
        return said + "the whole pool (every arrived proposal the participant has not seen)"
    return said + (
        f"production's pool: the {pool['fresh_limit']} oldest with fewer than {FRESH_BELOW} "
        f"votes, the {pool['consensus_contenders']} + {pool['controversy_contenders']} "
        f"contenders (for {', '.join(sorted(READS_CONTENDERS))}), a sample of "
        f"{pool['sample_limit']}\n    (--sample-limit changes this simulated sample only: the"
        f" selections at scale below run production's next_proposals_for, sample of"
        f" {PoolShape().sample_limit})"
    )


def table(report: dict[str, object]) -> str:
    """The report as a readable table."""
    columns = [
        ("dataset", "dataset"),
        ("algorithm", "algorithm"),
        ("budget", "votes/person"),
        ("consensus_precision_at_10", "P@10 consensus"),
        ("controversy_precision_at_5", "P@5 controversy"),
        ("votes_to_precision_0_9", "votes to P@10>=0.9"),
        ("votes_to_precision_0_9_quartiles", "(quartiles)"),
        ("seeds_reaching_0_9", "seeds reaching it"),
        ("votes_when_last_true_top10_arrived", "(last top-10 arrived)"),
        ("share_with_10_votes", "share >=10 votes"),
        ("selection_ms_median", "select ms (median)"),
        ("selection_ms_p99", "select ms (p99)"),
    ]
    rows = report["results"]
    assert isinstance(rows, list)
    cells = [[title for _, title in columns]]
    cells += [[_fmt(row[key]) for key, _ in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(
        f"(select ms: timed while {report['jobs']} simulations ran at once, see --jobs;"
        " the selections at scale below are timed alone)"
    )
    verdicts = report["goal"]
    assert isinstance(verdicts, list)
    if verdicts:
        lines.append("")
        lines.append(
            f"Goal (medians over each dataset's seeds, below): adaptive needs {GOAL_REDUCTION:.0%}"
            " fewer votes than makeorg to reach P@10 >= 0.9, and is never worse than uniform:"
        )
    for verdict in verdicts:
        reduction = verdict["reduction"]
        fewer = (
            "-"
            if reduction is None
            else f"{reduction:.0%} fewer"
            if reduction >= 0
            else f"{-reduction:.0%} more"
        )
        worse = verdict["worse_than_uniform_on"]
        assert isinstance(worse, list)
        lines.append(
            f"  {verdict['dataset']}, {verdict['budget']} votes/person: adaptive "
            f"{_fmt(verdict['adaptive_votes'])} vs makeorg {_fmt(verdict['makeorg_votes'])} "
            f"({fewer}): {'met' if verdict['fewer_votes_goal_met'] else 'NOT met'}; "
            + ("worse than uniform on " + ", ".join(worse) if worse else "not worse than uniform")
        )
    datasets = report["datasets"]
    assert isinstance(datasets, list)
    lines.append("")
    lines.append("Datasets: the pool is what an algorithm chooses among at each selection")
    lines += [f"  {_describe_dataset(dataset)}" for dataset in datasets]
    if report["large_dataset"] != "included":
        lines.append(f"  {LARGE}: {report['large_dataset']}")
    lines.append("")
    lines.append(
        "Variance of a rate that showing proposals to opinion groups in proportion would remove"
        " (median over the 20 nearest the top):"
    )
    for dataset in datasets:
        gains = dataset["group_balance_gain"]
        lines.append(
            f"  {dataset['name']}: consensus {gains['consensus']:.1%}, "
            f"controversy {gains['controversy']:.1%}"
        )
    scale = report["selection_at_scale"]
    assert isinstance(scale, dict)
    lines.append("")
    lines.append(
        f"One selection of {SEQUENCE} cards among {scale['proposals']:,} proposals: the algorithm"
        " alone; next_proposals_for with its reads (SQLite file)"
    )
    for name, figures in scale["by_algorithm"].items():
        lines.append(
            f"  {name:9} median {figures['median_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms;"
            f" with the reads median {figures['with_database_median_ms']:.1f} ms,"
            f" p99 {figures['with_database_p99_ms']:.1f} ms"
        )
    return "\n".join(lines)


def suite(
    quick: bool,
    seeds: int | None,
    algorithms: Sequence[str],
    extra: Sequence[Dataset] = (),
    jobs: int = 1,
    large: bool = False,
    sample_limit: int | None = None,
) -> dict[str, object]:
    """The synthetic suite plus any `extra` datasets (Polis replays), in `jobs` processes.

    `seeds` replaces every dataset's seeds, the large one's too; `large` adds the large dataset
    to a quick run (a full one has it anyway); `sample_limit` replaces production's in the
    large dataset's simulated pool.
    """
    plan = QUICK if quick else FULL
    if large and plan.large is None:
        plan = replace(plan, large=LargeDataset())
    if seeds:
        numbered = tuple(range(1, seeds + 1))
        plan = replace(plan, seeds=numbered)
        if plan.large is not None:
            plan = replace(plan, large=replace(plan.large, seeds=numbered))
    if sample_limit is not None and plan.large is not None:
        pool = replace(plan.large.pool, sample_limit=sample_limit)
        plan = replace(plan, large=replace(plan.large, pool=pool))
    proposals = plan.proposals
    datasets: list[Dataset] = [("synthetic", lambda seed: synthetic(seed, proposals)), *extra]
    report = run_suite(datasets, plan, algorithms, jobs)
    if sample_limit is not None and plan.large is None:
        report["large_dataset"] = f"{report['large_dataset']} (so --sample-limit changed nothing)"
    return report

"""The sequencing benchmark's simulator and report (behaviour only, never timings)."""

from __future__ import annotations

import asyncio
import json
import math
import random
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import SQLModel, insert, select

from bench.pools import PoolShape, ProductionPool
from bench.populations import synthetic
from bench.selection_timing import WARM_UP, database_timing, scale_rows
from bench.sequencing import LargeDataset, Plan, goal, postgres_left_out, run_suite, table
from bench.simulation import simulate
from core.identity import enrol
from core.models import Consultation, Proposal, ProposalStatus
from core.scoring import contender_scores
from core.sequencing import (
    FRESH_BELOW,
    FRESH_LIMIT,
    SAMPLE_LIMIT,
    Candidate,
    next_proposals_for,
)
from tests.conftest import POSTGRES_URL, SECRET
from tests.support import record_pools, scored_proposal


def test_a_simulated_consultation_spends_exactly_the_budget() -> None:
    population = synthetic(3, proposals=30)
    run = simulate(population, "adaptive", budget=5, participants=40, seed=3)
    assert run.votes == 200
    assert 0 <= run.consensus_precision <= 1 and 0 <= run.controversy_precision <= 1
    assert len(run.selection_ms) >= 40


def test_truth_sets_have_the_announced_sizes() -> None:
    consensus, controversy = synthetic(1, proposals=40).true_sets()
    assert len(consensus) == 10 and len(controversy) == 5


def test_the_report_has_every_algorithm_budget_and_figure() -> None:
    plan = Plan(20, 25, (1, 2), (5,), scale_proposals=200, scale_calls=2)
    report = run_suite([("synthetic", lambda s: synthetic(s, 25))], plan, ["uniform", "adaptive"])
    rows = report["results"]
    assert [(r["algorithm"], r["budget"]) for r in rows] == [("uniform", 5), ("adaptive", 5)]
    assert set(rows[0]) >= {
        "consensus_precision_at_10",
        "controversy_precision_at_5",
        "votes_to_precision_0_9",
        "share_with_10_votes",
        "selection_ms_median",
        "selection_ms_p99",
    }
    assert report["seeds"] == [1, 2]
    scale = report["selection_at_scale"]
    assert isinstance(scale, dict)
    assert scale["postgresql"] == "left out"  # no server given
    for figures in scale["by_algorithm"].values():  # the algorithm alone, then with its reads
        assert set(figures) == {
            "median_ms",
            "p99_ms",
            "with_database_median_ms",
            "with_database_p99_ms",
            "with_postgresql_median_ms",
            "with_postgresql_p99_ms",
        }
        assert figures["with_postgresql_median_ms"] is figures["with_postgresql_p99_ms"] is None
        assert all(value > 0 for key, value in figures.items() if "postgresql" not in key)
    assert "P@10 consensus" in table(report)
    assert "PostgreSQL: left out" in table(report)
    assert "synthetic-large: left out: --quick runs synthetic-large only with --large" in table(
        report
    )
    json.dumps(report)


@pytest.mark.skipif(not POSTGRES_URL, reason="CONSULT_TEST_POSTGRES_URL not set")
def test_selections_at_scale_read_the_same_world_from_postgresql(postgres_url: str) -> None:
    # The timing loads the same proposals, counters and history into both databases and
    # replays the same random stream: the cards must be the same, call by call, or the two
    # timings would not measure the same selections.
    rows = scale_rows(400, 3)
    on_sqlite: dict[str, list[list[int]]] = {}
    on_postgres: dict[str, list[list[int]]] = {}
    algorithms = ["uniform", "makeorg", "adaptive"]
    asyncio.run(database_timing(algorithms, rows, 3, 4, chosen=on_sqlite))
    timed = asyncio.run(database_timing(algorithms, rows, 3, 4, postgres_url, on_postgres))
    assert on_postgres == on_sqlite
    assert all(len(calls) == 4 + WARM_UP for calls in on_postgres.values())
    assert all(len(cards) == 12 for calls in on_postgres.values() for cards in calls)
    assert set(timed) == set(algorithms)
    plan = Plan(20, 25, (1,), (5,), scale_proposals=200, scale_calls=2)
    report = run_suite(
        [("synthetic", lambda s: synthetic(s, 25))], plan, ["adaptive"], 1, postgres_url
    )
    scale = report["selection_at_scale"]
    assert isinstance(scale, dict) and scale["postgresql"] == "measured"
    figures = scale["by_algorithm"]["adaptive"]
    assert figures["with_postgresql_median_ms"] > 0 and figures["with_postgresql_p99_ms"] > 0
    assert "with the reads on PostgreSQL instead" in table(report)


def test_a_postgresql_timing_that_fails_is_reported_and_the_rest_kept() -> None:
    plan = Plan(20, 25, (1,), (5,), scale_proposals=200, scale_calls=2)
    nobody = "postgresql://postgres@127.0.0.1:1/consult_bench"  # port 1: nothing listens
    report = run_suite([("synthetic", lambda s: synthetic(s, 25))], plan, ["adaptive"], 1, nobody)
    scale = report["selection_at_scale"]
    assert isinstance(scale, dict) and scale["postgresql"].startswith("failed: ")
    figures = scale["by_algorithm"]["adaptive"]
    assert figures["with_database_p99_ms"] > 0 and figures["with_postgresql_p99_ms"] is None
    assert report["results"] and "PostgreSQL: failed: " in table(report)


def test_the_report_says_why_postgresql_was_left_out() -> None:
    assert postgres_left_out(None) == "left out (--postgres none)"
    assert "did not answer" in postgres_left_out("postgresql://postgres@127.0.0.1:1/x")


def test_processes_play_the_same_consultations() -> None:
    plan = Plan(20, 25, (1, 2, 3), (5,), scale_proposals=200, scale_calls=2)
    datasets = [("synthetic", lambda s: synthetic(s, 25))]
    alone = run_suite(datasets, plan, ["uniform", "makeorg", "adaptive"], jobs=1)
    shared = run_suite(datasets, plan, ["uniform", "makeorg", "adaptive"], jobs=2)
    timing = {"selection_ms_median", "selection_ms_p99"}

    def figures(report: dict[str, object]) -> list[dict[str, object]]:
        rows = report["results"]
        assert isinstance(rows, list)
        return [{k: v for k, v in row.items() if k not in timing} for row in rows]

    assert figures(alone) == figures(shared)
    row = figures(alone)[2]
    per_seed = row["votes_to_precision_0_9_per_seed"]
    assert isinstance(per_seed, list) and len(per_seed) == 3
    assert row["seeds_reaching_0_9"] == sum(v is not None for v in per_seed)


def _row(algorithm: str, votes: int | None, p10: float = 0.9, p5: float = 0.4) -> dict[str, object]:
    return {
        "dataset": "d",
        "budget": 5,
        "algorithm": algorithm,
        "votes_to_precision_0_9": votes,
        "consensus_precision_at_10": p10,
        "controversy_precision_at_5": p5,
        "share_with_10_votes": 1.0,
    }


@pytest.mark.parametrize(
    ("adaptive", "makeorg", "uniform", "met", "reduction", "worse"),
    [
        (_row("adaptive", 700), _row("makeorg", 1000), _row("uniform", 1200), True, 0.3, []),
        (_row("adaptive", 800), _row("makeorg", 1000), _row("uniform", 1200), False, 0.2, []),
        (_row("adaptive", 900), _row("makeorg", None), _row("uniform", None), True, None, []),
        (
            _row("adaptive", None),
            _row("makeorg", None),
            _row("uniform", 1200, p5=0.6),
            False,
            None,
            ["controversy_precision_at_5", "votes_to_precision_0_9"],
        ),
    ],
)
def test_the_goal_verdicts(
    adaptive: dict[str, object],
    makeorg: dict[str, object],
    uniform: dict[str, object],
    met: bool,
    reduction: float | None,
    worse: list[str],
) -> None:
    (verdict,) = goal([uniform, makeorg, adaptive])
    assert verdict["fewer_votes_goal_met"] is met
    assert verdict["reduction"] == (None if reduction is None else pytest.approx(reduction))
    assert verdict["worse_than_uniform_on"] == worse


def _bench_sequencing(*arguments: str) -> subprocess.CompletedProcess[str]:
    """`consult bench sequencing` with these arguments, in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "bots.cli", "bench", "sequencing", *arguments],
        capture_output=True,
        text=True,
        env={"LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin"},
        cwd=Path(__file__).resolve().parents[2],
    )


@pytest.mark.parametrize(
    "arguments", [["--algorithms", "magic"], ["--jobs", "0"], ["--seeds", "0"]]
)
def test_bad_arguments_exit_2(arguments: list[str]) -> None:
    result = _bench_sequencing(*arguments)
    assert result.returncode == 2 and "unknown algorithm" in result.stderr


def test_a_conversation_with_nothing_to_replay_exits_2(tmp_path: Path) -> None:
    header = "timestamp,datetime,comment-id,author-id,agrees,disagrees,moderated,comment-body\n"
    (tmp_path / "comments.csv").write_text(header + "1000,x,0,7,0,0,-1,Spam\n")
    (tmp_path / "votes.csv").write_text("timestamp,datetime,comment-id,voter-id,vote\n")
    result = _bench_sequencing("--polis", str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert "nothing to replay, not one comment that was not rejected" in result.stderr


def test_a_polis_conversation_becomes_a_fitted_population() -> None:
    from bench.populations import from_polis
    from core.polis import read_polis
    from tests.polis_data import polis_dir

    conversation = read_polis(polis_dir("15-per-hour-seattle"))
    population = from_polis(conversation, "seattle")
    kept = [c for c in conversation.comments if c.moderated != -1]
    assert len(population.texts) == len(kept)
    assert sum(population.shares) == pytest.approx(1)
    for agree, disagree in zip(population.agree, population.disagree, strict=True):
        assert all(a > 0 and d > 0 and a + d < 1 for a, d in zip(agree, disagree, strict=True))
    run = simulate(population, "adaptive", budget=5, participants=30, seed=1)
    assert 100 < run.votes <= 150  # the first participants find only a few comments
    # Replayed: the voters with their real votes; the truth mixes those with the fitted rates.
    assert len(population.voters) == len(conversation.voters)
    keys = {1: "agree", -1: "disagree", 0: "neutral"}
    position = {c.id: i for i, c in enumerate(kept)}
    index = {voter: i for i, voter in enumerate(sorted(conversation.voters))}
    for (voter, comment), vote in conversation.votes.items():
        if comment in position:  # not a rejected comment
            assert population.voters[index[voter]].votes[position[comment]] == keys[vote]
    first = 0
    for group, share in enumerate(population.shares):
        members = [v for v in population.voters if v.group == group]
        assert share == pytest.approx(len(members) / len(population.voters))
        expected = sum(
            (v.votes.get(first) == "agree")
            if first in v.votes
            else population.unvoted_agree[first][group]
            for v in members
        ) / len(members)
        assert population.agree[first][group] == pytest.approx(expected)


def test_a_replayed_voter_casts_their_real_vote_not_the_models() -> None:
    """Two voters who voted on every proposal: for the first ten, one agreed and the other
    disagreed; on the last, both passed. The model's rates (and the truth, here made up so
    that neither can stand in for the real votes) say otherwise: only the real votes give
    these counts."""
    from bench.populations import Population, Voter

    words = ["care", "fund", "homes", "buses", "parks", "clinics", "meals", "streets"]
    words += ["nurses", "libraries", "gardens"]
    size = len(words)
    yes = {p: "agree" if p < 10 else "neutral" for p in range(size)}
    no = {p: "disagree" if p < 10 else "neutral" for p in range(size)}
    always = tuple((1.0, 1.0) for _ in range(size))
    never = tuple((0.0, 0.0) for _ in range(size))
    population = Population(
        name="replayed",
        shares=(0.5, 0.5),
        agree=always,
        disagree=never,
        arrival=(0.0,) * size,
        texts=tuple(f"{word} {p} " + word[::-1] * 3 for p, word in enumerate(words)),
        authors=(None,) * size,
        truth="made up",
        voters=(Voter(0, yes), Voter(1, no)),
        unvoted_agree=always,
        unvoted_disagree=never,
    )
    run = simulate(population, "uniform", budget=size, participants=40, seed=3)
    assert run.votes == 40 * size
    agreed = [c["agree"] for c in run.counts]
    disagreed = [c["disagree"] for c in run.counts]
    assert agreed[:10] == [agreed[0]] * 10 and disagreed[:10] == [40 - agreed[0]] * 10
    assert 0 < agreed[0] < 40  # both voters were drawn
    assert run.counts[10] == {"agree": 0, "disagree": 0, "neutral": 40, "likeIt": 0, "noWay": 0}


def test_votes_are_common_random_numbers_shared_by_every_algorithm() -> None:
    from bench.simulation import common_uniform

    draws = [
        common_uniform(1, person, proposal) for person in range(100) for proposal in range(100)
    ]
    assert all(0 <= u < 1 for u in draws)
    assert abs(sum(draws) / len(draws) - 0.5) < 0.01
    assert common_uniform(1, 5, 7) == common_uniform(1, 5, 7) != common_uniform(2, 5, 7)
    assert common_uniform(1, 5, 7) != common_uniform(1, 5, 7, salt=1)


def test_the_arrival_floor_is_when_the_last_true_top_ten_appears() -> None:
    from bench.simulation import arrival_floor

    population = synthetic(2, proposals=60)
    consensus, _ = population.true_sets()
    last = max(population.arrival[p] for p in consensus)
    assert arrival_floor(population, participants=100, budget=5) == math.ceil(last * 100) * 5


def test_the_gain_of_showing_proposals_to_groups_in_proportion() -> None:
    from bench.populations import Population

    population = Population(
        name="two groups",
        shares=(0.5, 0.5),
        agree=((0.9, 0.5), (0.6, 0.6)),
        disagree=((0.05, 0.3), (0.2, 0.2)),
        arrival=(0.0, 0.0),
        texts=("a", "b"),
        authors=(None, None),
        truth="hand-made",
    )
    # Rate 0.7; between groups 0.5 * 0.2^2 * 2 = 0.04 of a variance of 0.7 * 0.3 = 0.21.
    assert population.balance_gain(population.agree, 0) == pytest.approx(0.04 / 0.21)
    assert population.balance_gain(population.agree, 1) == pytest.approx(0.0)
    gains = population.balance_gains()
    assert set(gains) == {"consensus", "controversy"}
    assert 0 <= gains["consensus"] <= 1 and 0 <= gains["controversy"] <= 1


# Production's bounded pool (bench.pools), on a world small enough to check by hand: 8 tested
# proposals (ids 0-7, 10 votes each) and 4 fresh ones (8-11, created out of id order).
_SHUFFLE = (0.55, 0.05, 0.95, 0.35, 0.75, 0.15, 0.85, 0.45, 0.6, 0.2, 0.3, 0.1)
_CREATED = {8: 3.0, 9: 1.0, 10: 2.0, 11: 1.0}
_TESTED = {  # agree, disagree, neutral
    0: (9, 1, 0),  # smoothed agree 0.85, ties with 1 (votes too): the higher id first
    1: (9, 1, 0),
    2: (5, 5, 0),  # the most divisive: min(agree, disagree) 0.48
    3: (2, 8, 0),
    4: (6, 4, 0),  # agree 0.57, divisive 0.39
    5: (10, 0, 0),  # the most agreed: 0.94
    6: (4, 4, 2),  # divisive 0.42
    7: (0, 10, 0),
}
_KEYS = ("agree", "disagree", "neutral")
_SMALL = PoolShape(fresh_limit=2, sample_limit=3, consensus_contenders=2, controversy_contenders=2)


def _counts(agree: int = 0, disagree: int = 0, neutral: int = 0) -> dict[str, int]:
    return {"agree": agree, "disagree": disagree, "neutral": neutral}


def _world(algorithm: str, shape: PoolShape = _SMALL) -> ProductionPool:
    """The world above, reached as a simulation reaches it: every proposal arrives with no vote,
    then the votes come one at a time, interleaved."""
    candidates = [
        Candidate(p, None, _CREATED.get(p, 0.0), f"proposal {p}", _counts()) for p in range(12)
    ]
    pool = ProductionPool(shape, candidates, _SHUFFLE, algorithm)
    for p in range(12):
        pool.arrive(p)
    votes = [
        (p, key)
        for p, n in _TESTED.items()
        for key, k in zip(_KEYS, n, strict=True)
        for _ in range(k)
    ]
    random.Random(4).shuffle(votes)
    for p, key in [*votes, (8, "agree"), (10, "neutral")]:  # two fresh ones get a vote
        candidates[p].counts[key] += 1  # type: ignore[index]
        pool.voted(p)
    return pool


def _ids(pool: list[Candidate]) -> list[int]:
    return [c.id for c in pool]


def test_the_production_pool_is_fresh_then_contenders_then_a_wrapping_sample() -> None:
    seen = {9, 5, 6}  # the oldest fresh one, the consensus leader, a divisive one
    adaptive = _ids(_world("adaptive").pool_for(seen, pivot=0.8))
    # Fresh, oldest first (11 ties with 9 on creation and has the higher id; 9 was seen):
    # 11, 10. Consensus: 1, 0 (5 seen). Controversy: 2, 4 (6 seen). Sample from 0.8: 6 seen,
    # 2 (0.95), then wrapping: 1 (0.05), 5 seen, 3 (0.35); 2 and 1 are already in.
    assert adaptive == [11, 10, 1, 0, 2, 4, 3]
    uniform = _ids(_world("uniform").pool_for(seen, pivot=0.8))
    assert uniform == [11, 10, 2, 1, 3]  # no contenders: the sample alone
    assert not seen & set(adaptive) and not seen & set(uniform)


def test_the_sample_is_a_run_of_the_shuffle_order_from_the_pivot() -> None:
    world = _world("uniform", replace(_SMALL, fresh_limit=0, sample_limit=8))
    by_shuffle = sorted(range(8), key=lambda p: _SHUFFLE[p])  # 1 5 3 7 0 4 6 2
    for pivot, start in [(0.0, 0), (0.4, 3), (0.5, 4), (0.9, 7), (0.99, 0)]:
        run = by_shuffle[start:] + by_shuffle[:start]
        assert _ids(world.pool_for(set(), pivot)) == run
        assert _ids(world.pool_for({run[1]}, pivot)) == [run[0], *run[2:]]
    limited = _world("uniform", replace(_SMALL, fresh_limit=0, sample_limit=3))
    assert _ids(limited.pool_for({4}, 0.5)) == [0, 6, 2]  # 0.55, (0.75 seen), 0.85, 0.95


def test_the_fresh_part_holds_the_oldest_eligible_ones() -> None:
    world = _world("uniform", replace(_SMALL, fresh_limit=3, sample_limit=1))
    assert _ids(world.pool_for(set(), 0.0))[:3] == [9, 11, 10]
    assert _ids(world.pool_for({11}, 0.0))[:3] == [9, 10, 8]
    assert _ids(world.pool_for({9, 10}, 0.0)) == [11, 8, 1]  # fresh ones run out: the sample


def _pool_by_sorting(
    candidates: list[Candidate],
    shuffle: list[float],
    seen: set[int],
    pivot: float,
    shape: PoolShape,
    contenders: bool,
) -> list[int]:
    """The pool as the specification says, by sorting everything: what the indexes must give."""
    eligible = [c for c in candidates if c.id not in seen]
    fresh = sorted((c for c in eligible if c.votes < FRESH_BELOW), key=lambda c: (c.created, c.id))
    tested = [c for c in eligible if c.votes >= FRESH_BELOW]

    def by_score(which: int) -> list[int]:
        scored = [
            (contender_scores(*(c.counts[k] for k in _KEYS), c.votes)[which], c) for c in tested
        ]
        ranked = sorted(scored, key=lambda s: (s[0], s[1].votes, s[1].id), reverse=True)
        return [c.id for _, c in ranked]

    by_shuffle = sorted((c.id for c in tested), key=lambda p: shuffle[p])
    after = [p for p in by_shuffle if shuffle[p] >= pivot]
    sample = (after + [p for p in by_shuffle if shuffle[p] < pivot])[: shape.sample_limit]
    chosen = [c.id for c in fresh[: shape.fresh_limit]]
    if contenders:
        chosen += by_score(0)[: shape.consensus_contenders]
        chosen += by_score(1)[: shape.controversy_contenders]
    return list(dict.fromkeys(chosen + sample))


@pytest.mark.parametrize("algorithm", ["adaptive", "uniform"])
def test_the_kept_orders_give_the_pool_sorting_everything_would(algorithm: str) -> None:
    rng = random.Random(11)
    shape = PoolShape(
        fresh_limit=5, sample_limit=12, consensus_contenders=4, controversy_contenders=3
    )
    size = 60
    candidates = [Candidate(p, None, float(rng.randrange(20)), "", _counts()) for p in range(size)]
    shuffle = [rng.random() for _ in range(size)]
    pool = ProductionPool(shape, candidates, shuffle, algorithm)
    arrived: list[Candidate] = []
    for step in range(1500):
        if len(arrived) < size and step % 25 == 0:
            pool.arrive(len(arrived))
            arrived.append(candidates[len(arrived)])
        voted = rng.choice(arrived)
        voted.counts[rng.choice(_KEYS)] += 1  # type: ignore[index]
        pool.voted(voted.id)
        if step % 50 == 49:
            seen = set(rng.sample([c.id for c in arrived], min(6, len(arrived) - 1)))
            pivot = rng.random()
            got = _ids(pool.pool_for(seen, pivot))
            expected = _pool_by_sorting(
                arrived, shuffle, seen, pivot, shape, algorithm == "adaptive"
            )
            assert got == expected
            bound = shape.fresh_limit + shape.sample_limit
            if algorithm == "adaptive":
                bound += shape.consensus_contenders + shape.controversy_contenders
            assert len(got) <= bound
    assert sum(c.votes >= FRESH_BELOW for c in candidates) > shape.sample_limit  # it binds


def test_the_large_dataset_is_played_with_its_own_crowd_seeds_and_pool() -> None:
    large = LargeDataset(proposals=60, participants=80, seeds=(1, 2), pool=PoolShape(4, 8, 3, 2))
    plan = Plan(20, 25, (1,), (5,), scale_proposals=200, scale_calls=2, large=large)
    datasets = [("synthetic", lambda s: synthetic(s, 25))]
    report = run_suite(datasets, plan, ["uniform", "makeorg", "adaptive"])
    rows = report["results"]
    assert isinstance(rows, list)
    assert [(r["dataset"], r["algorithm"]) for r in rows][3:] == [
        ("synthetic-large", "uniform"),
        ("synthetic-large", "makeorg"),
        ("synthetic-large", "adaptive"),
    ]
    assert all(set(row) == set(rows[0]) for row in rows)
    for row in rows[3:]:
        assert row["votes"] == 80 * 5
        assert isinstance(row["votes_to_precision_0_9_per_seed"], list)
        assert len(row["votes_to_precision_0_9_per_seed"]) == 2
    assert [(v["dataset"], v["budget"]) for v in report["goal"]] == [  # type: ignore[union-attr]
        ("synthetic", 5),
        ("synthetic-large", 5),
    ]
    small, described = report["datasets"]  # type: ignore[misc]
    assert small["pool"] == {"mode": "whole"} and small["participants"] == 20
    assert described["participants"] == 80 and described["seeds"] == [1, 2]
    assert described["pool"]["mode"] == "production"
    assert described["pool"]["sample_limit"] == 8 and described["pool"]["fresh_limit"] == 4
    assert report["large_dataset"] == "included"
    shown = table(report)
    assert "synthetic-large: 60 proposals, 80 participants, 2 seeds" in shown
    assert "a sample of 8" in shown and "--sample-limit changes this simulated sample only" in shown
    json.dumps(report)


@pytest.mark.parametrize("value", ["0", "-3", "2.5"])
def test_a_bad_sample_limit_exits_2(value: str) -> None:
    result = _bench_sequencing("--sample-limit", value)
    assert result.returncode == 2 and "--sample-limit" in result.stderr


@pytest.mark.parametrize("algorithm", ["adaptive", "uniform"])
async def test_the_simulated_pool_is_the_one_production_reads(
    sessions, load_consultation, clock, monkeypatch, algorithm: str
) -> None:
    """`ProductionPool` against `next_proposals_for` itself, on one world in the database:
    more fresh and tested proposals than the pool takes, ties on creation time and on scores,
    and a participant who voted on some of each."""
    consultation = await load_consultation(settings={"sequencing": algorithm})
    received = record_pools(monkeypatch, algorithm)
    world = random.Random(8)
    start = clock()
    rows = []
    for i in range(FRESH_LIMIT + SAMPLE_LIMIT + 120):
        votes = world.choice([0, 3, 9, 10, 12, 40, 40, 200])  # fresh ones; tested ones, tied
        agree = world.choice([0, votes // 2, votes])
        disagree = world.randint(0, votes - agree)
        counts = {"agree": agree, "disagree": disagree, "neutral": votes - agree - disagree}
        created = start + timedelta(seconds=i // 3)  # three at a time
        rows.append(scored_proposal(consultation.id, f"w{i}", counts, world.random(), created))
    tables = SQLModel.metadata.tables
    async with sessions() as session, session.begin():
        me = (await enrol(session, SECRET, "test", "me", None, clock())).participant.id
        await session.exec(insert(tables["proposal"]), params=rows)
        found = await session.exec(
            select(Proposal)
            .where(Proposal.consultation_id == consultation.id, Proposal.locale == "en")
            .where(Proposal.status == ProposalStatus.ACCEPTED)
            .order_by(Proposal.id)  # the order they arrived in
        )
        proposals = list(found)
        voted = world.sample([p.id for p in proposals], 40)
        await session.exec(
            insert(tables["vote"]),
            params=[
                {
                    "participant_id": me,
                    "proposal_id": pid,
                    "key": "agree",
                    "trusted": True,
                    "created_at": start,
                    "updated_at": start,
                }
                for pid in voted
            ],
        )
    # The same world in the simulation's terms: proposal i is the i-th to arrive.
    candidates = [
        Candidate(
            i,
            None,
            p.created_at.timestamp(),
            p.text,
            {"agree": p.agree_count, "disagree": p.disagree_count, "neutral": p.neutral_count},
        )
        for i, p in enumerate(proposals)
    ]
    simulated = ProductionPool(PoolShape(), candidates, [p.shuffle for p in proposals], algorithm)
    for i in range(len(proposals)):
        simulated.arrive(i)
    index_of = {p.id: i for i, p in enumerate(proposals)}
    seen = {index_of[pid] for pid in voted}
    for seed in range(6):
        async with sessions() as session:
            current = await session.get(Consultation, consultation.id)
            await next_proposals_for(session, me, current, "en", 12, rng=random.Random(seed))
        read = [index_of[c.id] for c in received[-1]]
        pivot = random.Random(seed).random()  # next_proposals_for's first draw
        assert [c.id for c in simulated.pool_for(seen, pivot)] == read
    assert len(read) > SAMPLE_LIMIT  # the bounds bound

"""The sequencing benchmark's simulator and report (behaviour only, never timings)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.populations import synthetic
from bench.sequencing import Plan, goal, run_suite, simulate, table


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
    for figures in scale["by_algorithm"].values():  # the algorithm alone, then with its reads
        assert set(figures) == {
            "median_ms",
            "p99_ms",
            "with_database_median_ms",
            "with_database_p99_ms",
        }
        assert all(value > 0 for value in figures.values())
    assert "P@10 consensus" in table(report)
    json.dumps(report)


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


@pytest.mark.parametrize(
    "arguments", [["--algorithms", "magic"], ["--jobs", "0"], ["--seeds", "0"]]
)
def test_bad_arguments_exit_2(arguments: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bots.cli", "bench", "sequencing", *arguments],
        capture_output=True,
        text=True,
        env={"LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin"},
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 2 and "unknown algorithm" in result.stderr


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


def test_votes_are_common_random_numbers_shared_by_every_algorithm() -> None:
    from bench.sequencing import common_uniform

    draws = [
        common_uniform(1, person, proposal) for person in range(100) for proposal in range(100)
    ]
    assert all(0 <= u < 1 for u in draws)
    assert abs(sum(draws) / len(draws) - 0.5) < 0.01
    assert common_uniform(1, 5, 7) == common_uniform(1, 5, 7) != common_uniform(2, 5, 7)
    assert common_uniform(1, 5, 7) != common_uniform(1, 5, 7, salt=1)


def test_the_arrival_floor_is_when_the_last_true_top_ten_appears() -> None:
    from bench.sequencing import arrival_floor

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

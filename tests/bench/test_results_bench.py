"""`consult bench results`: the adjusted Rand index against a hand-computed example, a tiny
scale run on both databases (stages, memory, table), the comparison with Polis on the shared
Seattle conversation, and the command's arguments. Never timings."""

from __future__ import annotations

import json

import pytest

from bench.results import adjusted_rand_index, measure_scale, run_polis, table
from tests.bots.test_cli import consult
from tests.polis_data import polis_dir


def test_adjusted_rand_index_matches_a_hand_computed_example() -> None:
    # Contingency of [0,0,1,1] against [0,0,1,2]: cells 2, 1, 1. Pairs together in both: 1;
    # rows: 1 + 1 = 2; columns: 1; expected 2 x 1 / C(4,2) = 1/3; most (2 + 1) / 2 = 3/2;
    # ARI = (1 - 1/3) / (3/2 - 1/3) = 4/7.
    assert adjusted_rand_index([0, 0, 1, 1], [0, 0, 1, 2]) == pytest.approx(4 / 7)
    assert adjusted_rand_index([0, 0, 1, 1], [5, 5, 3, 3]) == 1.0  # names do not matter
    # Every item alone in one labelling, all together in the other: chance level.
    assert adjusted_rand_index([0, 1, 2, 3], [0, 0, 0, 0]) == pytest.approx(0.0)


def test_a_tiny_scale_run_reports_every_stage(database_url: str) -> None:
    row = measure_scale(database_url, votes=6000, participants=600, proposals=40, seed=2)
    assert abs(row["generated_votes"] - 6000) < 300
    assert row["votes"] == row["generated_votes"] and row["proposals"] == 40
    stages = [stage["stage"] for stage in row["stages"]]
    # The whole recomputation the scheduler runs, stage by stage.
    assert stages == [
        "read votes",
        "trust",
        "matrix",
        "pca",
        "clustering",
        "consensus, repness",
        "reports",
        "breakdowns",
        "weighting",
        "qualifications, live",
        "snapshot write",
    ]
    peaks = [stage["peak_mb"] for stage in row["stages"]]
    assert peaks == sorted(peaks) and peaks[0] > 0  # a high-water mark only grows
    assert row["clustered"] > 0 and len(row["groups"]) >= 2  # three synthetic camps
    # One in two hundred skims: trust finds a few, not the readers.
    assert 0 < row["untrusted"] < row["participants"] // 20
    printed = table({"goal": {"seconds": 30, "peak_mb": 4096}, "runs": [{"backend": "here"} | row]})
    assert "clustering" in printed and "the goal" in printed
    json.dumps(row)


def test_groups_and_consensus_against_polis_on_seattle() -> None:
    report = run_polis([polis_dir("15-per-hour-seattle")])
    (seattle,) = report["conversations"]
    assert seattle["polis_groups"] == {0: 99, 1: 39}
    assert all(-1 <= run["ari"] <= 1 for run in seattle["runs"])
    assert seattle["ari_median"] > 0.3  # far from chance, as Polis's groups are found
    # With Polis's groups, our consensus is the export's, comment for comment.
    assert seattle["consensus_max_gap"] < 1e-12
    assert "ARI median" in table(report)


def test_bench_results_arguments() -> None:
    answer = consult(["bench", "results", "--help"], {})
    assert answer.returncode == 0 and "--polis" in answer.stdout
    refused = consult(["bench", "results", "--votes", "0", "--postgres", "none"], {})
    assert refused.returncode == 2 and "--votes" in refused.stderr
    fewer = consult(["bench", "results", "--votes", "5", "--participants", "9"], {})
    assert fewer.returncode == 2

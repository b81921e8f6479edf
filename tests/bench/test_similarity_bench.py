"""`consult bench similarity`: the labelled set as the issue asks for it, figures of the right
shape and sense on it, a small timed run and its table, and the command's arguments. Never
timings."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from bench.similarity import (
    SWEEP,
    generated_proposals,
    measure_lookups,
    measure_quality,
    read_pairs,
    table,
)
from core.moderation.similarity import THRESHOLD
from tests.bots.test_cli import consult


def test_the_labelled_set_has_every_kind_in_both_languages() -> None:
    pairs = read_pairs()
    assert len(pairs) >= 200
    kinds = Counter((pair.locale, pair.kind) for pair in pairs)
    for locale in ("en", "fr"):
        for kind in ("paraphrase", "near-duplicate", "same-topic", "unrelated"):
            assert kinds[(locale, kind)] >= 15, (locale, kind)
    for pair in pairs:
        assert pair.similar == (pair.kind in ("paraphrase", "near-duplicate"))
        assert pair.a != pair.b
    assert len({(pair.a, pair.b) for pair in pairs}) == len(pairs)


async def test_the_quality_figures_make_sense(tmp_path: Path) -> None:
    pairs = read_pairs()
    report = await measure_quality(f"sqlite:///{tmp_path / 'pairs.sqlite3'}", pairs)

    assert report["threshold"] == THRESHOLD
    overall = report["overall"]
    assert overall["pairs"] == len(pairs)
    for figure in ("precision", "recall", "f1", "judged_similar"):
        assert 0.0 <= overall[figure] <= 1.0
    split = report["split"]
    assert split["locale=en"]["pairs"] + split["locale=fr"]["pairs"] == len(pairs)
    # what tells a working lookup from a broken one, whatever the threshold's tuning:
    # near-duplicates are found far more often than unrelated proposals
    assert split["kind=near-duplicate"]["judged_similar"] > 0.8
    assert split["kind=unrelated"]["judged_similar"] < 0.2
    assert split["kind=unrelated"]["recall"] is None  # no similar pair to find there
    sweep = report["sweep"]
    assert list(sweep) == [f"{t:.2f}" for t in SWEEP]
    judged = [sweep[f"{t:.2f}"]["judged_similar"] for t in sorted(SWEEP)]
    assert judged == sorted(judged, reverse=True)  # a higher threshold never finds more


async def test_a_small_timed_run_and_its_table(database_url: str) -> None:
    """On both databases (the PostgreSQL one is this test process's own)."""
    speed = await measure_lookups(database_url, 400, 12)

    assert speed["proposals"] == 400 and speed["lookups"] == 12
    assert 0 <= speed["with_similar"] <= 12
    for figures in (speed["lookup_ms"], speed["baseline_ms"]):
        assert 0 < figures["p50"] <= figures["p99"]
    quality = {
        "threshold": THRESHOLD,
        "overall": {
            "pairs": 2,
            "precision": 1.0,
            "recall": 0.5,
            "f1": 0.667,
            "judged_similar": 0.5,
        },
        "split": {},
        "sweep": {},
    }
    report = {"pairs": "pairs.csv", "quality": quality, "speed": [{"backend": "here", **speed}]}
    printed = table(report)
    assert f"similar at score >= {THRESHOLD}" in printed
    assert "here" in printed and "1.000" in printed
    json.dumps(report)


def test_generated_proposals_are_seeded_and_in_both_languages() -> None:
    made = generated_proposals(40, 3)
    assert made == generated_proposals(40, 3) != generated_proposals(40, 4)
    assert Counter(locale for _, locale in made) == {"en": 20, "fr": 20}


def test_bench_similarity_runs_from_the_command_line(tmp_path: Path) -> None:
    answer = consult(["bench", "similarity", "--help"], {})
    assert answer.returncode == 0 and "--postgres" in answer.stdout
    refused = consult(["bench", "similarity", "--proposals", "0", "--postgres", "none"], {})
    assert refused.returncode == 2 and "--proposals" in refused.stderr
    ran = consult(
        ["bench", "similarity", "--proposals", "300", "--lookups", "5", "--postgres", "none"],
        {},
    )
    assert ran.returncode == 0, ran.stderr
    assert "locale=fr" in ran.stdout and "kind=paraphrase" in ran.stdout
    assert "3 by id" in ran.stdout

"""`consult bench flags` on a tiny run: the language flag judged on the labelled texts, and
submissions timed with and without flags."""

from __future__ import annotations

from pathlib import Path

from bench.flags import labelled_texts, measure_language, measure_submissions, table
from tests.bots.test_cli import consult


def test_the_language_flag_never_flags_the_labelled_texts_in_the_consultations_languages() -> None:
    texts = [t for t in labelled_texts(polis_dirs=()) if t.origin == "written"]
    assert len(texts) >= 90
    assert {t.language for t in texts} >= {"fr", "en", "es", "de", "it", "ar"}
    chosen = measure_language(texts)
    assert chosen["judgements"] == 3 * len(texts)
    assert chosen["false_flags"] == 0 and chosen["precision"] == 1.0
    assert chosen["recall"] >= 0.8
    loose = measure_language(texts, clear=0.0, min_letters=0)
    assert loose["recall"] >= chosen["recall"]


async def test_submissions_are_timed_with_and_without_flags(tmp_path: Path) -> None:
    speed = await measure_submissions(f"sqlite:///{tmp_path / 'flags.sqlite3'}", 40, 10)
    assert speed["proposals"] == 40 and speed["submissions"] == 10
    assert speed["copies"] == 1 and speed["flagged"] >= 1  # the copy is flagged at least
    assert speed["submit_ms"]["p99"] >= speed["submit_ms"]["p50"] > 0
    report = {
        "texts": 1,
        "language": {
            "clear": 0.9,
            "min_letters": 8,
            "judgements": 3,
            "precision": 1.0,
            "recall": 1.0,
            "false_flags": 0,
            "in_language": 2,
            "by_origin": {"written": {"judged": 3, "wrong": 0}},
        },
        "sweep": [],
        "speed": [{"backend": "sqlite", **speed}],
    }
    assert "sqlite" in table(report) and "precision 1.000" in table(report)


def test_bench_flags_runs_from_the_command_line() -> None:
    answer = consult(["bench", "flags", "--help"], {})
    assert answer.returncode == 0 and "--submissions" in answer.stdout
    refused = consult(["bench", "flags", "--submissions", "0"], {})
    assert refused.returncode == 2 and "--submissions" in refused.stderr

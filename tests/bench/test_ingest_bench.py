"""`consult bench ingest` on a tiny plan: both systems run, every vote is stored exactly once
and costs one Bot API request, and two workers are measured as one server (their CPU counted
with the supervisor's)."""

from __future__ import annotations

from pathlib import Path

from bench.ingest import Plan, measure_baseline, measure_consult
from tests.bots.test_cli import consult

TINY = Plan(participants=8, seconds=1.0, proposals=400)
# A vote costs one Bot API request: the tapped card becomes the next one. A participant whose
# sequence ends (the sequencer keeps near-duplicates of the bench's word-salad proposals apart,
# so it may end early) gets its summary and menu as two messages more: a few in a run.
ONE_CALL_A_VOTE = 1.05


async def test_two_workers_take_votes_and_store_each_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'consult.sqlite3'}"
    ours = await measure_consult(url, TINY, tmp_path, workers=2)
    assert ours["votes"] > 0 and ours["errors"] == 0
    assert ours["votes_stored"] == ours["votes"] and ours["all_stored_once"]
    assert ours["server_cpu_share"] > 0  # the workers' CPU, not only the idle supervisor's
    assert 1.0 <= ours["platform_calls_per_vote"] < ONE_CALL_A_VOTE


async def test_one_worker_makes_one_platform_call_per_vote(tmp_path: Path) -> None:
    ours = await measure_consult(f"sqlite:///{tmp_path / 'consult.sqlite3'}", TINY, tmp_path, 1)
    assert ours["votes"] > 0 and ours["all_stored_once"]
    assert 1.0 <= ours["platform_calls_per_vote"] < ONE_CALL_A_VOTE


async def test_the_baseline_runs_under_the_same_workers(tmp_path: Path) -> None:
    bare = await measure_baseline(f"sqlite:///{tmp_path / 'baseline.sqlite3'}", TINY, workers=2)
    assert bare["votes"] > 0 and bare["errors"] == 0 and bare["server_cpu_share"] > 0
    assert bare["all_stored_once"]  # no worker dropped the table under another's rows


def test_a_bad_worker_count_is_a_usage_error() -> None:
    answer = consult(["bench", "ingest", "--workers", "0", "--postgres", "none"], {})
    assert answer.returncode == 2
    assert "--workers must be at least 1" in answer.stderr

"""`consult bench flow` on a tiny plan: it measures both systems and counts the core's
statements per vote (a figure a regression in the vote path would move)."""

from __future__ import annotations

from pathlib import Path

from bench.flow import FlowPlan, measure_bare, measure_flow, table
from tests.bots.test_cli import consult

TINY = FlowPlan(participants=3, votes_each=4, proposals=40)


async def test_the_flow_and_the_bare_transaction_are_measured(tmp_path: Path) -> None:
    ours = await measure_flow(f"sqlite:///{tmp_path / 'flow.sqlite3'}", TINY)
    bare = await measure_bare(f"sqlite:///{tmp_path / 'bare.sqlite3'}", TINY)
    assert ours["votes"] == bare["votes"] == 12
    assert ours["votes_per_second"] > 0 and bare["cpu_ms_per_vote"] > 0
    # A vote's transaction as written today: event key, participant, consultation, card,
    # vote, two counters, next card, state. More means someone added a query to every vote.
    assert ours["statements_per_vote"] <= 10
    report = {"results": [{"backend": "sqlite", "flow": ours, "bare": bare, "ratio": 0.5}]}
    assert "flow/bare throughput: 0.50" in table(report)


def test_bench_flow_runs_from_the_command_line() -> None:
    answer = consult(["bench", "flow", "--help"], {})
    assert answer.returncode == 0 and "--postgres" in answer.stdout

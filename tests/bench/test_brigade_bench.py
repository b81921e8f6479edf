"""`consult bench brigade` on a tiny run: the report's shape, and the trust filter taking a
burst brigade out of the top 10 without flagging honest people."""

from __future__ import annotations

import json

from bench.brigade import STRATEGIES, run_brigade, table
from tests.bots.test_cli import consult


def test_a_tiny_run_reports_every_strategy_with_and_without_the_filter() -> None:
    report = run_brigade(participants=400, accounts=120, targets=3, proposals=40, seed=3)
    assert (report["participants"], report["accounts"], report["targets"]) == (400, 120, 3)
    rows = {row["strategy"]: row for row in report["strategies"]}
    assert set(rows) == set(STRATEGIES)
    for row in rows.values():
        for key in ("targets_in_top10_without_filter", "targets_in_top10_with_filter"):
            assert 0 <= row[key] <= 3
        assert 0 <= row["top10_overlap_with_filter"] <= 10
        assert row["honest_flagged"] == 0  # the newsletter's honest wave is no brigade
    burst = rows["burst"]
    assert burst["brigade_caught"] == 120 and burst["reasons"]["source_burst"] == 120
    assert burst["targets_in_top10_with_filter"] <= burst["targets_in_top10_without_filter"]
    assert rows["sockpuppets"]["brigade_caught"] == 120
    assert rows["patient"]["reasons"].get("pushed_links") == 120
    assert "burst" in table(report) and "without / with" in table(report)


def test_the_command_prints_json_and_refuses_bad_counts() -> None:
    args = ["--participants", "200", "--accounts", "30", "--proposals", "35", "--json"]
    result = consult(["bench", "brigade", *args], {})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [row["strategy"] for row in report["strategies"]] == list(STRATEGIES)
    assert "strategy" in result.stderr  # the table, beside the JSON
    refused = consult(["bench", "brigade", "--accounts", "0"], {})
    assert refused.returncode == 2
    assert "--accounts" in refused.stderr and "Traceback" not in refused.stderr

"""`consult bench broadcast` on a tiny audience: a real `consult deliver` sends a few hundred
messages through the three fakes, each in a process of its own, and every recipient gets
exactly one; with the delivery process killed mid-way and restarted, still nobody gets two and
every message ends sent, failed or unknown. Behaviour only: the rates are the benchmark's to
measure, never a test's to assert."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.broadcast import Options, measure_run, report, table
from bench.broadcast_fakes import CHANNELS, raw_rate
from bots.cli import main

TINY = 300  # a hundred recipients a channel
# The run killed mid-way goes at twice the platforms' pace (seconds), so that there is a
# middle to kill it in; the other at ten times theirs.
QUICK = Options(recipients=TINY, time_scale=10, poll_seconds=0.1, patience_seconds=120)
PACED = Options(recipients=TINY, time_scale=2, poll_seconds=0.1, patience_seconds=120)


def test_every_recipient_gets_one_message(database_url: str, tmp_path: Path) -> None:
    run = measure_run(database_url, TINY, QUICK, tmp_path, kill=False)
    assert not run["timed_out"]
    assert run["duplicates"] == 0 and run["lost"] == 0 and run["unknown"] == 0
    for channel in CHANNELS:
        figures = run["channels"][channel]
        assert figures["rows"] == {"sent": TINY // 3}
        assert figures["accepted"] == TINY // 3 and figures["strangers"] == 0
        assert figures["sent_not_received"] == 0
        assert (
            figures["limit_per_second"]
            == QUICK.time_scale
            * {
                "telegram": 30,
                "whatsapp": 80,
                "slack": 20,
            }[channel]
        )
    assert run["delivery_peak_rss_kib"][0] > 0
    # the report around it: the baseline is each fake's raw rate, the table shows every channel
    baseline = {channel: raw_rate(channel, seconds=0.2, concurrency=4) for channel in CHANNELS}
    assert all(raw["accepted"] > 0 for raw in baseline.values())
    results = [{"backend": "db", "runs": {"full": run}, "peak_rss_full_over_small": None}]
    figures = report(QUICK, baseline, results)
    assert figures["limits_per_second"] == {"telegram": 300, "whatsapp": 800, "slack": 200}
    assert figures["baseline"]["telegram"]["headroom_over_limit"] > 0
    shown = table(figures)
    assert "limits x10" in shown and all(channel in shown for channel in CHANNELS)


def test_a_delivery_killed_mid_way_sends_nobody_two_and_loses_nobody(
    database_url: str, tmp_path: Path
) -> None:
    run = measure_run(database_url, TINY, PACED, tmp_path, kill=True)
    assert not run["timed_out"]
    assert run["duplicates"] == 0 and run["lost"] == 0
    rows = [run["channels"][channel]["rows"] for channel in CHANNELS]
    assert sum(count for states in rows for count in states.values()) == TINY
    assert all(set(states) <= {"sent", "failed", "unknown"} for states in rows)
    # one process, or two when the kill came before the end: each with its peak memory
    assert len(run["delivery_peak_rss_kib"]) == (1 if run["killed_after_seconds"] is None else 2)


def test_bad_arguments_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "broadcast", "--recipients", "10"]) == 2
    assert "--recipients must be at least 30" in capsys.readouterr().err
    assert main(["bench", "broadcast", "--time-scale", "0"]) == 2

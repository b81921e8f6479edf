"""`consult results` with opinion groups, as an organiser runs it: groups found in a real
Polis conversation, stored and read back, computed again on --refresh, and a consultation too
small for groups saying so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bots.test_cli import run
from tests.bots.test_results import voted  # noqa: F401  (a fixture)
from tests.polis_data import polis_dir


def test_groups_of_an_imported_conversation(database_url: str, tmp_path: Path) -> None:
    seattle = str(polis_dir("15-per-hour-seattle"))
    imported = run(["import", "polis", seattle, "--slug", "seattle"], database_url, tmp_path)
    assert imported.returncode == 0, imported.stderr

    first = run(["results", "seattle", "--json"], database_url, tmp_path)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    groups = report["opinion_groups"]
    assert groups["groups_reason"] is None and groups["clustered"] == 138
    assert groups["k"]["chosen"] == 2 == len(groups["groups"])
    assert sum(g["size"] for g in groups["groups"]) == 138
    assert all(1 <= len(g["representative"]) <= 5 for g in groups["groups"])
    assert all(0 < p["consensus"]["agree"] < 1 for p in groups["proposals"])

    again = json.loads(run(["results", "seattle", "--json"], database_url, tmp_path).stdout)
    assert again["computed_at"] == report["computed_at"]  # read back, not computed again
    refreshed = run(["results", "seattle", "--json", "--refresh"], database_url, tmp_path)
    after = json.loads(refreshed.stdout)["opinion_groups"]["k"]["smoother"]
    assert after == {"last_k": 2, "last_k_count": 2, "smoothed_k": 2}

    table = run(["results", "seattle"], database_url, tmp_path)
    assert "2 opinion groups, among 138 participants" in table.stdout
    assert "Group A: " in table.stdout and "Group B: " in table.stdout
    assert "Group-informed consensus" in table.stdout


@pytest.mark.usefixtures("voted")
def test_too_few_participants_give_no_groups_and_say_why(database_url: str, tmp_path: Path) -> None:
    table = run(["results", "elders"], database_url, tmp_path)
    assert table.returncode == 0, table.stderr
    assert "No opinion groups: fewer than two accepted proposals" not in table.stdout
    assert "No opinion groups: too few participants have voted on enough proposals" in (
        table.stdout
    )

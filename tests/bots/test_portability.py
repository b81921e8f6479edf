"""The `consult` command on a platform without Linux's calls: nothing Linux-only runs while
importing the code or building the parser, so every command's help works on macOS and Windows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bots import cli

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = [
    ["demo"],
    ["consultation", "load"],
    ["serve"],
    ["import", "polis"],
    ["bench", "sequencing"],
    ["bench", "ingest"],
    ["bench", "flow"],
    ["results"],
    ["telegram", "link"],
    ["telegram", "set-webhook"],
    ["whatsapp", "link"],
    ["slack", "post"],
    ["db", "upgrade"],
    ["db", "recount"],
]


@pytest.fixture
def without_affinity(monkeypatch: pytest.MonkeyPatch) -> None:
    """os as on macOS and Windows, where there is no CPU affinity call."""
    monkeypatch.delattr(os, "sched_getaffinity")


@pytest.mark.parametrize("command", [[], *COMMANDS], ids=lambda words: " ".join(words) or "-")
def test_every_command_has_its_help(
    without_affinity: None, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as leaving:
        cli.main([*command, "--help"])
    assert leaving.value.code == 0
    assert "usage: consult" in capsys.readouterr().out


def test_the_sequencing_benchmark_counts_cores_when_it_runs(
    without_affinity: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its default --jobs is found once the benchmark runs (here it stops at the bad algorithm,
    just after)."""
    assert cli.main(["bench", "sequencing", "--algorithms", "nonesuch"]) == cli.USAGE_ERROR
    assert "uniform" in capsys.readouterr().err


def test_importing_every_module_needs_no_linux_call() -> None:
    """A fresh interpreter without the call imports the command and the server, and says help."""
    program = (
        "import os; del os.sched_getaffinity\n"
        "import bots.cli, bots.server, bench.processes\n"
        "bots.cli.main(['--help'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "usage: consult" in done.stdout

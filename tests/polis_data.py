"""Where the shared Polis conversations are (beside the repository, as in CI)."""

from __future__ import annotations

from pathlib import Path

import pytest

_CANDIDATES = [
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "polis",
    Path("/work/shared/data/polis"),
]


def polis_dir(name: str) -> Path:
    for base in _CANDIDATES:
        if (base / name / "comments.csv").exists():
            return base / name
    pytest.skip(f"the shared Polis conversation {name} is not beside the repository")

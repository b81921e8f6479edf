"""The pseudonym key file: processes racing to create it all end with the one same key."""

from __future__ import annotations

import multiprocessing
import stat
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

from bots.settings import Settings

PROCESSES = 8
ROUNDS = 20
KEY_LENGTH = 64  # secrets.token_hex(32)


def _ask_for_key(base: str, barrier: Barrier, answers: Queue[tuple[int, str]]) -> None:
    """In a child process: each round, wait for every sibling, then ask for the key at once."""
    for round_number in range(ROUNDS):
        barrier.wait()
        try:
            settings = Settings(data_dir=Path(base) / str(round_number), secret_key=None)
            answer = settings.resolved_secret().decode()
        except Exception as error:  # the test reports it, with its round
            answer = f"crashed: {error!r}"
        answers.put((round_number, answer))


def test_processes_racing_on_an_empty_directory_share_one_key(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")  # what uvicorn's workers use too
    barrier = context.Barrier(PROCESSES)
    answers: Queue[tuple[int, str]] = context.Queue()
    children = [
        context.Process(target=_ask_for_key, args=(str(tmp_path), barrier, answers))
        for _ in range(PROCESSES)
    ]
    for child in children:
        child.start()
    keys: dict[int, list[str]] = {round_number: [] for round_number in range(ROUNDS)}
    for _ in range(PROCESSES * ROUNDS):
        round_number, answer = answers.get(timeout=120)
        keys[round_number].append(answer)
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    for round_number, answers_of_round in keys.items():
        assert len(set(answers_of_round)) == 1, (round_number, answers_of_round)
        assert len(answers_of_round[0]) == KEY_LENGTH, (round_number, answers_of_round[0])
        key_file = tmp_path / str(round_number) / "secret.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert [path.name for path in key_file.parent.iterdir()] == ["secret.key"]


def test_a_configured_key_is_used_and_no_file_is_written(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", secret_key="configured-key")
    assert settings.resolved_secret() == b"configured-key"
    assert not (tmp_path / "data").exists()


def test_an_existing_key_file_is_kept(tmp_path: Path) -> None:
    (tmp_path / "secret.key").write_text("kept-key\n")
    assert Settings(data_dir=tmp_path, secret_key=None).resolved_secret() == b"kept-key"

"""The `consult` command, run as a newcomer would: a real process, a real database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import consultation_data

CONSULT = [sys.executable, "-m", "bots.cli"]
ROOT = Path(__file__).resolve().parents[2]


def consult(
    args: list[str], env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`consult ARGS` as a real process, with `env` over this environment (no secret key of
    the caller's leaks in)."""
    inherited = {name: value for name, value in os.environ.items() if name != "CONSULT_SECRET_KEY"}
    return subprocess.run(
        CONSULT + args,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env={**inherited, **env},
        cwd=ROOT,
        timeout=300,
    )


def run(
    args: list[str],
    database_url: str,
    tmp_path: Path,
    stdin: str | None = None,
    language: str = "C.UTF-8",
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {
        "CONSULT_DATABASE_URL": database_url,
        "CONSULT_DATA_DIR": str(tmp_path / "data"),
        "LC_ALL": language,
        **(extra_env or {}),
    }
    return consult(args, env, stdin)


def test_load_creates_then_updates(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "elders.yaml"
    path.write_text(yaml.safe_dump(consultation_data(), allow_unicode=True), encoding="utf-8")
    first = run(["consultation", "load", str(path)], database_url, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Consultation 'elders' created (open)." in first.stdout
    second = run(["consultation", "load", str(path)], database_url, tmp_path)
    assert "Consultation 'elders' updated (open)." in second.stdout


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("slug: [unclosed", "line 1"),
        ("- just\n- a list\n", "must hold a mapping"),
        (
            yaml.safe_dump(consultation_data(settings={"sequence_size": -1})),
            "settings.sequence_size",
        ),
        (yaml.safe_dump(consultation_data(default_locale="de")), "default_locale"),
    ],
)
def test_invalid_files_exit_2_naming_what_to_fix(
    database_url: str, tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(content, encoding="utf-8")
    result = run(["consultation", "load", str(path)], database_url, tmp_path)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_file_and_bad_usage_exit_2(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    missing = run(["consultation", "load", str(tmp_path / "nope.yaml")], url, tmp_path)
    assert missing.returncode == 2 and "cannot read the file" in missing.stderr
    usage = run(["consultation", "frobnicate"], url, tmp_path)
    assert usage.returncode == 2 and "invalid choice" in usage.stderr


def test_db_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    result = run(["db", "upgrade"], url, tmp_path)
    assert result.returncode == 0 and "up to date" in result.stdout


def test_db_recount(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    result = run(["db", "recount"], url, tmp_path)
    assert result.returncode == 0 and "0 proposals were off" in result.stdout


def test_a_wrong_database_url_is_explained(tmp_path: Path) -> None:
    result = run(["db", "upgrade"], "not a url", tmp_path)
    assert result.returncode == 2 and "CONSULT_DATABASE_URL is not a database URL" in result.stderr
    unreachable = run(["db", "upgrade"], "postgresql://nobody@127.0.0.1:9/none", tmp_path)
    assert unreachable.returncode == 1 and "cannot open the database" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr


def test_organisers_read_the_command_in_their_language(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    result = run(["db", "upgrade"], url, tmp_path, language="fr_FR.UTF-8")
    assert "La base de données est à jour." in result.stdout


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("CONSULT_WEBHOOK_MAX_BODY_BYTES", "lots-7f3a9c", "valid integer"),
        ("CONSULT_DELIVERY_BEAT_SECONDS", "-1", "greater than 0"),
        ("CONSULT_DELIVERY_STALE_SECONDS", "1", "three times CONSULT_DELIVERY_BEAT_SECONDS"),
    ],
)
def test_a_bad_setting_is_named_without_its_value(
    tmp_path: Path, variable: str, value: str, said: str
) -> None:
    answer = consult(["db", "upgrade"], {"CONSULT_DATA_DIR": str(tmp_path), variable: value})
    assert answer.returncode == 2
    assert f"{variable} is not valid" in answer.stderr and said in answer.stderr
    assert "Traceback" not in answer.stderr
    if len(value) > 2:  # a value may be a secret: it is not repeated
        assert value not in answer.stderr + answer.stdout


def test_a_reader_that_stops_early_is_no_database_error(tmp_path: Path) -> None:
    """`consult ... | head`: the pipe closes before the output is all written."""
    url = f"sqlite:///{tmp_path / 'consult.sqlite3'}"
    assert run(["demo"], url, tmp_path).returncode == 0
    env = {**os.environ, "CONSULT_DATABASE_URL": url, "CONSULT_DATA_DIR": str(tmp_path / "data")}
    queue = [sys.executable, "-m", "bots.cli", "moderation", "queue", "culture", "--json"]
    reader, writer = os.pipe()
    os.close(reader)  # closed before the command writes a byte
    with subprocess.Popen(queue, stdout=writer, stderr=subprocess.PIPE, env=env) as command:
        os.close(writer)
        _, errors = command.communicate(timeout=120)
    assert command.returncode == 1
    assert b"database" not in errors and b"Traceback" not in errors, errors

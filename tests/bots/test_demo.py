"""`consult demo` as a newcomer runs it: seeded once, then a scripted session piped in."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.bots.test_cli import run

# Consent, two profile answers, twelve cards each with a qualification, then propose and stop.
SCRIPT = ["1", "1", "1"]
SCRIPT += ["1", "1", "1", "2", "2", "1", "3", "2", "1", "4", "2", "3"]
SCRIPT += ["1", "1", "3", "1", "1", "2", "1", "1", "2", "2", "1", "1"]
# the proposal resembles an accepted one ("ouvrir les bibliothèques le soir et le dimanche"):
# 2 sends it anyway rather than voting for that one
SCRIPT += ["2", "rendre les bibliothèques gratuites le dimanche", "2", "3"]


def test_demo_without_input_only_seeds_and_seeds_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    first = run(["demo"], url, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "60 proposals, 3600 simulated votes" in first.stderr
    assert "Comment rendre la culture accessible à tous ?" in first.stdout
    second = run(["demo"], url, tmp_path)
    assert second.returncode == 0 and "simulated votes" not in second.stderr
    with sqlite3.connect(tmp_path / "demo.sqlite3") as db:
        counts = "select status, count(*), sum(vote_count) from proposal group by status"
        by_status = {status: (n, votes) for status, n, votes in db.execute(counts)}
        # the seeds, voted on; and a queue for a newcomer to moderate, some of it flagged
        assert by_status == {"accepted": (60, 3600), "pending": (9, 0)}
        flagged = db.execute("select count(*) from proposal where flags != ''").fetchone()
        assert flagged == (6,)


def test_demo_default_database_lives_in_the_data_directory(tmp_path: Path) -> None:
    result = run(["demo"], "", tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "consult.sqlite3").exists()
    assert (tmp_path / "data" / "secret.key").stat().st_mode & 0o077 == 0


def test_a_scripted_session_votes_a_full_sequence_and_proposes(
    database_url: str, tmp_path: Path
) -> None:
    script = "\n".join(SCRIPT) + "\n"
    result = run(["demo", "--user", "reader", "--locale", "fr"], database_url, tmp_path, script)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Traceback" not in out + result.stderr
    assert "Proposition 12/12" in out
    assert out.count("C'est noté. Vous voulez préciser") == 12
    assert "Voici comment les autres participants ont voté" in out
    assert "Il faut rendre les bibliothèques gratuites le dimanche\n\nD'autres participants" in out
    assert "n°1 Il faut ouvrir les bibliothèques le soir et le dimanche" in out
    assert "une fois vérifiée par les modérateurs" in out
    assert out.rstrip().endswith("Écrivez-moi à tout moment pour continuer.")

    again = run(["demo", "--user", "reader", "--locale", "fr"], database_url, tmp_path, "1\n")
    assert "Bon retour" in again.stdout  # the conversation was kept in the database
    assert "Proposition 1/12" in again.stdout

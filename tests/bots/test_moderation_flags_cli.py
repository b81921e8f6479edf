"""`consult moderation queue|next` show a proposal's flags in the organiser's language and
can put the flagged ones first, as an organiser runs them (a real process)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.bots.test_cli import run
from tests.support import proposed_in_chat

AUTHOR = "tg-4711-secret-user"  # appears in no organiser output


async def test_the_queue_shows_flags_and_serves_the_flagged_first(
    load_consultation, chat, sessions, clock, database_url: str, tmp_path: Path
) -> None:
    await load_consultation()
    plain = await proposed_in_chat(chat, sessions, AUTHOR, "open libraries until midnight")
    clock.advance(minutes=1)
    flagged = await proposed_in_chat(
        chat, sessions, "someone-else", "read example.com, call 0612345678"
    )

    queue = run(["moderation", "queue", "elders", "--flagged-first"], database_url, tmp_path)
    assert queue.returncode == 0, queue.stderr
    lines = [line for line in queue.stdout.splitlines() if line.startswith("  #")]
    assert [line.split()[0] for line in lines] == [f"#{flagged}", f"#{plain}"]
    assert "flagged: contains a link, contains a phone number" in lines[0]
    assert "flagged" not in lines[1]

    french = run(
        ["moderation", "queue", "elders", "--flag", "phone"],
        database_url,
        tmp_path,
        language="fr_FR.UTF-8",
    )
    assert french.returncode == 0, french.stderr
    assert "signalée : contient un lien, contient un numéro de téléphone" in french.stdout
    assert f"#{plain}" not in french.stdout

    listed = json.loads(
        run(["moderation", "queue", "elders", "--json"], database_url, tmp_path).stdout
    )
    assert [(p["id"], p["flags"]) for p in listed["proposals"]] == [
        (plain, []),
        (flagged, ["link", "phone"]),
    ]

    served = run(
        ["moderation", "next", "elders", "--flagged-first", "--as", "ana@example.org"],
        database_url,
        tmp_path,
    )
    assert served.returncode == 0, served.stderr
    assert f"Proposal #{flagged} (en)" in served.stdout
    assert "flagged: contains a link, contains a phone number" in served.stdout

    unknown = run(["moderation", "queue", "elders", "--flag", "rude"], database_url, tmp_path)
    assert unknown.returncode == 2 and "--flag" in unknown.stderr
    both = run(
        ["moderation", "next", "elders", "--flagged-first", "--by-author"], database_url, tmp_path
    )
    assert both.returncode == 2
    for output in (queue, french, served):
        assert AUTHOR not in output.stdout + output.stderr

"""`consult moderation`, run as an organiser would (a real process) on a consultation that
participants play through the core: the central loop, propose -> moderate -> vote, works."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from sqlmodel import select

from core.models import Proposal
from tests.bots.test_cli import run
from tests.support import proposed_in_chat

PARTICIPANT = "tg-4711-secret-user"  # appears in no organiser output


async def test_a_proposal_accepted_from_the_cli_comes_up_in_sequences(
    load_consultation, chat, sessions, database_url: str, tmp_path: Path
) -> None:
    await load_consultation()
    pending = await proposed_in_chat(chat, sessions, PARTICIPANT, "open libraries until midnight")

    queue = run(["moderation", "queue", "elders"], database_url, tmp_path)
    assert queue.returncode == 0, queue.stderr
    assert "Pending proposals of 'elders': 1" in queue.stdout
    assert (
        f"#{pending}" in queue.stdout and "We should open libraries until midnight" in queue.stdout
    )
    listed = json.loads(
        run(["moderation", "queue", "elders", "--json"], database_url, tmp_path).stdout
    )
    assert [(p["id"], p["locale"]) for p in listed["proposals"]] == [(pending, "en")]

    served = run(
        ["moderation", "next", "elders", "--as", "ana@example.org"], database_url, tmp_path
    )
    assert served.returncode == 0, served.stderr
    assert f"Proposal #{pending} (en), held for you until" in served.stdout
    other = run(
        ["moderation", "accept", str(pending), "--as", "ben@example.org"], database_url, tmp_path
    )
    assert other.returncode == 2
    assert f"proposal #{pending} is held by ana@example.org until" in other.stderr

    accepted = run(
        ["moderation", "accept", str(pending), "--as", "ana@example.org"], database_url, tmp_path
    )
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.strip() == f"Proposal #{pending}: accepted."
    assert pending in await (await chat("reader", "en").enrol()).vote_everything()
    for output in (queue, served, other, accepted):
        assert PARTICIPANT not in output.stdout + output.stderr


async def test_every_refusal_is_a_clear_message_and_exit_2(
    load_consultation, chat, sessions, database_url: str, tmp_path: Path
) -> None:
    await load_consultation()
    pending = await proposed_in_chat(chat, sessions, "carla", "plant trees in every school")
    async with sessions() as session:
        seed = (await session.exec(select(Proposal.id).where(Proposal.ref == "p1.en"))).one()
    cases = [
        (["accept", "99999"], "there is no proposal #99999"),
        (["refuse", str(pending), "--reason", "boring"], "use one of: incomprehensible, off-topic"),
        (["refuse", str(pending), "--reason", "already-exists"], "needs --duplicate-of ID"),
        (
            ["refuse", str(pending), "--reason", "already-exists", "--duplicate-of", str(pending)],
            f"#{pending} is not another accepted proposal",
        ),
        (["accept", str(pending), "--text", "go " * 80], "the limit is 140"),
        (["accept", str(pending), str(seed), "--text", "plant oaks"], "--text edits one proposal"),
        (["withdraw", str(pending)], "only an accepted proposal can be withdrawn"),
        (["accept", str(seed)], f"proposal #{seed} is already accepted"),
    ]
    for args, expected in cases:
        result = run(["moderation", *args], database_url, tmp_path)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert expected in result.stderr, (args, result.stderr)
    french = run(
        ["moderation", "postpone", "99999"], database_url, tmp_path, language="fr_FR.UTF-8"
    )
    assert "il n'y a pas de proposition n° 99999" in french.stderr
    unknown = run(["moderation", "queue", "nope"], database_url, tmp_path)
    assert unknown.returncode == 2 and 'there is no consultation "nope"' in unknown.stderr
    async with sessions() as session:
        proposal = await session.get(Proposal, pending)
        assert proposal is not None and proposal.status == "pending"

    refused = run(
        [
            "moderation",
            "refuse",
            str(pending),
            "--reason",
            "already-exists",
            "--duplicate-of",
            str(seed),
        ],
        database_url,
        tmp_path,
    )
    assert refused.returncode == 0, refused.stderr
    assert refused.stdout.strip() == f"Proposal #{pending}: refused."


async def test_withdrawn_proposals_are_counted_apart_in_the_results(
    load_consultation, chat, sessions, database_url: str, tmp_path: Path
) -> None:
    await load_consultation(settings={"sequence_size": 4, "moderation": "post"})
    ids = [
        await proposed_in_chat(chat, sessions, "dora", "open libraries until midnight"),
        await proposed_in_chat(chat, sessions, "eliott", "plant trees in every school"),
    ]
    withdrawn = run(["moderation", "withdraw", *map(str, ids)], database_url, tmp_path)
    assert withdrawn.returncode == 0, withdrawn.stderr
    assert withdrawn.stdout.splitlines() == [f"Proposal #{i}: withdrawn." for i in ids]
    results = run(["results", "elders"], database_url, tmp_path)
    assert results.returncode == 0, results.stderr
    assert "2 withdrawn after acceptance" in results.stdout


async def test_the_audit_log_exports_every_decision_oldest_first(
    load_consultation, chat, sessions, database_url: str, tmp_path: Path
) -> None:
    await load_consultation()
    first = await proposed_in_chat(chat, sessions, PARTICIPANT, "open libraries until midnight")
    second = await proposed_in_chat(chat, sessions, "dora-77", "plant trees in every schoolyard")
    for args in (
        ["accept", str(first), "--as", "ana@example.org"],
        ["refuse", str(second), "--reason", "off-topic", "--as", "ben@example.org"],
    ):
        decided = run(["moderation", *args], database_url, tmp_path)
        assert decided.returncode == 0, decided.stderr

    lines = run(["moderation", "audit", "elders"], database_url, tmp_path)
    assert lines.returncode == 0, lines.stderr
    entries = [json.loads(line) for line in lines.stdout.splitlines()]
    assert [(e["actor"], e["target"], e["source"]) for e in entries] == [
        ("ana@example.org", f"proposal:{first}", "cli"),
        ("ben@example.org", f"proposal:{second}", "cli"),
    ]
    assert entries[0]["id"] < entries[1]["id"]
    assert entries[1]["detail"]["reason"] == "off-topic"

    table = run(["moderation", "audit", "elders", "--csv"], database_url, tmp_path)
    assert table.returncode == 0, table.stderr
    rows = list(csv.DictReader(io.StringIO(table.stdout)))
    assert [(row["id"], row["action"]) for row in rows] == [
        (str(e["id"]), e["action"]) for e in entries
    ]
    assert json.loads(rows[1]["detail"]) == entries[1]["detail"]
    for output in (lines, table):
        assert PARTICIPANT not in output.stdout and "dora-77" not in output.stdout

    unknown = run(["moderation", "audit", "nowhere"], database_url, tmp_path)
    assert unknown.returncode == 2 and 'there is no consultation "nowhere"' in unknown.stderr

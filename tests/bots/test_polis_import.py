"""`consult import polis`: both shared conversations, idempotent, counters exact."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import select

from bots.polis_import import default_slug, import_polis
from core.models import Proposal, Tally, Vote
from core.polis import read_polis
from tests.bots.test_cli import run
from tests.conftest import SECRET
from tests.polis_data import polis_dir


@pytest.mark.parametrize("name", ["15-per-hour-seattle", "vtaiwan.uberx"])
async def test_import_is_exact_and_idempotent(sessions, clock, name) -> None:
    conversation = read_polis(polis_dir(name))
    seen: list[tuple[int, int]] = []
    first = await import_polis(
        sessions,
        SECRET,
        conversation,
        default_slug(name),
        "en",
        clock(),
        lambda done, total: seen.append((done, total)),
    )
    assert first.proposals_created == len(conversation.comments)
    assert first.votes_imported == len(conversation.votes)
    assert seen[-1] == (len(conversation.votes), len(conversation.votes))
    async with sessions() as session:
        statuses = dict(
            (
                await session.exec(select(Proposal.status, func.count()).group_by(Proposal.status))
            ).all()
        )
        refused = sum(1 for c in conversation.comments if c.moderated == -1)
        assert statuses.get("refused", 0) == refused
        assert statuses["accepted"] == len(conversation.comments) - refused
        votes = list(await session.exec(select(Vote)))
        assert len(votes) == len(conversation.votes)
        by_proposal: dict[int, dict[str, int]] = {}
        for vote in votes:
            keys = by_proposal.setdefault(vote.proposal_id, {})
            keys[vote.key] = keys.get(vote.key, 0) + 1
        for proposal in await session.exec(select(Proposal)):
            counted = by_proposal.get(proposal.id, {})
            assert proposal.vote_count == sum(counted.values())
            tallies = await session.exec(
                select(Tally).where(Tally.proposal_id == proposal.id, Tally.trusted.is_(True))
            )
            for tally in tallies:
                if tally.key in ("agree", "disagree", "neutral"):
                    assert tally.count == counted.get(tally.key, 0)
    again = await import_polis(
        sessions, SECRET, conversation, default_slug(name), "en", clock(), None
    )
    assert (again.proposals_created, again.proposals_updated, again.votes_imported) == (0, 0, 0)
    assert again.votes_skipped == len(conversation.votes)
    assert again.participants == first.participants


def test_the_command_imports_and_reports(database_url: str, tmp_path: Path) -> None:
    result = run(["import", "polis", str(polis_dir("15-per-hour-seattle"))], database_url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Consultation '15-per-hour-seattle': 54 proposals created" in result.stdout
    assert "Importing votes 100%" in result.stderr


def test_a_broken_export_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "comments.csv").write_text(
        "timestamp,datetime,comment-id,author-id,agrees,disagrees,moderated,comment-body\n"
        "1000,x,0,1,0,0,maybe,Trees\n",
        encoding="utf-8",
    )
    (broken / "votes.csv").write_text("timestamp,datetime,comment-id,voter-id,vote\n")
    result = run(["import", "polis", str(broken)], f"sqlite:///{tmp_path / 'db'}", tmp_path)
    assert result.returncode == 2
    assert "comments.csv, line 2, column moderated" in result.stderr
    assert "Traceback" not in result.stderr

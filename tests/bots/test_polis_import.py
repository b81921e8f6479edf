"""`consult import polis`: both shared conversations, idempotent, counters exact, times kept,
errors plain.

The shared conversations were gathered using the Polis software (compdemocracy.org/polis) and
are sub-licensed under CC BY 4.0 with Attribution to The Computational Democracy Project.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bots.polis_import import (
    NotAPolisConsultation,
    default_slug,
    import_polis,
    polis_channel,
    polis_time,
)
from core.identity import identity_hash
from core.models import (
    ChannelIdentity,
    Consultation,
    Participant,
    Participation,
    Proposal,
    Qualification,
    Tally,
    Vote,
)
from core.polis import PolisComment, PolisConversation, PolisFormatError, read_polis
from core.results.live import live_figures
from core.voting import COUNTED_KEYS
from tests.bots.test_cli import run
from tests.conftest import SECRET, Loader, consultation_data
from tests.polis_data import polis_dir
from tests.support import Clock

STATUSES = {
    "15-per-hour-seattle": {"accepted": 31, "refused": 23},
    "vtaiwan.uberx": {"accepted": 119, "refused": 78},
}


async def _rows(session: AsyncSession, *columns: Any) -> list[tuple[Any, ...]]:
    return sorted(tuple(row) for row in await session.exec(select(*columns)))


async def _snapshot(sessions: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    """Everything an import writes, in a comparable form."""
    async with sessions() as session:
        return {
            "consultations": [c.model_dump() for c in await session.exec(select(Consultation))],
            "participants": await _rows(session, Participant.id, Participant.created_at),
            "identities": await _rows(
                session,
                ChannelIdentity.channel,
                ChannelIdentity.identity_hash,
                ChannelIdentity.participant_id,
            ),
            "proposals": [p.model_dump() for p in await session.exec(select(Proposal))],
            "votes": await _rows(session, Vote.participant_id, Vote.proposal_id, Vote.key),
            "vote times": await _rows(session, Vote.id, Vote.created_at, Vote.updated_at),
            "participations": await _rows(
                session,
                Participation.participant_id,
                Participation.source,
                Participation.consented_at,
                Participation.created_at,
            ),
            "tallies": await _rows(
                session, Tally.proposal_id, Tally.key, Tally.trusted, Tally.count
            ),
        }


@pytest.mark.parametrize("name", ["15-per-hour-seattle", "vtaiwan.uberx"])
async def test_import_is_exact_and_idempotent(sessions, clock: Clock, name: str) -> None:
    conversation = read_polis(polis_dir(name))
    slug = default_slug(name)
    seen: list[tuple[int, int]] = []
    first = await import_polis(
        sessions, SECRET, conversation, slug, "en", clock(), lambda *step: seen.append(step)
    )
    total = len(conversation.votes)
    authors = {c.author_id for c in conversation.comments if not c.seed and c.author_id is not None}
    assert first == dataclasses.replace(
        first,
        proposals_created=len(conversation.comments),
        proposals_updated=0,
        participants=len(set(conversation.voters) | authors),
        votes_imported=total,
        votes_skipped=0,
    )
    assert seen[-1] == (total, total)
    async with sessions() as session:
        consultation = (await session.exec(select(Consultation))).one()
        assert (consultation.slug, consultation.status, consultation.audience) == (
            slug,
            "open",
            "citizens",
        )
        assert (consultation.locales, consultation.question) == (["en"], {"en": conversation.topic})
        proposals = {p.ref: p for p in await session.exec(select(Proposal))}
        statuses = Counter(p.status for p in proposals.values())
        assert statuses == STATUSES[name]
        channel = polis_channel(slug)
        person = dict(
            await _rows(session, ChannelIdentity.identity_hash, ChannelIdentity.participant_id)
        )
        who = {
            voter: person[identity_hash(SECRET, channel, str(voter))]
            for voter in set(conversation.voters) | authors
        }
        for comment in conversation.comments:
            proposal = proposals[f"polis-{comment.id}"]
            assert (proposal.text, proposal.locale) == (comment.text, "en")
            assert proposal.status == ("refused" if comment.moderated == -1 else "accepted")
            # The moderator's seed comments are the organiser's: they have no author.
            assert proposal.author_id == (None if comment.seed else who[comment.author_id])
        # The votes are the latest votes of the export, one for one.
        ref = {p.id: p.ref for p in proposals.values()}
        key = {1: "agree", -1: "disagree", 0: "neutral"}
        expected = sorted(
            (who[voter], f"polis-{comment}", key[vote])
            for (voter, comment), vote in conversation.votes.items()
        )
        stored = await _rows(session, Vote.participant_id, Vote.proposal_id, Vote.key, Vote.trusted)
        assert sorted((p, ref[q], k) for p, q, k, _ in stored) == expected
        assert all(trusted for *_, trusted in stored)
        # The counters equal a recount.
        recount = Counter((q, k) for _, q, k, _ in stored)
        tallies = await _rows(session, Tally.proposal_id, Tally.key, Tally.trusted, Tally.count)
        assert tallies == sorted(
            (p.id, k, trusted, recount[p.id, k] if trusted else 0)
            for p in proposals.values()
            for k in COUNTED_KEYS
            for trusted in (False, True)
        )
        assert {p.id: p.vote_count for p in proposals.values()} == {
            p.id: sum(recount[p.id, k] for k in key.values()) for p in proposals.values()
        }
        assert (await session.exec(select(func.count()).select_from(Qualification))).one() == 0
        # Each vote was cast when votes.csv says (its latest time), to the millisecond.
        proposal_of = {int(p.ref[6:]): p.id for p in proposals.values()}
        cast = await _rows(session, Vote.participant_id, Vote.proposal_id, Vote.created_at)
        assert {(p, q): at for p, q, at in cast} == {
            (who[voter], proposal_of[comment]): polis_time(stamp)
            for (voter, comment), stamp in conversation.vote_times.items()
        }
        # Everyone joined (and their identity began) with their first vote or comment.
        earliest: dict[int, int] = {}
        activity = [(voter, stamp) for (voter, _), stamp in conversation.vote_times.items()]
        activity += [(c.author_id, c.timestamp) for c in conversation.comments]
        for voter, stamp in activity:
            if voter in who:
                earliest[voter] = min(stamp, earliest.get(voter, stamp))
        expected_joins = sorted((who[v], "polis", polis_time(t)) for v, t in earliest.items())
        joins = await _rows(
            session,
            Participation.participant_id,
            Participation.source,
            Participation.created_at,
            Participation.consented_at,
        )
        assert [(p, source, at) for p, source, at, _ in joins] == expected_joins
        assert all(consented == at for _, _, at, consented in joins)
        began = await _rows(session, Participant.id, Participant.created_at)
        assert began == [(p, at) for p, _, at in expected_joins]
    before = await _snapshot(sessions)
    clock.advance(days=1)
    again = await import_polis(sessions, SECRET, conversation, slug, "en", clock(), None)
    assert (again.proposals_created, again.proposals_updated, again.votes_imported) == (0, 0, 0)
    assert (again.votes_skipped, again.participants) == (total, first.participants)
    assert await _snapshot(sessions) == before


def _tiny(
    moderated: int = 1,
    votes: dict[tuple[int, int], int] | None = None,
    times: dict[tuple[int, int], int] | None = None,
) -> PolisConversation:
    comments = (
        PolisComment(0, 7, "We should plant trees", moderated, 1_000),
        PolisComment(1, 8, "We should open parks", 0, 2_000),
    )
    votes = {(1, 0): 1, (2, 0): -1, (2, 1): 0} if votes is None else votes
    voters = tuple(sorted({voter for voter, _ in votes}))
    return PolisConversation(
        comments, votes, voters, dict.fromkeys(voters), "Trees", "", vote_times=times or {}
    )


async def _joins_and_votes(
    session: AsyncSession,
) -> tuple[dict[str, datetime], dict[tuple[str, str], datetime]]:
    """Each imported person's join, by Polis number, and each vote's time, by (person, ref)."""
    number = dict(await _rows(session, ChannelIdentity.participant_id, ChannelIdentity.ref))
    joins = await _rows(session, Participation.participant_id, Participation.created_at)
    votes = await session.exec(
        select(Vote.participant_id, Proposal.ref, Vote.created_at).join(
            Proposal, col(Proposal.id) == col(Vote.proposal_id)
        )
    )
    return (
        {number[p]: at for p, at in joins},
        {(number[p], ref): at for p, ref, at in votes},
    )


DAY = 86_400_000  # milliseconds


async def test_votes_and_joins_keep_the_exports_times(sessions, clock: Clock) -> None:
    times = {(1, 0): 3 * DAY + 5_000, (2, 0): 1 * DAY, (2, 1): 1 * DAY + 9_000}
    await import_polis(sessions, SECRET, _tiny(times=times), "trees", "en", clock(), None)
    async with sessions() as session:
        joins, votes = await _joins_and_votes(session)
    assert votes == {
        ("1", "polis-0"): polis_time(3 * DAY + 5_000),
        ("2", "polis-0"): polis_time(DAY),
        ("2", "polis-1"): polis_time(DAY + 9_000),
    }
    # Voters join with their first vote, authors with their comment.
    assert joins == {
        "1": polis_time(3 * DAY + 5_000),
        "2": polis_time(DAY),
        "7": polis_time(1_000),
        "8": polis_time(2_000),
    }


async def test_without_votes_csv_votes_and_voters_date_from_the_import(
    sessions, clock: Clock
) -> None:
    """participants-votes.csv dates no vote: they are cast at the import, as before."""
    await import_polis(sessions, SECRET, _tiny(), "trees", "en", clock(), None)
    async with sessions() as session:
        joins, votes = await _joins_and_votes(session)
    assert set(votes.values()) == {clock()}
    assert joins == {"1": clock(), "2": clock(), "7": polis_time(1_000), "8": polis_time(2_000)}


async def test_the_live_page_spreads_over_the_exports_days(sessions, clock: Clock) -> None:
    conversation = read_polis(polis_dir("15-per-hour-seattle"))
    await import_polis(sessions, SECRET, conversation, "seattle", "en", clock(), None)
    async with sessions() as session:
        consultation = (await session.exec(select(Consultation))).one()
        live = await live_figures(session, consultation)
    stamps = conversation.vote_times.values()
    votes_per_day = Counter(polis_time(stamp).date().isoformat() for stamp in stamps)
    channel = polis_channel("seattle")
    assert live["votes_by_channel"] == [
        {"day": d, "series": channel, "count": n} for d, n in sorted(votes_per_day.items())
    ]
    assert len(votes_per_day) == 145  # from 2014 to 2019, not the day of the import
    assert [(row["day"], row["count"]) for row in live["votes_by_source"]] == sorted(
        votes_per_day.items()
    )
    joining = live["participants_by_source"]
    assert {row["series"] for row in joining} == {"polis"}
    assert sum(row["count"] for row in joining) == 339
    assert joining[0]["day"] == min(votes_per_day) and clock().date().isoformat() not in {
        row["day"] for row in joining
    }


async def test_an_import_from_before_participations_gets_them_again(sessions, clock: Clock) -> None:
    """A conversation imported when the import made no participations gets them on the next
    import; its votes stay as they were."""
    times = {(1, 0): 3_000, (2, 0): 4_000, (2, 1): 5_000}
    await import_polis(sessions, SECRET, _tiny(times=times), "trees", "en", clock(), None)
    async with sessions() as session, session.begin():
        joins, votes = await _joins_and_votes(session)
        await session.exec(delete(Participation))
    clock.advance(days=1)
    again = await import_polis(sessions, SECRET, _tiny(times=times), "trees", "en", clock(), None)
    assert again.votes_imported == 0
    async with sessions() as session:
        assert await _joins_and_votes(session) == (joins, votes)


async def test_a_newer_export_updates_proposals_and_adds_votes(sessions, clock: Clock) -> None:
    await import_polis(sessions, SECRET, _tiny(), "trees", "fr", clock(), None)
    newer = _tiny(moderated=-1, votes={(1, 0): -1, (2, 0): -1, (2, 1): 0, (3, 1): 1})
    summary = await import_polis(sessions, SECRET, newer, "trees", "fr", clock(), None)
    assert (summary.proposals_created, summary.proposals_updated) == (0, 1)
    assert (summary.participants, summary.votes_imported, summary.votes_skipped) == (5, 1, 3)
    async with sessions() as session:
        trees = (await session.exec(select(Proposal).where(Proposal.ref == "polis-0"))).one()
        assert (trees.status, trees.locale, trees.vote_count) == ("refused", "fr", 2)
        # A vote already imported is kept as it was: voter 1 still agrees.
        keys = sorted(await session.exec(select(Vote.key).where(Vote.proposal_id == trees.id)))
        assert keys == ["agree", "disagree"]


async def test_a_long_slug_still_fits_the_channel_column(sessions, clock: Clock) -> None:
    slug = "a-rather-long-conversation-name-from-a-directory"
    assert default_slug("A rather long conversation name, from a directory!") == slug
    summary = await import_polis(sessions, SECRET, _tiny(), slug, "en", clock(), None)
    assert summary.votes_imported == 3
    async with sessions() as session:
        channels = set(await session.exec(select(ChannelIdentity.channel)))
    assert channels == {polis_channel(slug)}
    assert len(polis_channel(slug)) <= 32 and polis_channel(slug) != polis_channel(slug + "s")


async def test_a_comment_too_long_for_a_proposal_is_refused(sessions, clock: Clock) -> None:
    tiny = _tiny()
    long = dataclasses.replace(tiny.comments[1], text="x" * 1001)
    conversation = dataclasses.replace(tiny, comments=(tiny.comments[0], long))
    message = "column comment-body: comment 1 has 1001 characters, longer than the 1000"
    with pytest.raises(PolisFormatError, match=message):
        await import_polis(sessions, SECRET, conversation, "trees", "en", clock(), None)
    async with sessions() as session:
        assert (await session.exec(select(Consultation))).first() is None


async def test_a_consultation_of_its_own_is_not_overwritten(
    sessions, clock: Clock, load_consultation: Loader
) -> None:
    await load_consultation()
    with pytest.raises(NotAPolisConsultation):
        await import_polis(sessions, SECRET, _tiny(), "elders", "en", clock(), None)
    async with sessions() as session:
        elders = (await session.exec(select(Consultation))).one()
    assert elders.locales == ["fr", "en"]


def test_the_command_imports_and_reports(database_url: str, tmp_path: Path) -> None:
    result = run(["import", "polis", str(polis_dir("15-per-hour-seattle"))], database_url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "Consultation '15-per-hour-seattle': 54 proposals created, 0 updated, "
        "339 participants, 2872 votes imported, 0 already there."
    )
    assert result.stderr.splitlines() == ["Importing votes 100%"]  # one transaction of votes


def test_a_broken_export_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "comments.csv").write_text(
        "timestamp,datetime,comment-id,author-id,agrees,disagrees,moderated,comment-body\n"
        "1000,x,0,1,0,0,1,Trees\n",
        encoding="utf-8",
    )
    (broken / "votes.csv").write_text(
        "timestamp,datetime,comment-id,voter-id,vote\n1000,x,0,1,1\n1001,x,0,2,yes\n"
    )
    url = f"sqlite:///{tmp_path / 'db'}"
    result = run(["import", "polis", str(broken)], url, tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "consult: votes.csv, line 3, column vote: expected 1, 0 or -1, got 'yes'\n"
    )
    missing = run(["import", "polis", str(tmp_path / "nowhere")], url, tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.startswith("consult: ") and "nowhere: not a directory" in missing.stderr


def test_the_command_refuses_an_unknown_locale_or_a_taken_slug(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db'}"
    seattle = str(polis_dir("15-per-hour-seattle"))
    unknown = run(["import", "polis", seattle, "--locale", "zz"], url, tmp_path)
    assert unknown.returncode == 2 and "--locale: invalid choice: 'zz'" in unknown.stderr
    elders = tmp_path / "elders.yaml"
    elders.write_text(yaml.safe_dump(consultation_data(), allow_unicode=True), encoding="utf-8")
    assert run(["consultation", "load", str(elders)], url, tmp_path).returncode == 0
    taken = run(
        ["import", "polis", seattle, "--slug", "elders"], url, tmp_path, language="fr_FR.UTF-8"
    )
    assert taken.returncode == 2 and "Traceback" not in taken.stderr
    assert "consult\u00a0: la consultation «\u00a0elders\u00a0» a déjà des" in taken.stderr

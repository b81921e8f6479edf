"""`consult export`: the Polis round trip on both shared conversations, results per proposal
in csv / json / xlsx, the HTML report, the audit log, no address in any of them, and an
organiser's mistakes said with exit code 2 and nothing written.

The shared conversations were gathered using the Polis software (compdemocracy.org/polis) and
are sub-licensed under CC BY 4.0 with Attribution to The Computational Democracy Project.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bots.exports import add_export_commands, run_export
from bots.polis_import import default_slug, import_polis
from bots.settings import Settings
from core.i18n import Translator
from core.identity import identity_hash
from core.models import AuditEntry, ChannelIdentity, Consultation, Participation, Proposal
from core.polis import read_polis
from core.results.export import COMMENTS_HEADER, numbering, segment_breakdown
from tests.bots.test_cli import run
from tests.conftest import SECRET, Loader
from tests.core.test_report import enrol, vote
from tests.polis_data import polis_dir
from tests.support import Clock

Sessions = async_sessionmaker[AsyncSession]
ADDRESSES = {"whatsapp": "+33612345678", "telegram": "5550001112", "slack": "U0EXPORTME"}


@pytest.fixture
def consult(database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    """`consult export ARGV...` in this process (the same parser and command as the CLI's):
    returns (exit code, stdout, stderr)."""
    parser = argparse.ArgumentParser()
    add_export_commands(parser.add_subparsers(dest="command"))
    settings = Settings(database_url=database_url, data_dir=tmp_path / "data")

    async def call(*argv: str, locale: str = "en") -> tuple[int, str, str]:
        args = parser.parse_args(["export", *argv])
        code = await run_export(settings, args, Translator(locale))
        out, err = capsys.readouterr()
        return code, out, err

    return call


def _first_line(path: Path) -> str:
    with path.open(encoding="utf-8") as file:
        return file.readline().rstrip("\n")


def _keys(path: Path) -> list[str]:
    with path.open(encoding="utf-8", newline="") as file:
        return [row[0] for row in csv.reader(file)]


@pytest.mark.parametrize("name", ["15-per-hour-seattle", "vtaiwan.uberx"])
async def test_polis_round_trip_keeps_ids_and_votes(
    sessions: Sessions, clock: Clock, consult: Any, tmp_path: Path, name: str
) -> None:
    """Every latest vote of the original export is in ours, with the same comment and
    participant ids; texts, authors, seeds and comment times too. What differs, by design:
    group-id and group-informed-consensus (our groups), votes.csv's history and times (each
    person's latest vote, when consult recorded it), moderated 0 (imported as accepted)."""
    original_dir = polis_dir(name)
    original = read_polis(original_dir)
    slug = default_slug(name)
    await import_polis(sessions, SECRET, original, slug, "en", clock())
    out = tmp_path / "out"
    code, said, _ = await consult("polis", slug, str(out))
    assert code == 0
    assert "opinion groups" in said
    ours = read_polis(out)
    assert ours.votes == original.votes
    assert set(ours.voters) >= {voter for voter, _ in original.votes}
    mine = {c.id: c for c in ours.comments}
    assert mine.keys() == {c.id for c in original.comments}
    for comment in original.comments:
        exported = mine[comment.id]
        assert (exported.text, exported.author_id, exported.seed, exported.timestamp) == (
            comment.text,
            comment.author_id,
            comment.seed,
            comment.timestamp,
        )
        assert exported.moderated == (-1 if comment.moderated == -1 else 1)
    # Headers as Polis writes them: the shared files' own lines (comments.csv adds the newer
    # exports' is-meta, is-seed and group-informed-consensus after the older columns).
    for file in ("votes.csv", "participants-votes.csv"):
        assert _first_line(out / file) == _first_line(original_dir / file), file
    assert COMMENTS_HEADER.startswith(_first_line(original_dir / "comments.csv"))
    assert _first_line(out / "comments.csv") == COMMENTS_HEADER
    assert _keys(out / "summary.csv") == _keys(original_dir / "summary.csv")
    with (out / "comments.csv").open(encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    accepted = [r for r in rows if r["moderated"] == "1"]
    assert all(0 < float(r["group-informed-consensus"]) < 1 for r in accepted)
    assert all(r["group-informed-consensus"] == "" for r in rows if r["moderated"] == "-1")
    # Our groups, numbered from 0 as Polis numbers its own; blank for the unclustered.
    assert {g for g in ours.groups.values()} <= {None, 0, 1, 2, 3, 4}
    assert any(g is not None for g in ours.groups.values())
    # A report on an imported conversation keeps the data's attribution.
    code, _, _ = await consult("report", slug, str(tmp_path / "report.html"))
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert code == 0 and "CC BY 4.0, The Computational Democracy Project" in page


async def _addressed(sessions: Sessions, load_consultation: Loader, clock: Clock) -> Consultation:
    """The elders' consultation with participants reachable at a phone number, a Telegram chat
    and a Slack user, a proposal whose text looks like a spreadsheet formula, and margins."""
    consultation = await load_consultation(
        settings={
            "sequence_size": 4,
            "summary_min_votes": 1,
            "min_segment_size": 2,
            "population": {"age": {"young": 0.5, "old": 0.5}},
        }
    )
    people = []
    for i, (channel, address) in enumerate(ADDRESSES.items()):
        person = await enrol(sessions, consultation, clock, {"age": "young" if i else "old"})
        async with sessions() as session, session.begin():
            session.add(
                ChannelIdentity(
                    channel=channel,
                    identity_hash=identity_hash(SECRET, channel, address),
                    address=address,
                    participant_id=person,
                    created_at=clock(),
                )
            )
        people.append(person)
    people += [await enrol(sessions, consultation, clock, {"age": "old"}) for _ in range(3)]
    for n, person in enumerate(people):
        for j in range(1, 5):
            clock.advance(seconds=20)
            await vote(sessions, clock, person, f"p{j}.en", ("agree", "disagree")[(n + j) % 2])
    return consultation


async def test_every_export_is_audited_and_names_nobody(
    sessions: Sessions, load_consultation: Loader, clock: Clock, consult: Any, tmp_path: Path
) -> None:
    consultation = await _addressed(sessions, load_consultation, clock)
    async with sessions() as session, session.begin():
        found = await session.exec(
            select(Participation)
            .where(Participation.consultation_id == consultation.id)
            .order_by(col(Participation.id))
        )
        for n, participation in enumerate(found):
            participation.source = "newsletter" if n < 4 else "poster"
            session.add(participation)
    targets = {
        "polis": tmp_path / "polis",
        "csv": tmp_path / "results.csv",
        "json": tmp_path / "results.json",
        "xlsx": tmp_path / "results.xlsx",
        "report": tmp_path / "report.html",
    }
    targets["polis"].mkdir()  # an empty folder is as good as a new one
    for kind, target in targets.items():
        where = [str(target)] if kind in ("polis", "report") else ["--out", str(target)]
        code, said, err = await consult(kind, "elders", *where)
        assert code == 0, err
        # Six people are too few for opinion groups: the export says so, and does not crash.
        assert "no groups" in said
    texts = [p.read_text(encoding="utf-8") for p in targets["polis"].iterdir()]
    texts += [targets[k].read_text(encoding="utf-8") for k in ("csv", "json", "report")]
    book = load_workbook(targets["xlsx"], read_only=True)
    texts += [
        " ".join(str(cell) for row in sheet.iter_rows(values_only=True) for cell in row)
        for sheet in book.worksheets
    ]
    async with sessions() as session:
        hashes = [i.identity_hash for i in await session.exec(select(ChannelIdentity))]
        audit = list(await session.exec(select(AuditEntry).where(AuditEntry.action == "export")))
    for text in texts:
        for secret in [*ADDRESSES.values(), *hashes]:
            assert secret not in text
    assert sorted(entry.detail["kind"] for entry in audit) == sorted(targets)
    assert all(entry.target.startswith("consultation:") for entry in audit)
    # The results per proposal: rates with intervals, weighted beside unweighted, segments.
    document = json.loads(targets["json"].read_text(encoding="utf-8"))
    assert document["opinion_groups"]["groups_reason"] == "too-few-participants"
    p1 = next(p for p in document["proposals"] if p["ref"] == "p1")
    assert p1["votes"] == 6 and p1["weighted"]["voters"] == 6
    assert p1["rates"]["agree"]["low"] <= p1["rates"]["agree"]["value"]
    segments = {(s["question"], s["option"]): s for s in p1["segments"]}
    assert {("age", "young"), ("age", "old"), ("source", "newsletter"), ("source", "poster")} <= (
        segments.keys()
    )
    assert segments["source", "newsletter"]["agree"] + segments["source", "newsletter"][
        "disagree"
    ] == pytest.approx(1)
    # One person per channel: fewer than min_segment_size (2), so no share is shown.
    assert all(segments["channel", name].get("suppressed") for name in ADDRESSES)
    with targets["csv"].open(encoding="utf-8") as file:
        rows = {row["ref"]: row for row in csv.DictReader(file)}
    assert float(rows["p1"]["weighted_agree"]) >= 0 and rows["p1"]["age=old_agree"] != ""
    page = targets["report"].read_text(encoding="utf-8")
    assert "<svg" in page and "@media print" in page and "<script" not in page
    assert "http://" not in page and "https://" not in page  # self-contained


async def test_report_in_french_and_a_formula_stays_text(
    sessions: Sessions, load_consultation: Loader, clock: Clock, consult: Any, tmp_path: Path
) -> None:
    consultation = await _addressed(sessions, load_consultation, clock)
    async with sessions() as session, session.begin():
        found = await session.exec(select(Proposal).where(Proposal.ref == "p1.fr"))
        proposal = found.one()
        proposal.text = '=HYPERLINK("http://example.invalid","clic")'
        session.add(proposal)
    assert consultation.id is not None
    # An organiser working in English asks for a report in French for their client.
    code, said, _ = await consult("report", "elders", str(tmp_path / "r.html"), "--locale", "fr")
    assert "écrit dans" in said
    assert code == 0
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert (
        '<html lang="fr"' in page
        and "Groupes d&#x27;opinion" in page
        and "pas d&#x27;accord" in page
    )
    code, _, _ = await consult("xlsx", "elders", "--out", str(tmp_path / "r.xlsx"), locale="fr")
    assert code == 0
    sheet = load_workbook(tmp_path / "r.xlsx")["proposals"]
    cell = next(c for row in sheet.iter_rows() for c in row if c.value and "HYPERLINK" in c.value)
    assert cell.data_type == "s"


async def test_bad_destinations_and_slugs_are_said_and_nothing_is_written(
    sessions: Sessions, load_consultation: Loader, clock: Clock, consult: Any, tmp_path: Path
) -> None:
    await _addressed(sessions, load_consultation, clock)
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine", encoding="utf-8")
    a_file = tmp_path / "a-file"
    a_file.write_text("x", encoding="utf-8")
    cases = [
        (("polis", "elders", str(full)), "is not empty"),
        (("polis", "elders", str(a_file)), "is a file"),
        (("polis", "elders", str(tmp_path / "missing" / "out")), "does not exist"),
        (("csv", "elders", "--out", str(a_file / "out.csv")), "does not exist"),
        (("report", "elders", str(full)), "is a folder"),
        (("polis", "nobody", str(tmp_path / "new")), "there is no consultation 'nobody'"),
        (("report", "elders", "/proc/consult-report.html"), "/proc"),
    ]
    for argv, message in cases:
        code, out, err = await consult(*argv)
        assert code == 2, argv
        assert message in err and out == "", (argv, err)
    # No staging copy is left behind, and nothing was created.
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())
    assert not (tmp_path / "new").exists() and not (tmp_path / "missing").exists()
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    async with sessions() as session:
        audit = list(await session.exec(select(AuditEntry).where(AuditEntry.action == "export")))
    assert audit == []


def test_the_command_line_says_what_to_fix(tmp_path: Path) -> None:
    """The command is wired into `consult` (one database is enough for that)."""
    result = run(["export", "json", "nobody"], f"sqlite:///{tmp_path / 'c.sqlite3'}", tmp_path)
    assert result.returncode == 2
    assert "there is no consultation 'nobody'" in result.stderr


def test_numbers_keep_imported_ids_and_give_new_ones_after_them() -> None:
    assert numbering([5, 7, 9], {}) == {5: 5, 7: 7, 9: 9}  # nothing imported: our own ids
    # Imported people keep their Polis number; a newcomer gets the next free one.
    assert numbering([5, 7, 9, 12], {5: 0, 7: 3}) == {5: 0, 7: 3, 9: 4, 12: 5}


def test_segments_hide_the_small_and_what_subtraction_would_reveal() -> None:
    segment_of = {1: "a", 2: "a", 3: "a", 4: "b", 5: "b", 6: "b", 7: "c", 8: None}
    votes = [(p, "p1", "agree" if p < 4 else "disagree") for p in range(1, 9)]
    found = segment_breakdown("source", segment_of, votes, ["p1"], minimum=3)
    by = {s["option"]: s for s in found["segments"]}
    assert by["c"] == {"option": "c", "suppressed": True, "fewer_than": 3}
    # a and b shown would leave c and the unknown (2 people) to subtraction: one of them goes
    # (the smallest; a, by name, between equals), and the rest is then 5 people.
    assert by["a"]["suppressed"] and by["b"]["participants"] == 3
    assert by["b"]["proposals"] == [{"ref": "p1", "agree": 0.0, "disagree": 1.0, "neutral": 0.0}]

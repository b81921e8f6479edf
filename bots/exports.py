"""`consult export polis|csv|json|xlsx|report SLUG ...`: a consultation's results out of consult.

- `polis SLUG DIR`: the Polis export format (`core.results.export`), a conversation imported
  with `consult import polis` coming back with its own comment and participant ids;
- `csv|json|xlsx SLUG [--out FILE]`: the results per proposal (zone, counts, rates with their
  intervals, weighted beside unweighted where the consultation declares margins, per opinion
  group, per answer to each profile question above `min_segment_size`); csv and json go to
  standard output without --out;
- `report SLUG FILE.html`: the page for the organiser's client (`core.results.report_page`).

What is written appears whole or not at all: files are written beside their destination under
a temporary name, then renamed. Each export adds an audit entry (action "export", the kind).
An organiser's mistake (unknown slug, a folder that is not empty, a path nobody can write)
is a message saying what to fix and exit code 2, before anything is computed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bots.bootstrap import runtime
from bots.errors import OrganiserError
from bots.settings import Settings
from core.definitions import consultation_by_slug, profile_questions_of, settings_of
from core.flow import utc_now
from core.i18n import Translator, available_locales, negotiate
from core.models import (
    ChannelIdentity,
    Consultation,
    Participant,
    Participation,
    Proposal,
    Vote,
)
from core.moderation import Actor, Source, record_action
from core.report import consultation_report, consultation_slugs, idea_refs
from core.results.consensus import counts_by_group, group_informed_consensus
from core.results.export import (
    POLIS_FILES,
    PolisComment,
    PolisVote,
    csv_text,
    flat_rows,
    numbering,
    polis_files,
    proposal_records,
    segment_breakdown,
)
from core.results.groups import (
    NO_PROPOSALS,
    NO_SPREAD,
    TOO_FEW_PARTICIPANTS,
    NoGroups,
    opinion_groups,
)
from core.results.matrix import vote_matrix
from core.results.recompute import groups_only, recompute_results
from core.results.report_page import report_page
from core.results.snapshot import (
    DEFAULT_SEED,
    latest_snapshot,
    previous_smoother,
)
from core.results.trust import TrustSummary, consultation_trust
from core.results.weighting import UnreachableMargin, Weighting, weighted_figures

USAGE_ERROR = 2
KINDS = ("polis", "csv", "json", "xlsx", "report")
_KEY = {"agree": 1, "disagree": -1, "neutral": 0}
_NO_GROUPS = {
    NO_PROPOSALS: "results.groups.no_proposals",
    TOO_FEW_PARTICIPANTS: "results.groups.too_few_participants",
    NO_SPREAD: "results.groups.no_spread",
}


def add_export_commands(commands: Any) -> None:
    """`consult export KIND SLUG ...` (see the module docstring)."""
    export = commands.add_parser("export", help="export a consultation's results")
    kinds = export.add_subparsers(dest="kind", required=True, metavar="KIND")
    polis = kinds.add_parser("polis", help="the Polis export format, into a new or empty folder")
    polis.add_argument("slug", metavar="SLUG")
    polis.add_argument("directory", type=Path, metavar="DIR")
    for kind, what in (
        ("csv", "one CSV row per proposal"),
        ("json", "one JSON document"),
        ("xlsx", "a spreadsheet (default file: SLUG-results.xlsx)"),
    ):
        table = kinds.add_parser(kind, help=f"results per proposal: {what}")
        table.add_argument("slug", metavar="SLUG")
        table.add_argument("--out", type=Path, metavar="FILE", help="where to write it")
        table.add_argument("--locale", help="the language of the proposals' texts")
    report = kinds.add_parser("report", help="a self-contained HTML report that prints well")
    report.add_argument("slug", metavar="SLUG")
    report.add_argument("file", type=Path, metavar="FILE.html")
    report.add_argument("--locale", help="the report's language (default: yours)")


def _actor() -> Actor:
    login = os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"
    return Actor(f"cli:{login}", Source.CLI)


# --- where it goes ----------------------------------------------------------------------------


def _writable_folder(folder: Path) -> None:
    """Raise OrganiserError unless files can be created in `folder`."""
    if not folder.is_dir():
        raise OrganiserError("export.no_folder", path=str(folder))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OrganiserError("export.unwritable", path=str(folder))


def _check_target(kind: str, target: Path | None) -> None:
    """Refuse, before anything is computed, a destination the export could not be written to."""
    if target is None:
        return
    if kind == "polis":
        if target.exists() and not target.is_dir():
            raise OrganiserError("export.not_a_folder", path=str(target))
        if target.is_dir() and any(target.iterdir()):
            raise OrganiserError("export.not_empty", path=str(target))
        _writable_folder(target.parent)
        return
    if target.is_dir():
        raise OrganiserError("export.is_a_folder", path=str(target))
    _writable_folder(target.parent)


def write_folder(target: Path, files: dict[str, str]) -> None:
    """Write `files` (name -> text) as the folder `target`, whole or not at all: into a
    temporary sibling first, renamed once complete (an empty `target` is replaced)."""
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name, text in files.items():
            (staging / name).write_text(text, encoding="utf-8", newline="")
        if target.is_dir():
            target.rmdir()  # empty, checked before: rmdir refuses otherwise
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_file(target: Path, write: Callable[[Path], None]) -> None:
    """Call `write(path)` on a temporary sibling of `target`, then rename it to `target`."""
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(handle)
    staging = Path(name)
    try:
        write(staging)
        os.chmod(staging, 0o644)
        staging.replace(target)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


# --- what goes in -----------------------------------------------------------------------------


async def _consultation(session: AsyncSession, slug: str) -> Consultation:
    consultation = await consultation_by_slug(session, slug)
    if consultation is None:
        known = ", ".join(await consultation_slugs(session)) or "-"
        raise OrganiserError("results.unknown_slug", slug=slug, known=known)
    return consultation


async def _groups(session: AsyncSession, consultation: Consultation) -> dict[str, Any]:
    """The latest stored opinion groups, computed and stored first if there are none."""
    assert consultation.id is not None
    snapshot = await latest_snapshot(session, consultation.id)
    if snapshot is None:  # the whole snapshot the scheduler would store, dashboard included
        snapshot = await recompute_results(session, consultation, utc_now())
    return {**groups_only(snapshot), "computed_at": snapshot.computed_at.isoformat()}


async def _results(
    session: AsyncSession, consultation: Consultation, locale: str
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """The report with trust and weighting (as `consult results --json`), its breakdown by
    each profile question, and the trust and weighting summaries."""
    trust = await consultation_trust(session, consultation)
    left_out = trust.untrusted if trust.summary.exclude_untrusted else frozenset()
    now = utc_now()
    report = await consultation_report(
        session, consultation, locale=locale, now=now, left_out=trust.left_out
    )
    try:
        weighting = await weighted_figures(session, consultation, left_out=left_out)
    except UnreachableMargin as error:
        raise OrganiserError(
            "results.unreachable_margin",
            slug=consultation.slug,
            question=error.question,
            option=error.option,
        ) from None
    breakdowns = []
    for question in profile_questions_of(consultation):
        by = await consultation_report(
            session,
            consultation,
            locale=locale,
            segment_by=question.id,
            now=now,
            left_out=trust.left_out,
        )
        assert by.breakdown is not None
        breakdowns.append(by.breakdown.as_dict())
    refs = [p.ref for p in report.proposals]
    breakdowns += await _other_segments(session, consultation, refs)
    results = report.as_dict() | {
        "trust": trust.summary.as_dict(),
        "weighting": None if weighting is None else weighting.as_dict(),
    }
    return results, breakdowns, {"trust": trust.summary, "weighting": weighting}


async def _other_segments(
    session: AsyncSession, consultation: Consultation, refs: list[str]
) -> list[dict[str, Any]]:
    """The vote shares by recruitment source, by channel and by locale (`min_segment_size`
    holds: `core.results.export.segment_breakdown`)."""
    assert consultation.id is not None
    proposals = list(
        await session.exec(
            select(Proposal).where(
                Proposal.consultation_id == consultation.id, Proposal.status == "accepted"
            )
        )
    )
    idea_of = idea_refs(proposals, consultation.locales)
    votes = [
        (participant, idea_of[proposal], key)
        for participant, proposal, key in await session.exec(
            select(Vote.participant_id, Vote.proposal_id, Vote.key).where(
                col(Vote.proposal_id).in_(list(idea_of))
            )
        )
    ]
    people = {participant for participant, _, _ in votes}
    source: dict[int, str | None] = dict.fromkeys(people)
    locale: dict[int, str | None] = dict.fromkeys(people)
    channel: dict[int, str | None] = dict.fromkeys(people)
    for participant, origin, language in await session.exec(
        select(Participation.participant_id, Participation.source, Participant.locale)
        .join(Participant, col(Participant.id) == col(Participation.participant_id))
        .where(Participation.consultation_id == consultation.id)
    ):
        source[participant], locale[participant] = origin, language
        channel.setdefault(participant, None)
    for participant, name in await session.exec(
        select(ChannelIdentity.participant_id, ChannelIdentity.channel)
        .where(col(ChannelIdentity.participant_id).in_(sorted(channel)))
        .order_by(col(ChannelIdentity.id).desc())  # the first identity wins
    ):
        channel[participant] = name
    minimum = settings_of(consultation).min_segment_size
    return [
        segment_breakdown(dimension, segment_of, votes, refs, minimum)
        for dimension, segment_of in (("source", source), ("channel", channel), ("locale", locale))
    ]


def _groups_said(groups: dict[str, Any], t: Translator) -> str:
    if groups["groups_reason"] is not None:
        return t("export.no_groups", reason=t(_NO_GROUPS[groups["groups_reason"]]))
    return t("export.groups", count=t.number(len(groups["groups"])))


# --- the Polis format -------------------------------------------------------------------------


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _polis_number(ref: str | None) -> int | None:
    if ref is None or not ref.startswith("polis-") or not ref[6:].isdigit():
        return None
    return int(ref[6:])


async def _polis_data(
    session: AsyncSession, consultation: Consultation, locale: str
) -> tuple[dict[str, str], dict[str, Any]]:
    """The four files of the Polis export of `consultation`, and figures to tell."""
    assert consultation.id is not None
    proposals = list(
        await session.exec(
            select(Proposal)
            .where(Proposal.consultation_id == consultation.id)
            .order_by(col(Proposal.id))
        )
    )
    idea_of = idea_refs(proposals, consultation.locales)
    ideas: dict[str, list[Proposal]] = {}
    for proposal in proposals:
        assert proposal.id is not None
        ideas.setdefault(idea_of[proposal.id], []).append(proposal)
    first_id = {ref: rows[0].id or 0 for ref, rows in ideas.items()}
    kept_comments = {
        first_id[ref]: n
        for ref, rows in ideas.items()
        if (n := _polis_number(rows[0].ref)) is not None
    }
    comment_of = numbering(first_id.values(), kept_comments)
    found = await session.exec(
        select(Vote.participant_id, Vote.proposal_id, Vote.key, Vote.updated_at)
        .join(Proposal, col(Proposal.id) == col(Vote.proposal_id))
        .where(Proposal.consultation_id == consultation.id)
        .order_by(col(Vote.updated_at), col(Vote.id))
    )
    latest: dict[tuple[int, str], tuple[int, int]] = {}
    for participant, proposal_id, key, at in found:
        latest[participant, idea_of[proposal_id]] = (_KEY.get(key, 0), _ms(at))
    people = {p for p, _ in latest} | {p.author_id for p in proposals if p.author_id is not None}
    refs = await session.exec(
        select(ChannelIdentity.participant_id, ChannelIdentity.ref).where(
            col(ChannelIdentity.participant_id).in_(sorted(people)),
            col(ChannelIdentity.ref).is_not(None),
        )
    )
    kept_people = {p: int(ref) for p, ref in refs if ref is not None and ref.isdigit()}
    number = numbering(people, kept_people)

    matrix = await vote_matrix(session, consultation)
    snapshot = await latest_snapshot(session, consultation.id)
    grouped = opinion_groups(matrix, seed=DEFAULT_SEED, previous=previous_smoother(snapshot))
    group_of: dict[int, int | None] = {}
    consensus: dict[str, float] = {}
    clustered, group_count, reason = 0, 0, None
    if isinstance(grouped, NoGroups):
        clustered, reason = grouped.clustered, grouped.reason
    else:
        labels = grouped.labels
        for participant, label in zip(matrix.participants.tolist(), labels.tolist(), strict=True):
            group_of[number[participant]] = None if label < 0 else int(label)
        agree, _ = group_informed_consensus(counts_by_group(matrix, labels, grouped.k))
        consensus = {ref: float(agree[c]) for c, ref in enumerate(matrix.refs)}
        clustered, group_count = int(np.sum(grouped.clustered)), grouped.k
    texts_in = negotiate(locale, consultation.locales) or consultation.default_locale
    comments = []
    for ref, rows in ideas.items():
        text = next((p.text for p in rows if p.locale == texts_in), rows[0].text)
        author = rows[0].author_id
        comments.append(
            PolisComment(
                id=comment_of[first_id[ref]],
                author=None if author is None else number[author],
                text=text,
                status=rows[0].status,
                timestamp=_ms(min(p.created_at for p in rows)),
                consensus=consensus.get(ref),
            )
        )
    comment_by_idea = {ref: comment_of[first_id[ref]] for ref in ideas}
    votes = [
        PolisVote(at, comment_by_idea[ref], number[participant], vote)
        for (participant, ref), (vote, at) in latest.items()
    ]
    files = polis_files(
        comments,
        votes,
        group_of,
        topic=consultation.question.get(texts_in, ""),
        voters_in_conversation=clustered,
        group_count=group_count,
    )
    figures = {
        "comments": len(comments),
        "participants": len({v.voter for v in votes}),
        "votes": len(votes),
        "groups_reason": reason,
        "groups": [None] * group_count,
    }
    return files, figures


# --- the command ------------------------------------------------------------------------------


def _write_xlsx(
    path: Path, header: list[str], rows: list[list[Any]], about: list[list[Any]]
) -> None:
    from openpyxl import Workbook  # only this export needs it
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    book = Workbook(write_only=True)
    for title, table in (("proposals", [header, *rows]), ("about", about)):
        sheet = book.create_sheet(title)
        for row in table:
            cells = []
            for value in row:
                if isinstance(value, str):
                    cell = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub("", value))
                    cell.data_type = "s"  # a text starting with "=" stays text, not a formula
                else:
                    cell = WriteOnlyCell(sheet, value=value)
                cells.append(cell)
            sheet.append(cells)
    book.save(path)


async def run_export(settings: Settings, args: argparse.Namespace, t: Translator) -> int:
    """Write the export `args.kind` asks for; an organiser's mistake is exit code 2."""
    kind: str = args.kind
    if getattr(args, "locale", None):  # what it says, too, in that language if we have it
        t = Translator(negotiate(args.locale, available_locales()) or t.locale)
    target: Path | None = {
        "polis": getattr(args, "directory", None),
        "report": getattr(args, "file", None),
    }.get(kind, getattr(args, "out", None))
    if kind == "xlsx" and target is None:
        target = Path(f"{args.slug}-results.xlsx")
    try:
        _check_target(kind, target)
        async with runtime(settings) as rt, rt.sessions() as session:
            consultation = await _consultation(session, args.slug)
            assert consultation.id is not None
            locale = negotiate(getattr(args, "locale", None) or t.locale, consultation.locales)
            locale = locale or consultation.default_locale
            said = await _export(session, consultation, kind, target, locale, t)
            await record_action(
                session,
                _actor(),
                "export",
                f"consultation:{consultation.id}",
                consultation.id,
                utc_now(),
                {"kind": kind},
            )
            await session.commit()
    except OrganiserError as problem:
        print(f"consult: {t(problem.msgid, **problem.values)}", file=sys.stderr)
        return USAGE_ERROR
    except OSError as error:  # the disk filled up, the folder went away meanwhile
        path = str(target) if target is not None else "-"
        print(
            f"consult: {t('export.failed', path=path, problem=error.strerror or error)}",
            file=sys.stderr,
        )
        return USAGE_ERROR
    print(said, file=sys.stderr if target is None else sys.stdout)
    return 0


async def _export(
    session: AsyncSession,
    consultation: Consultation,
    kind: str,
    target: Path | None,
    locale: str,
    t: Translator,
) -> str:
    """Compute and write one export; returns the sentence that says what was written."""
    if kind == "polis":
        assert target is not None
        files, figures = await _polis_data(session, consultation, locale)
        assert tuple(files) == POLIS_FILES
        write_folder(target, files)
        return t(
            "export.polis_done",
            slug=consultation.slug,
            path=str(target),
            comments=t.number(figures["comments"]),
            participants=t.number(figures["participants"]),
            votes=t.number(figures["votes"]),
            groups=_groups_said(
                {"groups_reason": figures["groups_reason"], "groups": figures["groups"]}, t
            ),
        )
    results, breakdowns, summaries = await _results(session, consultation, locale)
    groups = await _groups(session, consultation)
    said = t(
        "export.done",
        kind=kind,
        slug=consultation.slug,
        path=str(target) if target is not None else "-",
        groups=_groups_said(groups, t),
    )
    if kind == "report":
        assert target is not None
        reason = t(_NO_GROUPS.get(groups["groups_reason"] or "", "results.groups.no_spread"))
        lines = _notes(summaries, t)
        if any(p["ref"].startswith("polis-") for p in results["proposals"]):
            lines.append(t("report.polis_source"))  # the data's licence asks for attribution
        page = report_page(results, groups, t, no_groups_reason=reason, lines=lines)
        write_file(target, lambda path: _text(path, page))
        return said
    records = proposal_records(results, groups, breakdowns)
    if kind == "json":
        document = {
            "slug": results["slug"],
            "question": results["question"],
            "locale": results["locale"],
            "generated_at": results["generated_at"],
            "participants": results["participants"],
            "votes": results["votes"],
            "min_segment_size": settings_of(consultation).min_segment_size,
            "trust": results["trust"],
            "weighting": None
            if results["weighting"] is None
            else {k: v for k, v in results["weighting"].items() if k != "proposals"},
            "opinion_groups": {k: v for k, v in groups.items() if k not in ("proposals", "map")},
            "lists": {k: results[k] for k in ("consensus", "controversies", "rejected", "limbo")},
            "proposals": records,
        }
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        _emit(target, text)
        return said
    header, rows = flat_rows(records)
    if kind == "csv":
        _emit(target, csv_text(header, rows))
        return said
    assert target is not None
    about = [
        ["slug", results["slug"]],
        ["question", results["question"]],
        ["generated_at", results["generated_at"]],
        ["participants", results["participants"]],
        ["votes", results["votes"]],
        ["opinion_groups", _groups_said(groups, t)],
        *([line] for line in _notes(summaries, t)),
    ]
    write_file(target, lambda path: _write_xlsx(path, header, rows, about))
    return said


def _text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8", newline="")


def _emit(target: Path | None, text: str) -> None:
    if target is None:
        sys.stdout.write(text)
    else:
        write_file(target, lambda path: _text(path, text))


def _notes(summaries: dict[str, Any], t: Translator) -> list[str]:
    """The trust and weighting sentences, as `consult results` says them."""
    trust: TrustSummary = summaries["trust"]
    values = {
        "untrusted": t.number(trust.untrusted),
        "participants": t.number(trust.participants),
        "votes": t.number(trust.untrusted_votes),
        "reasons": ", ".join(f"{k} {t.number(n)}" for k, n in trust.reasons.items() if n) or "-",
    }
    msgid = "results.trust_left_out" if trust.exclude_untrusted else "results.trust_kept"
    lines = [t(msgid, **values)]
    weighting: Weighting | None = summaries["weighting"]
    if weighting is not None:
        lines += [
            t("results.section.weighting", questions=", ".join(weighting.questions)),
            t(
                "results.weighting",
                participants=t.number(weighting.participants - weighting.unplaced),
                effective=t.number(round(weighting.effective_size, 1)),
                design_effect=t.number(round(weighting.design_effect, 2)),
            ),
            t("results.weighting_unplaced", count=t.number(weighting.unplaced)),
        ]
    return lines

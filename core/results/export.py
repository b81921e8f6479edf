"""Exports as plain rows: the Polis export format, and the results per proposal.

Pure functions of plain data (no database, no files): `bots.exports` reads the consultation,
hands it here, and writes what comes back atomically.

The Polis format is the one `core.polis` reads (compdemocracy/polis, server's export route
and math/src/polismath/darwin/export.clj): the header lines of `votes.csv`,
`participants-votes.csv` and `summary.csv` are those of the conversations shipped in
`../shared/data/polis/`; `comments.csv` has their columns followed by the three newer Polis
exports add (`is-meta`, `is-seed`, `group-informed-consensus`). Ids are the platform's own
when the consultation was imported (a proposal's ref `polis-<id>`, an identity's ref), else
ours. What cannot be the original's:

- `votes.csv` holds each person's latest vote on each comment (the original keeps every vote
  ever cast), at the time consult recorded it (the import's time for imported votes);
- `datetime` is written in UTC (Polis writes the server's own time zone);
- `moderated` is 1 for an accepted proposal, -1 refused, withdrawn or archived, 0 pending or
  postponed (an unmoderated Polis comment, 0, was imported as accepted: it comes back as 1);
- `group-id` and `group-informed-consensus` are our opinion groups (`core.results.groups`),
  not Polis's; `agrees` / `disagrees` count latest votes only;
- `summary.csv` has no url and no views (consult does not know them).

No export names a person: participants are numbers, never a channel identifier or address.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

COMMENTS_HEADER = (
    "timestamp,datetime,comment-id,author-id,agrees,disagrees,moderated,comment-body"
    ",is-meta,is-seed,group-informed-consensus"
)
VOTES_HEADER = "timestamp,datetime,comment-id,voter-id,vote"
PARTICIPANTS_HEADER = "participant,group-id,n-comments,n-votes,n-agree,n-disagree"
SUMMARY_KEYS = (
    "topic",
    "url",
    "views",
    "voters",
    "voters-in-conv",
    "commenters",
    "comments",
    "groups",
    "conversation-description",
)
POLIS_FILES = ("comments.csv", "votes.csv", "participants-votes.csv", "summary.csv")
OWNER = 0  # Polis's conversation owner, the author of the seed comments (`core.polis`)

_MODERATED = {"accepted": 1, "pending": 0, "postponed": 0}  # anything else: -1


@dataclass(frozen=True)
class PolisComment:
    """A comment as exported: its Polis id, its author's number (None: the organiser's)."""

    id: int
    author: int | None
    text: str
    status: str  # a ProposalStatus value
    timestamp: int  # milliseconds since the epoch
    consensus: float | None = None  # group-informed consensus; None: not computed


@dataclass(frozen=True)
class PolisVote:
    timestamp: int  # milliseconds since the epoch
    comment: int
    voter: int
    vote: int  # 1 agree, -1 disagree, 0 pass


def moderated(status: str) -> int:
    """Polis's `moderated` for a proposal status (see the module docstring)."""
    return _MODERATED.get(status, -1)


def polis_datetime(timestamp: int) -> str:
    """Java's Date.toString, as Polis writes `datetime`, in UTC: "Tue Jun 30 07:49:52 UTC 2015"."""
    return datetime.fromtimestamp(timestamp / 1000, UTC).strftime("%a %b %d %H:%M:%S UTC %Y")


def numbering(own: Iterable[int], kept: Mapping[int, int]) -> dict[int, int]:
    """Export numbers for our ids: the `kept` (imported) number where there is one; else our
    id when nothing was imported; else the numbers after the largest kept one, in id order."""
    own = sorted(set(own))
    if not kept:
        return {i: i for i in own}
    after = max(kept.values()) + 1
    fresh = [i for i in own if i not in kept]
    return {**{i: kept[i] for i in own if i in kept}, **{i: after + n for n, i in enumerate(fresh)}}


def _csv(header: str, rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    out.write(header + "\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows(["" if value is None else value for value in row] for row in rows)
    return out.getvalue()


def _number(value: float) -> str:
    return f"{value:.6g}"


def polis_files(
    comments: Sequence[PolisComment],
    votes: Sequence[PolisVote],
    groups: Mapping[int, int | None],
    *,
    topic: str,
    description: str = "",
    voters_in_conversation: int,
    group_count: int,
) -> dict[str, str]:
    """The four files of a Polis export, name -> text (see the module docstring).

    `votes`: one per (voter, comment); `groups`: voter -> opinion group (None: not clustered).
    """
    ordered = sorted(comments, key=lambda c: c.id)
    tally: dict[int, list[int]] = {c.id: [0, 0] for c in ordered}
    per_voter: dict[int, dict[int, int]] = {}
    for v in votes:
        if v.vote == 1:
            tally[v.comment][0] += 1
        elif v.vote == -1:
            tally[v.comment][1] += 1
        per_voter.setdefault(v.voter, {})[v.comment] = v.vote
    comments_csv = _csv(
        COMMENTS_HEADER,
        (
            [
                c.timestamp,
                polis_datetime(c.timestamp),
                c.id,
                OWNER if c.author is None else c.author,
                tally[c.id][0],
                tally[c.id][1],
                moderated(c.status),
                c.text,
                "false",
                "true" if c.author is None else "false",
                None if c.consensus is None else _number(c.consensus),
            ]
            for c in ordered
        ),
    )
    votes_csv = _csv(
        VOTES_HEADER,
        (
            [v.timestamp, polis_datetime(v.timestamp), v.comment, v.voter, v.vote]
            for v in sorted(votes, key=lambda v: (v.comment, v.voter))
        ),
    )
    written: dict[int, int] = {}
    for c in ordered:
        author = OWNER if c.author is None else c.author
        written[author] = written.get(author, 0) + 1
    ids = [c.id for c in ordered]
    participants_csv = _csv(
        ",".join([PARTICIPANTS_HEADER, *(str(i) for i in ids)]),
        (
            [
                voter,
                groups.get(voter),
                written.get(voter, 0),
                len(cast),
                sum(1 for x in cast.values() if x == 1),
                sum(1 for x in cast.values() if x == -1),
                *(cast.get(i) for i in ids),
            ]
            for voter, cast in sorted(per_voter.items())
        ),
    )
    authors = {OWNER if c.author is None else c.author for c in ordered}
    summary = {
        "topic": topic,
        "url": "",
        "views": "",
        "voters": len(per_voter),
        "voters-in-conv": voters_in_conversation,
        "commenters": len(authors),
        "comments": len(ordered),
        "groups": group_count,
        "conversation-description": description,
    }
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([key, summary[key]] for key in SUMMARY_KEYS)
    return {
        "comments.csv": comments_csv,
        "votes.csv": votes_csv,
        "participants-votes.csv": participants_csv,
        "summary.csv": out.getvalue(),
    }


# --- results per proposal ---------------------------------------------------------------------


def _rate(prefix: str, estimate: Mapping[str, float] | None) -> dict[str, Any]:
    if estimate is None:
        return {f"{prefix}": None, f"{prefix}_low": None, f"{prefix}_high": None}
    return {
        prefix: estimate["value"],
        f"{prefix}_low": max(estimate["low"], 0.0),
        f"{prefix}_high": min(estimate["high"], 1.0),
    }


def proposal_records(
    results: Mapping[str, Any],
    groups: Mapping[str, Any],
    breakdowns: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """One nested record per accepted proposal, for JSON.

    `results` is `bots.results.Results.as_dict()` (the report, trust and weighting); `groups`
    the opinion groups' snapshot payload; `breakdowns` the report's breakdown by each profile
    question (segments below `min_segment_size` are already hidden there).
    """
    weighted = {p["ref"]: p for p in ((results.get("weighting") or {}).get("proposals") or [])}
    by_group = {p["ref"]: p for p in groups.get("proposals", [])}
    records = []
    for p in results["proposals"]:
        ref = p["ref"]
        g = by_group.get(ref, {})
        segments = []
        for breakdown in breakdowns:
            for segment in breakdown["segments"]:
                cell: dict[str, Any] = {
                    "question": breakdown["question"],
                    "option": segment["option"],
                }
                if segment.get("suppressed"):
                    cell["suppressed"] = True
                else:
                    shares = next((s for s in segment["proposals"] if s["ref"] == ref), None)
                    if shares is None or shares.get("suppressed"):
                        cell["suppressed"] = True
                    else:
                        cell |= {k: shares[k] for k in ("agree", "disagree", "neutral")}
                segments.append(cell)
        w = weighted.get(ref)
        records.append(
            {
                "ref": ref,
                "text": p["text"],
                "zone": p["zone"],
                "votes": p["votes"],
                "rates": {k: p[k] for k in ("agree", "disagree", "neutral")},
                "scores": {k: p[k] for k in ("top", "controversy", "rejection")},
                "weighted": None
                if w is None
                else {
                    "voters": w["voters"],
                    "effective_voters": w["effective_voters"],
                    "rates": {k: w[k] for k in ("agree", "disagree", "neutral")},
                },
                "groups": [
                    None
                    if counts is None
                    else dict(zip(("agree", "disagree", "pass"), counts, strict=True))
                    for counts in g.get("groups", [])
                ],
                "consensus": g.get("consensus"),
                "segments": segments,
            }
        )
    return records


def flat_rows(records: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """The records as one table (header, rows) for CSV and spreadsheets: a column per rate,
    interval bound, group count and segment share; blank where hidden or not computed."""
    flat: list[dict[str, Any]] = []
    for r in records:
        row: dict[str, Any] = {
            "ref": r["ref"],
            "text": r["text"],
            "zone": r["zone"],
            "votes": r["votes"],
        }
        for key in ("agree", "disagree", "neutral"):
            row |= _rate(key, r["rates"][key])
        for key in ("top", "controversy", "rejection"):
            row |= {
                key: r["scores"][key]["value"],
                f"{key}_margin": r["scores"][key]["value"] - r["scores"][key]["low"],
            }
        w = r["weighted"]
        row["weighted_voters"] = None if w is None else w["voters"]
        row["weighted_effective_voters"] = None if w is None else w["effective_voters"]
        for key in ("agree", "disagree", "neutral"):
            row |= _rate(f"weighted_{key}", None if w is None else w["rates"][key])
        consensus = r["consensus"] or {}
        row["group_consensus_agree"] = consensus.get("agree")
        row["group_consensus_disagree"] = consensus.get("disagree")
        for g, counts in enumerate(r["groups"]):
            for key in ("agree", "disagree", "pass"):
                row[f"group_{g}_{key}"] = None if counts is None else counts[key]
        for cell in r["segments"]:
            for key in ("agree", "disagree", "neutral"):
                row[f"{cell['question']}={cell['option']}_{key}"] = cell.get(key)
        flat.append(row)
    header: list[str] = []
    for row in flat:
        header += [key for key in row if key not in header]
    return header, [[row.get(key) for key in header] for row in flat]


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A table as CSV text (blank for None)."""
    return _csv(",".join(_quoted(h) for h in header), rows)


def _quoted(name: str) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow([name])
    return out.getvalue()


def _shown(sizes: Mapping[str, int], total: int, minimum: int) -> dict[str, int]:
    """The segments that may be shown: `minimum` people each, and leaving out of `total`
    nobody or at least `minimum` (as `core.report` hides segments: no small group is revealed
    by subtraction). Hides the smallest first."""
    shown = {name: size for name, size in sizes.items() if size >= minimum}
    while shown and 0 < total - sum(shown.values()) < minimum:
        del shown[min(shown, key=lambda name: (shown[name], name))]
    return shown


def segment_breakdown(
    dimension: str,
    segment_of: Mapping[int, str | None],
    votes: Iterable[tuple[int, str, str]],
    refs: Sequence[str],
    minimum: int,
) -> dict[str, Any]:
    """Vote shares per segment of one `dimension` (recruitment source, channel, locale), in the
    shape of the report's breakdown by a profile question.

    `segment_of`: participant id -> segment (None: unknown, counted in totals, never shown);
    `votes`: (participant id, proposal ref, key). Segments and cells of fewer than `minimum`
    people are hidden, with complementary suppression.
    """
    sizes: dict[str, int] = {}
    for segment in segment_of.values():
        if segment is not None:
            sizes[segment] = sizes.get(segment, 0) + 1
    tallies: dict[tuple[str, str], dict[str, int]] = {}
    voters: dict[str, int] = {}
    for participant, ref, key in votes:
        voters[ref] = voters.get(ref, 0) + 1
        segment = segment_of.get(participant)
        if segment is not None:
            cell = tallies.setdefault((segment, ref), {})
            cell[key] = cell.get(key, 0) + 1
    shown = _shown(sizes, len(segment_of), minimum)
    cells_shown = {
        ref: _shown(
            {s: sum(tallies.get((s, ref), {}).values()) for s in shown}, voters.get(ref, 0), minimum
        )
        for ref in refs
    }
    segments: list[dict[str, Any]] = []
    for segment in sorted(sizes):
        if segment not in shown:
            segments.append({"option": segment, "suppressed": True, "fewer_than": minimum})
            continue
        proposals = []
        for ref in refs:
            tally = tallies.get((segment, ref), {})
            n = sum(tally.values())
            if segment not in cells_shown[ref] or n == 0:
                proposals.append({"ref": ref, "suppressed": True})
            else:
                keys = ("agree", "disagree", "neutral")
                proposals.append({"ref": ref, **{k: round(tally.get(k, 0) / n, 4) for k in keys}})
        segments.append({"option": segment, "participants": shown[segment], "proposals": proposals})
    return {"question": dimension, "min_segment_size": minimum, "segments": segments}

"""Reading conversations in the Polis export format (no database: plain data out).

The format: `comments.csv` (timestamp, datetime, comment-id, author-id, agrees, disagrees,
moderated, comment-body), `votes.csv` (timestamp, datetime, comment-id, voter-id, vote; rows
not sorted, the latest vote of a voter on a comment wins), `participants-votes.csv`
(participant, group-id, ..., then one column per comment id, blank = not voted) and
`summary.csv` (key,value rows). Newer exports add columns (is-meta, is-seed,
group-informed-consensus, xid): is-seed is read, other unknown columns are ignored. Votes: 1
agree, -1 disagree, 0 pass.

Times are milliseconds since 1970, read from each file's timestamps in milliseconds (older
exports) or seconds (Polis's current server), as its `datetime` column shows. votes.csv dates
each vote, and the latest vote's time is
the vote's (`vote_times`); participants-votes.csv dates none, so an export without votes.csv
has votes without a time (an importer can only date them when it imports them).

Seed comments are the moderator's: the statements a conversation opens with (and those the
moderators add later, as vTaiwan's did, often restating participants' points). Newer exports
mark them in is-seed; older ones do not, and there they are the comments of participant 0 when
that participant wrote the conversation's first comment (not counting rejected ones): Polis
numbers participants from 0 as they join, and the owner, who creates the conversation, joins
first and seeds it before sharing it (so in both shipped conversations). A conversation opened
by anyone else has no seeds. Seeds become the organiser's proposals, without an author.

The two conversations shipped with the project for tests and benchmarks (vtaiwan.uberx and
15-per-hour-seattle) were gathered using the Polis software (compdemocracy.org/polis) and are
sub-licensed under CC BY 4.0 with Attribution to The Computational Democracy Project.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NoReturn

_NUMBER = re.compile(r"-?[0-9]+")
_VOTES = {"1": 1, "-1": -1, "0": 0, "1.0": 1, "-1.0": -1, "0.0": 0}  # ".0": spreadsheet exports
_FLAGS = {"true": True, "t": True, "1": True, "1.0": True}
_FLAGS |= {"false": False, "f": False, "0": False, "0.0": False, "": False}
OWNER = 0  # Polis numbers participants as they join: the conversation's owner joins first


class PolisFormatError(ValueError):
    """A file that does not follow the format; the message names the file, line and column."""


@dataclass(frozen=True)
class PolisComment:
    id: int
    author_id: int | None
    text: str
    moderated: int  # -1 rejected, 0 not moderated, 1 accepted
    timestamp: int  # milliseconds since the epoch
    seed: bool = False  # written by the moderator (see the module docstring)
    line: int = field(default=0, compare=False)  # in comments.csv, for errors found later

    @property
    def participant_author(self) -> int | None:
        """The participant who wrote it; None for the moderator's seeds (the organiser's)."""
        return None if self.seed else self.author_id


@dataclass(frozen=True)
class PolisConversation:
    comments: tuple[PolisComment, ...]  # in the file's order
    votes: dict[tuple[int, int], int]  # (voter id, comment id) -> latest vote: 1, -1 or 0
    voters: tuple[int, ...]  # sorted: everyone who voted or has a row in participants-votes
    groups: dict[int, int | None]  # voter id -> Polis opinion group (None: not clustered)
    topic: str  # "" when summary.csv is absent or has no topic
    description: str
    # (voter id, comment id) -> when the latest vote was cast, in milliseconds since 1970;
    # empty without votes.csv (see the module docstring)
    vote_times: dict[tuple[int, int], int] = field(default_factory=dict)


def _fail(path: Path, line: int, column: str | None, problem: str) -> NoReturn:
    where = f"{path.name}, line {line}" + (f", column {column}" if column else "")
    raise PolisFormatError(f"{where}: {problem}")


def _text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise PolisFormatError(f"{path.name}: cannot read it ({error.strerror})") from None
    try:
        return data.decode("utf-8-sig")  # a byte-order mark is what spreadsheets add
    except UnicodeDecodeError as error:
        # The error's position is counted after the byte-order mark, if any.
        before = data[: error.start + (3 if data.startswith(codecs.BOM_UTF8) else 0)]
        line_start = before.rfind(b"\n") + 1
        column = len(before[line_start:].decode("utf-8", "replace")) + 1
        problem = f"not UTF-8 text (byte {data[len(before)]:#04x} at character {column})"
        _fail(path, before.count(b"\n") + 1, None, problem)


def _records(path: Path, header: bool = True) -> Iterator[tuple[int, list[str]]]:
    """The CSV records of `path` with the line each starts on.

    Strict: a quote left open is an error, not a field that swallows the rest of the file. A
    NUL character is one too (text a database cannot store), its column named by the first
    record if it is a `header`.
    """
    content = _text(path)
    reader = csv.reader(io.StringIO(content, newline=""), strict=True)
    nul = "\x00" in content  # found once, then located
    line = 1
    names: list[str] = []
    try:
        for fields in reader:
            if nul:
                for i, value in enumerate(fields):
                    if "\x00" in value:
                        column = names[i] if i < len(names) else None
                        _fail(path, line, column, "a NUL character (\\0), which is not text")
            if header and line == 1:
                names = [name.strip() for name in fields]
            yield line, fields
            line = reader.line_num + 1
    except csv.Error as error:
        _fail(path, line, None, str(error))


def _table(
    path: Path, required: tuple[str, ...]
) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The header of a CSV file that has the `required` columns, and its (line, fields) rows.

    A row shorter than the header reads as blanks; a longer one is an error (a comma in an
    unquoted text would otherwise silently cut it).
    """
    records = _records(path)
    header = [name.strip() for name in next(records, (1, []))[1]]
    missing = [name for name in required if name not in header]
    if missing:
        _fail(path, 1, None, f"missing column {', '.join(missing)}")

    def rows() -> Iterator[tuple[int, list[str]]]:
        for line, fields in records:
            if len(fields) > len(header):
                problem = f"{len(fields)} fields, the header has {len(header)} (unquoted comma?)"
                _fail(path, line, None, problem)
            if fields:
                yield line, fields + [""] * (len(header) - len(fields))

    return header, rows()


def _integer(text: str, path: Path, line: int, column: str) -> int:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)  # "12.0", as spreadsheets write whole numbers
    except ValueError:
        number = 0.5
    if not number.is_integer():
        _fail(path, line, column, f"expected a whole number, got {text!r}")
    return int(number)


def _vote(text: str, path: Path, line: int, column: str) -> int:
    vote = _VOTES.get(text.strip())
    if vote is None:
        _fail(path, line, column, f"expected 1, 0 or -1, got {text.strip()!r}")
    return vote


def _comments(path: Path) -> tuple[PolisComment, ...]:
    header, rows = _table(
        path, ("timestamp", "comment-id", "author-id", "moderated", "comment-body")
    )
    at = {name: header.index(name) for name in header}
    listed = list(rows)
    unit = _unit(header, listed)
    comments: list[PolisComment] = []
    first_seen: dict[int, int] = {}
    for line, fields in listed:
        comment_id = _integer(fields[at["comment-id"]], path, line, "comment-id")
        if comment_id in first_seen:
            problem = f"comment {comment_id} is already on line {first_seen[comment_id]}"
            _fail(path, line, "comment-id", problem)
        first_seen[comment_id] = line
        author = fields[at["author-id"]]
        text = fields[at["comment-body"]]
        if not text.strip():
            _fail(path, line, "comment-body", "empty comment")
        comments.append(
            PolisComment(
                id=comment_id,
                author_id=_integer(author, path, line, "author-id") if author.strip() else None,
                text=text,
                moderated=_vote(fields[at["moderated"]], path, line, "moderated"),
                timestamp=_timestamp(fields[at["timestamp"]], path, line, unit),
                seed="is-seed" in at and _flag(fields[at["is-seed"]], path, line, "is-seed"),
                line=line,
            )
        )
    kept = [c for c in comments if c.moderated != -1]
    if "is-seed" in at or not kept:
        return tuple(comments)
    if min(kept, key=lambda c: (c.timestamp, c.id)).author_id != OWNER:
        return tuple(comments)  # opened by a participant: no seeds to tell apart
    return tuple(replace(c, seed=c.author_id == OWNER) for c in comments)


# The milliseconds since 1970 a date can hold: years 1 to 9999 (a comment becomes a proposal
# written then, a vote one cast then).
_EARLIEST, _LATEST = -62_135_596_800_000, 253_402_300_799_999


def _timestamp(text: str, path: Path, line: int, unit: int = 1) -> int:
    """A timestamp in milliseconds; `unit` is 1000 for a file whose timestamps are seconds."""
    stamp = _integer(text, path, line, "timestamp") * unit
    if not _EARLIEST <= stamp <= _LATEST:
        _fail(path, line, "timestamp", f"{stamp} is not a time in milliseconds since 1970")
    return stamp


_YEAR = re.compile(r"\b(1[89]\d\d|2\d\d\d)\b")
_YEAR_MS = 365.2425 * 86_400_000


def _unit(header: list[str], rows: list[tuple[int, list[str]]]) -> int:
    """1 when the file's timestamps are milliseconds, 1000 when they are seconds.

    Polis's older exports (the open data ones) write milliseconds; its current server writes
    seconds (compdemocracy/polis, server/src/routes/export.ts). The `datetime` column says
    which: the first row whose date names a year, and whose timestamp falls in that year read
    one way and not the other, decides; without one, milliseconds."""
    if "datetime" not in header:
        return 1
    stamp_at, date_at = header.index("timestamp"), header.index("datetime")
    for _, fields in rows:
        year = _YEAR.search(fields[date_at])
        try:
            stamp = float(fields[stamp_at])
        except ValueError:
            continue
        if year is None or not math.isfinite(stamp):
            continue
        written = int(year.group(1))
        as_ms, as_s = 1970 + stamp / _YEAR_MS, 1970 + stamp * 1000 / _YEAR_MS
        if abs(as_s - written) <= 1 < abs(as_ms - written):
            return 1000
        if abs(as_ms - written) <= 1:
            return 1
    return 1


def _flag(text: str, path: Path, line: int, column: str) -> bool:
    flag = _FLAGS.get(text.strip().casefold())
    if flag is None:
        _fail(path, line, column, f"expected true or false, got {text.strip()!r}")
    return flag


def _votes(path: Path, comment_ids: set[int]) -> dict[tuple[int, int], tuple[int, int]]:
    """(voter id, comment id) -> (time, vote) of the latest vote: rows are not in order."""
    header, rows = _table(path, ("timestamp", "comment-id", "voter-id", "vote"))
    stamp_at, comment_at = header.index("timestamp"), header.index("comment-id")
    voter_at, vote_at = header.index("voter-id"), header.index("vote")
    latest: dict[tuple[int, int], tuple[int, int]] = {}
    listed = list(rows)
    unit = _unit(header, listed)
    for line, fields in listed:
        comment = _integer(fields[comment_at], path, line, "comment-id")
        if comment not in comment_ids:
            _fail(path, line, "comment-id", f"no comment {comment} in comments.csv")
        key = (_integer(fields[voter_at], path, line, "voter-id"), comment)
        stamp = _timestamp(fields[stamp_at], path, line, unit)
        vote = _vote(fields[vote_at], path, line, "vote")
        if key not in latest or stamp >= latest[key][0]:  # equal times: the later row wins
            latest[key] = (stamp, vote)
    return latest


def _participants(
    path: Path, comment_ids: set[int], with_votes: bool
) -> tuple[dict[int, int | None], dict[tuple[int, int], int]]:
    """Opinion groups, and the votes too when `with_votes` (for exports without votes.csv)."""
    header, rows = _table(path, ("participant", "group-id"))
    voter_at, group_at = header.index("participant"), header.index("group-id")
    columns = [(i, name, int(name)) for i, name in enumerate(header) if _NUMBER.fullmatch(name)]
    groups: dict[int, int | None] = {}
    votes: dict[tuple[int, int], int] = {}
    first_seen: dict[int, int] = {}
    for line, fields in rows:
        voter = _integer(fields[voter_at], path, line, "participant")
        if voter in first_seen:
            _fail(path, line, "participant", f"{voter} is already on line {first_seen[voter]}")
        first_seen[voter] = line
        group = fields[group_at]
        groups[voter] = _integer(group, path, line, "group-id") if group.strip() else None
        if not with_votes:
            continue
        for i, name, comment in columns:
            if fields[i].strip():
                if comment not in comment_ids:
                    _fail(path, line, name, f"no comment {comment} in comments.csv")
                votes[voter, comment] = _vote(fields[i], path, line, name)
    return groups, votes


def _summary(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return {row[0].strip(): row[1] for _, row in _records(path, header=False) if len(row) >= 2}


def read_polis(directory: Path) -> PolisConversation:
    """Read a Polis export directory; raises PolisFormatError naming the file, line and column.

    Votes come from votes.csv (latest per voter and comment, with its time) or, without it,
    from the comment columns of participants-votes.csv (no time). A vote on a comment missing
    from comments.csv is an error.
    """
    if not directory.is_dir():
        raise PolisFormatError(f"{directory}: not a directory")
    if not (directory / "comments.csv").is_file():
        raise PolisFormatError(f"{directory}: no comments.csv (is it a Polis export?)")
    comments = _comments(directory / "comments.csv")
    ids = {comment.id for comment in comments}
    votes_path, participants_path = directory / "votes.csv", directory / "participants-votes.csv"
    if not votes_path.is_file() and not participants_path.is_file():
        raise PolisFormatError(f"{directory}: neither votes.csv nor participants-votes.csv")
    groups: dict[int, int | None] = {}
    votes: dict[tuple[int, int], int] = {}
    times: dict[tuple[int, int], int] = {}
    if participants_path.is_file():
        groups, votes = _participants(participants_path, ids, not votes_path.is_file())
    if votes_path.is_file():
        latest = _votes(votes_path, ids)
        votes = {key: vote for key, (_, vote) in latest.items()}
        times = {key: stamp for key, (stamp, _) in latest.items()}
    voters = tuple(sorted({voter for voter, _ in votes} | groups.keys()))
    summary = _summary(directory / "summary.csv")
    return PolisConversation(
        comments=comments,
        votes=votes,
        voters=voters,
        groups={voter: groups.get(voter) for voter in voters},
        topic=summary.get("topic", "").strip(),
        description=summary.get("conversation-description", summary.get("description", "")),
        vote_times=times,
    )

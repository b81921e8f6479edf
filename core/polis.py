"""Reading conversations in the Polis export format (no database: plain data out).

The format: `comments.csv` (timestamp, datetime, comment-id, author-id, agrees, disagrees,
moderated, comment-body), `votes.csv` (timestamp, datetime, comment-id, voter-id, vote; rows
not sorted, the latest vote of a voter on a comment wins), `participants-votes.csv`
(participant, group-id, ..., then one column per comment id) and `summary.csv` (key,value rows).
Newer exports add columns (is-meta, is-seed, group-informed-consensus, xid): unknown columns are
ignored. Votes: 1 agree, -1 disagree, 0 pass.

The two conversations shipped with the project for tests and benchmarks were gathered using the
Polis software (compdemocracy.org/polis) and are sub-licensed under CC BY 4.0 with Attribution
to The Computational Democracy Project.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

VOTES = {"1": 1, "-1": -1, "0": 0}


class PolisFormatError(ValueError):
    """A file that does not follow the format; the message names the file, line and column."""


@dataclass(frozen=True)
class PolisComment:
    id: int
    author_id: int | None
    text: str
    moderated: int  # -1 rejected, 0 not moderated, 1 accepted
    timestamp: int  # milliseconds


@dataclass(frozen=True)
class PolisConversation:
    comments: tuple[PolisComment, ...]
    votes: dict[tuple[int, int], int]  # (voter id, comment id) -> latest vote
    voters: tuple[int, ...]
    groups: dict[int, int | None]  # voter id -> Polis opinion group (None: not clustered)
    topic: str
    description: str


def _rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV file whose header has the `required` columns."""
    try:
        with path.open(encoding="utf-8", newline="") as source:
            reader = csv.DictReader(source)
            missing = [name for name in required if name not in (reader.fieldnames or [])]
            if missing:
                raise PolisFormatError(f"{path.name}, line 1: missing column {', '.join(missing)}")
            for row in reader:
                yield reader.line_num, row
    except UnicodeDecodeError:
        raise PolisFormatError(f"{path.name}: not UTF-8 text") from None
    except csv.Error as error:
        raise PolisFormatError(f"{path.name}: {error}") from None


def _integer(
    value: str | None, path: Path, line: int, column: str, blank_ok: bool = False
) -> int | None:
    text = (value or "").strip()
    if not text and blank_ok:
        return None
    try:
        return int(float(text)) if "." in text else int(text)
    except ValueError:
        raise PolisFormatError(
            f"{path.name}, line {line}, column {column}: expected a number, got {text!r}"
        ) from None


def _vote(value: str | None, path: Path, line: int, column: str) -> int:
    text = (value or "").strip()
    if text.endswith(".0"):
        text = text[:-2]
    if text not in VOTES:
        raise PolisFormatError(
            f"{path.name}, line {line}, column {column}: expected 1, 0 or -1, got {text!r}"
        )
    return VOTES[text]


def _comments(path: Path) -> tuple[PolisComment, ...]:
    comments = []
    required = ("timestamp", "comment-id", "author-id", "moderated", "comment-body")
    for line, row in _rows(path, required):
        comments.append(
            PolisComment(
                id=_required(row["comment-id"], path, line, "comment-id"),
                author_id=_integer(row["author-id"], path, line, "author-id", blank_ok=True),
                text=row["comment-body"] or "",
                moderated=_vote(row["moderated"], path, line, "moderated"),
                timestamp=_required(row["timestamp"], path, line, "timestamp"),
            )
        )
    return tuple(comments)


def _required(value: str | None, path: Path, line: int, column: str) -> int:
    number = _integer(value, path, line, column)
    assert number is not None
    return number


def _votes_file(path: Path) -> dict[tuple[int, int], int]:
    latest: dict[tuple[int, int], tuple[int, int]] = {}
    for line, row in _rows(path, ("timestamp", "comment-id", "voter-id", "vote")):
        key = (
            _required(row["voter-id"], path, line, "voter-id"),
            _required(row["comment-id"], path, line, "comment-id"),
        )
        stamp = _required(row["timestamp"], path, line, "timestamp")
        vote = _vote(row["vote"], path, line, "vote")
        if key not in latest or stamp >= latest[key][0]:
            latest[key] = (stamp, vote)
    return {key: vote for key, (_, vote) in latest.items()}


def _participants(
    path: Path, comment_ids: set[int]
) -> tuple[dict[int, int | None], dict[tuple[int, int], int]]:
    groups: dict[int, int | None] = {}
    votes: dict[tuple[int, int], int] = {}
    for line, row in _rows(path, ("participant", "group-id")):
        voter = _required(row["participant"], path, line, "participant")
        groups[voter] = _integer(row["group-id"], path, line, "group-id", blank_ok=True)
        for column, value in row.items():
            if column is None or not column.strip().lstrip("-").isdigit():
                continue
            comment = int(column)
            if comment in comment_ids and value and value.strip():
                votes[voter, comment] = _vote(value, path, line, column)
    return groups, votes


def _summary(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    with path.open(encoding="utf-8", newline="") as source:
        return {row[0]: row[1] for row in csv.reader(source) if len(row) >= 2}


def read_polis(directory: Path) -> PolisConversation:
    """Read a Polis export; raises PolisFormatError naming the file, line and column."""
    if not directory.is_dir():
        raise PolisFormatError(f"{directory}: not a directory")
    comments_path = directory / "comments.csv"
    if not comments_path.exists():
        raise PolisFormatError(f"{directory}: no comments.csv")
    comments = _comments(comments_path)
    ids = {c.id for c in comments}
    groups: dict[int, int | None] = {}
    votes: dict[tuple[int, int], int] = {}
    if (directory / "participants-votes.csv").exists():
        groups, votes = _participants(directory / "participants-votes.csv", ids)
    if (directory / "votes.csv").exists():
        votes = _votes_file(directory / "votes.csv")
    elif not groups:
        raise PolisFormatError(f"{directory}: neither votes.csv nor participants-votes.csv")
    voters = tuple(sorted({voter for voter, _ in votes} | set(groups)))
    summary = _summary(directory / "summary.csv")
    return PolisConversation(
        comments=comments,
        votes=votes,
        voters=voters,
        groups={voter: groups.get(voter) for voter in voters},
        topic=summary.get("topic", directory.name),
        description=summary.get("conversation-description", ""),
    )

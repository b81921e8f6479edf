"""Reading the Polis export format, both variants, and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.polis import PolisFormatError, read_polis
from tests.polis_data import polis_dir

COMMENTS = "timestamp,datetime,comment-id,author-id,agrees,disagrees,moderated,comment-body\n"


def test_reads_both_shared_conversations() -> None:
    taiwan = read_polis(polis_dir("vtaiwan.uberx"))
    assert len(taiwan.comments) == 197 and len(taiwan.voters) == 1921
    seattle = read_polis(polis_dir("15-per-hour-seattle"))
    assert len(seattle.comments) == 54 and len(seattle.voters) == 339
    assert seattle.topic == "$15/hour"
    assert {c.moderated for c in seattle.comments} == {-1, 0, 1}
    assert set(seattle.votes.values()) == {-1, 0, 1}


def _write(directory: Path, **files: str) -> Path:
    directory.mkdir()
    for name, text in files.items():
        (directory / f"{name.replace('_', '-')}.csv").write_text(text, encoding="utf-8")
    return directory


def test_the_latest_vote_wins_whatever_the_row_order(tmp_path: Path) -> None:
    conversation = read_polis(
        _write(
            tmp_path / "c",
            comments=COMMENTS + "1000,x,0,7,0,0,1,We should plant trees\n",
            votes="timestamp,datetime,comment-id,voter-id,vote\n"
            "3000,x,0,1,-1\n1000,x,0,1,1\n2000,x,0,2,0\n",
        )
    )
    assert conversation.votes == {(1, 0): -1, (2, 0): 0}
    assert conversation.comments[0].author_id == 7


def test_participants_votes_only_and_the_newer_variant(tmp_path: Path) -> None:
    conversation = read_polis(
        _write(
            tmp_path / "c",
            comments=COMMENTS.rstrip("\n")
            + ",is-meta,is-seed\n1000,x,0,7,0,0,0,Plant trees,false,true\n"
            + "1001,x,1,7,0,0,0,Open parks,false,false\n",
            participants_votes="participant,xid,group-id,n-comments,n-votes,0,1\n"
            "1,abc,0,0,2,1,-1\n2,def,,0,1,,0\n",
        )
    )
    assert conversation.votes == {(1, 0): 1, (1, 1): -1, (2, 1): 0}
    assert conversation.groups == {1: 0, 2: None}


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"votes": "timestamp,comment-id,voter-id,vote\n1,0,1,1\n"}, "no comments.csv"),
        ({"comments": "id,text\n"}, "comments.csv, line 1: missing column"),
        (
            {
                "comments": COMMENTS + "1000,x,0,7,0,0,1,Trees\n",
                "votes": "timestamp,datetime,comment-id,voter-id,vote\n1,x,0,1,1\n2,x,0,2,yes\n",
            },
            "votes.csv, line 3, column vote: expected 1, 0 or -1, got 'yes'",
        ),
        (
            {
                "comments": COMMENTS + "soon,x,0,7,0,0,1,Trees\n",
                "votes": "timestamp,datetime,comment-id,voter-id,vote\n",
            },
            "comments.csv, line 2, column timestamp: expected a number, got 'soon'",
        ),
        ({"comments": COMMENTS}, "neither votes.csv nor participants-votes.csv"),
    ],
)
def test_bad_files_name_the_file_line_and_column(tmp_path: Path, files, message) -> None:
    with pytest.raises(PolisFormatError) as caught:
        read_polis(_write(tmp_path / "c", **files))
    assert message in str(caught.value)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(PolisFormatError, match="not a directory"):
        read_polis(tmp_path / "missing")

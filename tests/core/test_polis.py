"""Reading the Polis export format: the shared conversations, both variants, and bad files."""

from __future__ import annotations

import csv
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.polis import PolisFormatError, read_polis
from tests.polis_data import polis_dir

COMMENTS = "timestamp,datetime,comment-id,author-id,agrees,disagrees,moderated,comment-body\n"
VOTES = "timestamp,datetime,comment-id,voter-id,vote\n"
PARTICIPANTS = "participant,group-id,n-comments,n-votes,n-agree,n-disagree,0,1\n"
TREES = COMMENTS + "1000,x,0,7,0,0,1,We should plant trees\n"


def _summary(directory: Path) -> dict[str, str]:
    with (directory / "summary.csv").open(encoding="utf-8", newline="") as source:
        return {row[0]: row[1] for row in csv.reader(source) if len(row) >= 2}


@pytest.mark.parametrize(
    ("name", "comments", "votes"),
    [("vtaiwan.uberx", 197, 49_443), ("15-per-hour-seattle", 54, 2_872)],
)
def test_reads_the_shared_conversations(name: str, comments: int, votes: int) -> None:
    directory = polis_dir(name)
    conversation = read_polis(directory)
    summary = _summary(directory)
    assert len(conversation.comments) == comments == int(summary["comments"])
    assert len(conversation.voters) == int(summary["voters"])
    assert list(conversation.voters) == sorted(conversation.voters)
    assert len(conversation.votes) == votes  # fewer than the rows: changed votes count once
    assert conversation.vote_times.keys() == conversation.votes.keys()
    assert set(conversation.votes.values()) == {-1, 0, 1}
    assert {c.moderated for c in conversation.comments} == {-1, 0, 1}
    assert conversation.topic == summary["topic"]
    assert conversation.description == summary["conversation-description"]
    clustered = {g for g in conversation.groups.values() if g is not None}
    assert len(clustered) == int(summary["groups"])
    assert None in conversation.groups.values()


@pytest.mark.parametrize("name", ["vtaiwan.uberx", "15-per-hour-seattle"])
def test_participants_votes_alone_give_the_same_votes(tmp_path: Path, name: str) -> None:
    full = read_polis(polis_dir(name))
    copy = tmp_path / name
    copy.mkdir()
    for file in ("comments.csv", "participants-votes.csv", "summary.csv"):
        shutil.copyfile(polis_dir(name) / file, copy / file)
    alone = read_polis(copy)
    assert alone.votes == full.votes
    assert alone.vote_times == {}  # participants-votes.csv dates no vote
    assert (alone.voters, alone.groups, alone.comments) == (full.voters, full.groups, full.comments)


def _write(directory: Path, **files: str | bytes) -> Path:
    directory.mkdir()
    for name, content in files.items():
        path = directory / f"{name.replace('_', '-')}.csv"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return directory


def test_the_latest_vote_wins_whatever_the_row_order(tmp_path: Path) -> None:
    conversation = read_polis(
        _write(
            tmp_path / "c",
            comments=TREES + "1500,x,1,8,0,0,0,We should open parks\n",
            votes=VOTES + "3000,x,0,1,-1\n1000,x,0,1,1\n2000,x,0,2,0\n"
            "2500,x,1,2,1\n4000,x,1,2,-1\n1200,x,1,2,0\n",
        )
    )
    assert conversation.votes == {(1, 0): -1, (2, 0): 0, (2, 1): -1}
    assert conversation.vote_times == {(1, 0): 3000, (2, 0): 2000, (2, 1): 4000}
    assert conversation.voters == (1, 2)
    assert conversation.groups == {1: None, 2: None}  # no participants-votes.csv: no groups
    assert (conversation.topic, conversation.description) == ("", "")  # no summary.csv
    first = conversation.comments[0]
    assert (first.id, first.author_id, first.moderated, first.timestamp) == (0, 7, 1, 1000)
    # No is-seed column, and participant 7 (not the owner, 0) opened it: no seeds.
    assert [c.seed for c in conversation.comments] == [False, False]


_ROWS = st.lists(
    st.tuples(
        st.integers(-3, 3),  # a time, often equal to another's
        st.integers(0, 1),  # the comment
        st.integers(0, 2),  # the voter
        st.sampled_from(["1", "-1", "0", "1.0"]),
    ),
    max_size=20,
)


@given(_ROWS)
def test_each_vote_is_the_latest_row_with_its_time(rows: list[tuple[int, int, int, str]]) -> None:
    """Whatever the order of votes.csv: each (voter, comment) gets its latest row's vote and
    time, and of rows at the same time the one further down the file."""
    expected: dict[tuple[int, int], tuple[int, int]] = {}
    for stamp, comment, voter, vote in rows:
        if (voter, comment) not in expected or stamp >= expected[voter, comment][0]:
            expected[voter, comment] = (stamp, int(float(vote)))
    lines = "".join(f"{stamp},x,{comment},{voter},{vote}\n" for stamp, comment, voter, vote in rows)
    with tempfile.TemporaryDirectory() as scratch:
        conversation = read_polis(
            _write(
                Path(scratch) / "c",
                comments=TREES + "1001,x,1,8,0,0,0,We should open parks\n",
                votes=VOTES + lines,
            )
        )
    assert conversation.votes == {key: vote for key, (_, vote) in expected.items()}
    assert conversation.vote_times == {key: stamp for key, (stamp, _) in expected.items()}


def test_without_is_seed_the_owners_comments_are_seeds_if_the_owner_opened(
    tmp_path: Path,
) -> None:
    conversation = read_polis(
        _write(
            tmp_path / "c",
            comments=COMMENTS
            + "900,x,5,3,0,0,-1,Rejected and first\n"  # rejected comments do not count
            + "1000,x,0,0,0,0,1,We should plant trees\n"
            + "1100,x,1,4,0,0,1,We should open parks\n"
            + "1200,x,2,0,0,0,1,We should water them\n",
            votes=VOTES + "1300,x,0,4,1\n",
        )
    )
    assert {c.id: c.seed for c in conversation.comments} == {5: False, 0: True, 1: False, 2: True}


def test_the_older_variant_with_participants_votes_only(tmp_path: Path) -> None:
    conversation = read_polis(
        _write(
            tmp_path / "c",
            comments=TREES + "1001,x,1,,0,0,-1,Open parks\n",
            participants_votes=PARTICIPANTS + "1,0,1,2,1,1,1,-1\n2,,0,1,0,0,,0\n3,1,0,0,0,0,,\n",
            summary='topic,Trees\nconversation-description,"Where, and\nwhich ones?"\n',
        )
    )
    assert conversation.votes == {(1, 0): 1, (1, 1): -1, (2, 1): 0}
    assert conversation.voters == (1, 2, 3)  # 3 is in the file without a vote
    assert conversation.groups == {1: 0, 2: None, 3: 1}
    assert conversation.comments[1].author_id is None
    assert (conversation.topic, conversation.description) == ("Trees", "Where, and\nwhich ones?")


def test_the_newer_variant_with_extra_columns(tmp_path: Path) -> None:
    conversation = read_polis(
        _write(
            tmp_path / "c",
            comments="timestamp,datetime,comment-id,author-id,agrees,disagrees,moderated,"
            "comment-body,is-meta,is-seed,group-informed-consensus\n"
            "1000,x,0,7,1,0,1,Plant trees,false,true,0.61\n"
            '1001,x,1,7,0,1,0,"Open parks, and\nkeep them open",false,false,0.2\n',
            votes=VOTES + "1000,x,0,1,1\n1001,x,1,1,-1\n",
            participants_votes="participant,xid,group-id,n-comments,n-votes,n-agree,"
            "n-disagree,0,1\n1,abc-1,0,0,2,1,1,1,-1\n",
        )
    )
    assert conversation.votes == {(1, 0): 1, (1, 1): -1}
    assert conversation.groups == {1: 0}
    assert conversation.comments[1].text == "Open parks, and\nkeep them open"
    # is-seed says which are the moderator's, even among one author's comments.
    assert [c.seed for c in conversation.comments] == [True, False]


@pytest.mark.parametrize(("name", "seeds"), [("vtaiwan.uberx", 46), ("15-per-hour-seattle", 13)])
def test_the_owners_comments_are_the_seeds(name: str, seeds: int) -> None:
    """Both shipped conversations predate is-seed: the owner (participant 0) opened them."""
    comments = read_polis(polis_dir(name)).comments
    assert min(comments, key=lambda c: c.timestamp).author_id == 0
    assert sum(c.seed for c in comments) == seeds
    assert all(c.seed == (c.author_id == 0) for c in comments)


def test_a_file_saved_by_a_spreadsheet(tmp_path: Path) -> None:
    """A byte-order mark, CRLF line ends and whole numbers written as 1.0."""
    conversation = read_polis(
        _write(
            tmp_path / "c",
            comments=("\ufeff" + TREES).replace("\n", "\r\n").encode(),
            votes=(VOTES + "1000.0,x,0.0,1.0,-1.0\r\n").encode("utf-8-sig"),
        )
    )
    assert conversation.votes == {(1, 0): -1}
    assert conversation.comments[0].text == "We should plant trees"


BAD_FILES = [
    (
        {
            "comments": COMMENTS.replace("\n", ",is-seed\n") + "1000,x,0,7,0,0,1,Trees,maybe\n",
            "votes": VOTES,
        },
        "comments.csv, line 2, column is-seed: expected true or false, got 'maybe'",
    ),
    ({"votes": VOTES}, "no comments.csv"),
    ({"comments": "id,text\n", "votes": VOTES}, "comments.csv, line 1: missing column timestamp"),
    ({"comments": TREES}, "neither votes.csv nor participants-votes.csv"),
    (
        {"comments": TREES, "votes": VOTES + "1,x,0,1,1\n2,x,0,2,yes\n"},
        "votes.csv, line 3, column vote: expected 1, 0 or -1, got 'yes'",
    ),
    (
        {"comments": COMMENTS + "soon,x,0,7,0,0,1,Trees\n", "votes": VOTES},
        "comments.csv, line 2, column timestamp: expected a whole number, got 'soon'",
    ),
    (
        {"comments": COMMENTS + "1000,x,0,7,0,0,maybe,Trees\n", "votes": VOTES},
        "comments.csv, line 2, column moderated: expected 1, 0 or -1, got 'maybe'",
    ),
    (
        {"comments": TREES + "1001,x,0,8,0,0,1,Parks\n", "votes": VOTES},
        "comments.csv, line 3, column comment-id: comment 0 is already on line 2",
    ),
    (
        {"comments": COMMENTS + "1000,x,0,7,0,0,1,Trees, and parks\n", "votes": VOTES},
        "comments.csv, line 2: 9 fields, the header has 8 (unquoted comma?)",
    ),
    (
        {"comments": COMMENTS + '1000,x,0,7,0,0,1,"Trees\nand"\n1001,x,1,7,0,0,1,\n'},
        "comments.csv, line 4, column comment-body: empty comment",
    ),
    (
        {"comments": TREES, "votes": VOTES + "1,x,9,1,1\n"},
        "votes.csv, line 2, column comment-id: no comment 9 in comments.csv",
    ),
    (
        {"comments": TREES, "votes": VOTES + "soon,x,0,1,1\n"},
        "votes.csv, line 2, column timestamp: expected a whole number, got 'soon'",
    ),
    (
        {"comments": TREES, "votes": VOTES + "253402300800000,x,0,1,1\n"},  # year 10000
        "votes.csv, line 2, column timestamp: 253402300800000 is not a time",
    ),
    (
        {"comments": TREES, "votes": VOTES + "1,x,0,1.5,1\n"},
        "votes.csv, line 2, column voter-id: expected a whole number, got '1.5'",
    ),
    (
        {"comments": TREES, "votes": VOTES.encode() + b"1,x,0,1,1\n2,\xe9t\xe9,0,2,1\n"},
        "votes.csv, line 3: not UTF-8 text",
    ),
    (
        {
            "comments": TREES,
            "participants_votes": PARTICIPANTS + "1,0,0,1,1,0,1,\n2,0,0,1,0,0,x,\n",
        },
        "participants-votes.csv, line 3, column 0: expected 1, 0 or -1, got 'x'",
    ),
    (
        {"comments": TREES, "participants_votes": PARTICIPANTS + "1,A,0,1,1,0,1,\n"},
        "participants-votes.csv, line 2, column group-id: expected a whole number, got 'A'",
    ),
    (
        {"comments": TREES, "participants_votes": PARTICIPANTS + "1,0,0,1,1,0,,1\n"},
        "participants-votes.csv, line 2, column 1: no comment 1 in comments.csv",
    ),
    (
        {"comments": TREES, "participants_votes": PARTICIPANTS + "1,0,0,0,0,0,,\n1,1,0,0,0,0,,\n"},
        "participants-votes.csv, line 3, column participant: 1 is already on line 2",
    ),
    (
        {"comments": COMMENTS + f'1000,x,0,7,0,0,1,"{"x" * 200_000}"\n', "votes": VOTES},
        "comments.csv, line 2: field larger than field limit",
    ),
    (
        {"comments": TREES, "votes": VOTES, "summary": b"topic,\xff\n"},
        "summary.csv, line 1: not UTF-8 text (byte 0xff at character 7)",
    ),
    (  # a quote left open would swallow the next rows into one comment
        {"comments": COMMENTS + '1000,x,0,7,0,0,1,"Trees\n1001,x,1,7,0,0,1,Parks\n'},
        "comments.csv, line 2: unexpected end of data",
    ),
    (
        {"comments": COMMENTS + "1000,x,0,7,0,0,1,Tre\x00es\n", "votes": VOTES},
        "comments.csv, line 2, column comment-body: a NUL character",
    ),
    (
        {"comments": COMMENTS + "99999999999999999999,x,0,7,0,0,1,Trees\n", "votes": VOTES},
        "comments.csv, line 2, column timestamp: 99999999999999999999 is not a time",
    ),
    (
        {"comments": COMMENTS + "-99999999999999999,x,0,7,0,0,1,Trees\n", "votes": VOTES},
        "comments.csv, line 2, column timestamp: -99999999999999999 is not a time",
    ),
    (
        {"comments": TREES, "votes": VOTES, "summary": 'topic,"Trees\nvoters,3\n'},
        "summary.csv, line 1: unexpected end of data",
    ),
    (
        {"comments": TREES, "votes": VOTES, "summary": "voters,3\ntopic,Tre\x00es\n"},
        "summary.csv, line 2: a NUL character",
    ),
    (
        {"comments": TREES, "votes": VOTES.encode() + b"1,x,0,1,1\n2,\xe9t\xe9,0,2,1\n"},
        "votes.csv, line 3: not UTF-8 text (byte 0xe9 at character 3)",
    ),
    (  # a byte-order mark is not counted in the position
        {"comments": TREES, "votes": b"\xef\xbb\xbf" + VOTES.encode() + b"2,\xe9t,0,2,1\n"},
        "votes.csv, line 2: not UTF-8 text (byte 0xe9 at character 3)",
    ),
]


@pytest.mark.parametrize(("files", "message"), BAD_FILES, ids=[m for _, m in BAD_FILES])
def test_bad_files_name_the_file_line_and_column(
    tmp_path: Path, files: dict[str, str | bytes], message: str
) -> None:
    with pytest.raises(PolisFormatError) as caught:
        read_polis(_write(tmp_path / "c", **files))
    assert message in str(caught.value)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(PolisFormatError, match="missing: not a directory"):
        read_polis(tmp_path / "missing")


def _in_seconds(source: Path, target: Path) -> None:
    """`source`'s comments.csv and votes.csv with their timestamps in seconds, as Polis's
    current server writes them (the shared exports are in milliseconds)."""
    shutil.copytree(source, target)
    for name in ("comments.csv", "votes.csv"):
        with (source / name).open(newline="", encoding="utf-8") as read:
            rows = list(csv.reader(read))
        at = rows[0].index("timestamp")
        for row in rows[1:]:
            row[at] = str(int(row[at]) // 1000)
        with (target / name).open("w", newline="", encoding="utf-8") as write:
            csv.writer(write).writerows(rows)


def test_timestamps_in_seconds_read_as_the_same_times(tmp_path: Path) -> None:
    source = polis_dir("15-per-hour-seattle")
    _in_seconds(source, tmp_path / "seconds")
    in_ms, in_s = read_polis(source), read_polis(tmp_path / "seconds")
    assert in_s.votes == in_ms.votes
    assert {k: t // 1000 for k, t in in_ms.vote_times.items()} == {
        k: t // 1000 for k, t in in_s.vote_times.items()
    }
    assert [c.timestamp // 1000 for c in in_s.comments] == [
        c.timestamp // 1000 for c in in_ms.comments
    ]
    assert min(in_s.vote_times.values()) > 1_400_000_000_000  # 2014, not January 1970

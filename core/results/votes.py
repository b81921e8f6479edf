"""A consultation's votes as columns, read once for everything a results snapshot computes.

Trust (`core.results.trust`), the opinion groups' matrix (`core.results.matrix`) and the Live
page's timelines (`core.results.live`) all go over every vote. At ten million votes, reading
them is most of the time, and a Python object per vote (an ORM row, a tuple, a datetime)
costs more than anything computed from them: so they are read once, straight into numpy
arrays, and each computation takes the arrays.

How they are read:

- SQLite: one integer per vote packs the participant, the proposal, the answer and whether it
  was cast in a sequence, and a second one carries the time in milliseconds, computed by
  SQLite's `julianday` (the stored text has microseconds; SQLite reads the first three
  digits). A span of vote ids comes back as one text of numbers (`group_concat`), which numpy
  parses in one call: handing over a tuple per vote cost more than SQLite's own work. The
  proposal index is kept out of the query ("+"): the votes are walked by id, and those on
  other consultations' proposals dropped afterwards. Id order is the last tie-break.
- PostgreSQL (asyncpg): a binary COPY of fixed-width fields, viewed as a numpy record array:
  no Python object per row at all.

The columns are sorted by participant, then time, then id: each participant's votes oldest
first, as trust reads them. A vote is unique per (participant, proposal).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Proposal

KEYS = ("agree", "disagree", "neutral")  # `key` codes: the index in this tuple


@dataclass(frozen=True)
class VoteColumns:
    """Every vote on a consultation's proposals (any status): `participant[i]` voted
    `KEYS[key[i]]` on `proposal[i]` at `at[i]` (milliseconds since the epoch, UTC), in a
    sequence when `in_sequence[i]` (`Vote.trusted`). Sorted by participant, time, id."""

    participant: NDArray[np.int64]
    proposal: NDArray[np.int64]
    key: NDArray[np.int8]
    at: NDArray[np.int64]
    in_sequence: NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.participant)

    def where(self, keep: NDArray[np.bool_]) -> VoteColumns:
        """The votes where `keep` holds, in the same order."""
        return VoteColumns(
            self.participant[keep],
            self.proposal[keep],
            self.key[keep],
            self.at[keep],
            self.in_sequence[keep],
        )

    def starts(self) -> NDArray[np.int64]:
        """Where each participant's votes start (and, last, the end): participant p's votes
        are `starts[i]:starts[i + 1]` for the i-th distinct participant."""
        if not len(self):
            return np.zeros(1, dtype=np.int64)
        change = np.flatnonzero(self.participant[1:] != self.participant[:-1]) + 1
        return np.concatenate(([0], change, [len(self)])).astype(np.int64)


# A stored time as milliseconds since the epoch, in each database's SQL. PostgreSQL's
# date_part is a double; extract() would be a numeric, three times slower over ten million.
MS_SQLITE = "CAST(round((julianday({}) - 2440587.5) * 86400000.0) AS INTEGER)"
MS_POSTGRES = "(date_part('epoch', {}) * 1000)::int8"
# The answer's code, as KEYS orders them.
_KEY = "CASE v.key WHEN 'agree' THEN 0 WHEN 'disagree' THEN 1 ELSE 2 END"
# SQLite: a span of vote ids as one text of numbers, two per vote (`{shift}`: the bits the
# proposal id and the answer take below the participant id in the first).
_SQLITE = (
    "SELECT group_concat(((v.participant_id << {shift}) | (v.proposal_id << 3) | (("
    + _KEY
    + ") << 1) | v.trusted) || ',' || "
    + MS_SQLITE.format("v.created_at")
    + ", ',') FROM vote v WHERE v.id BETWEEN ? AND ? AND +v.proposal_id BETWEEN ? AND ?"
)
# The same through the proposal index, in id order, for a consultation with a small part of
# the table.
_SQLITE_INDEXED = (
    "SELECT group_concat(packed, ',') FROM (SELECT ((v.participant_id << {shift}) "
    "| (v.proposal_id << 3) | (("
    + _KEY
    + ") << 1) | v.trusted) || ',' || "
    + MS_SQLITE.format("v.created_at")
    + " AS packed FROM vote v WHERE v.proposal_id IN "
    "(SELECT id FROM proposal WHERE consultation_id = ?) ORDER BY v.id)"
)
_POSTGRES = (
    "SELECT v.participant_id::int8, v.proposal_id::int8, "
    f"({_KEY})::int2, {MS_POSTGRES.format('v.created_at')}, v.trusted, v.id::int8 "
    "FROM vote v JOIN proposal p ON p.id = v.proposal_id "
    "WHERE p.consultation_id = $1 AND v.id BETWEEN $2 AND $3"
)
# PostgreSQL's binary COPY: a 19-byte header, then per row a field count (int16) and, per
# field, its length (int32) and its bytes (big-endian); the trailer is a -1 field count.
_COPY_HEADER = 19
_COPY_ROW = np.dtype(
    [
        ("n", ">i2"),
        ("l1", ">i4"),
        ("participant", ">i8"),
        ("l2", ">i4"),
        ("proposal", ">i8"),
        ("l3", ">i4"),
        ("key", ">i2"),
        ("l4", ">i4"),
        ("at", ">i8"),
        ("l5", ">i4"),
        ("in_sequence", "u1"),
        ("l6", ">i4"),
        ("id", ">i8"),
    ]
)


def find(
    ids: NDArray[np.int64], keys: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Where each of `keys` stands in the sorted `ids`, and whether it is there at all (where
    it is not, its position is meaningless): a lookup over millions without a dict."""
    if not len(ids):
        return np.zeros(len(keys), dtype=np.int64), np.zeros(len(keys), dtype=bool)
    at = np.minimum(np.searchsorted(ids, keys), len(ids) - 1)
    found: NDArray[np.bool_] = ids[at] == keys
    return at, found


def answer_columns(questions: int, first: int) -> tuple[str, str]:
    """The SQL columns picking each of `questions` profile answers out of a participation's
    `profile` (SQLite, PostgreSQL), the questions' ids bound from parameter number `first` on:
    the database reads the JSON, not Python, for millions of participants."""
    marks = range(first, first + questions)
    sqlite = ", ".join(f"json_extract(profile, '$.' || json_quote(?{n}))" for n in marks)
    postgres = ", ".join(f"profile ->> ${n}" for n in marks)
    return sqlite, postgres


SPAN = 500_000  # vote ids per SQLite read (its text is some 15 MB)


def usable_cores() -> int:
    """The cores this process may run on: its affinity where the platform has one (Linux),
    else every core."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def readers() -> int:
    """How many reads run at once: one per core this process may use, up to four."""
    return max(1, min(4, usable_cores()))


async def raw_rows(
    session: AsyncSession, sqlite: str, postgres: str, args: tuple[Any, ...]
) -> list[Any]:
    """The rows of a plain query through the driver itself (`sqlite` with ? marks, `postgres`
    with $n), for reads of millions of rows where the ORM's result objects would cost most
    of the time."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    if connection.dialect.name == "postgresql":
        return list(await driver.fetch(postgres, *args))
    cursor = driver.execute(sqlite, args)
    try:
        return list(cursor.fetchall())
    finally:
        cursor.close()


async def read_votes(
    session: AsyncSession, consultation_id: int, *, span: int = SPAN
) -> VoteColumns:
    """Every vote on the consultation's proposals, as columns (see the module docstring).

    The votes table is read in ranges of ids, several at once, each on a connection of its
    own (threads for SQLite, whose driver lets go of the interpreter while SQLite works;
    concurrent COPYs for PostgreSQL): they see what was committed when each began, not the
    caller's transaction's snapshot, so a vote cast or changed during the read may be in or
    out, never counted twice (a vote has one id). `span`: vote ids per SQLite read."""
    found = await session.exec(
        select(Proposal.id).where(Proposal.consultation_id == consultation_id)
    )
    ids = np.array([i for i in found.all() if i is not None], dtype=np.int64)
    empty = np.zeros(0, dtype=np.int64)
    bounds = await raw_rows(
        session, "SELECT min(id), max(id) FROM vote", "SELECT min(id), max(id) FROM vote", ()
    )
    first, last = bounds[0]
    if not len(ids) or first is None:
        return VoteColumns(empty, empty, empty.astype(np.int8), empty, empty.astype(bool))
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        step = -(-(last - first + 1) // readers())
        spans = [(lo, min(lo + step - 1, last)) for lo in range(first, last + 1, step)]
        pieces = await asyncio.gather(
            *(_copied(connection.engine, consultation_id, lo, hi) for lo, hi in spans)
        )
        rows = np.concatenate(pieces)
        del pieces
        participant = rows["participant"].astype(np.int64)
        proposal = rows["proposal"].astype(np.int64)
        key = rows["key"].astype(np.int8)
        at = rows["at"].astype(np.int64)
        in_sequence = rows["in_sequence"].astype(bool)
        tie = rows["id"].astype(np.int64)
        del rows
    else:
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        shift = int(ids.max()).bit_length() + 3
        (most,) = driver.execute(_MOST).fetchone()
        if int(most or 0).bit_length() + shift > 63:  # far beyond any consultation's size
            raise OverflowError("participant and proposal ids too large to pack in 63 bits")
        (_, _, path) = driver.execute("PRAGMA database_list").fetchone()
        query = _SQLITE.format(shift=shift)
        spans = [(lo, min(lo + span - 1, last)) for lo in range(first, last + 1, span)]
        bounds_of = (int(ids.min()), int(ids.max()))
        (counted,) = driver.execute(_COUNTED, (consultation_id,)).fetchone()
        if (counted or 0) * 4 < last - first + 1 or not path:
            # A small part of the table (or a database in memory, which only this connection
            # sees): through the proposal index, on this connection.
            text = driver.execute(_SQLITE_INDEXED.format(shift=shift), (consultation_id,))
            ordered = [_numbers(text.fetchone()[0])]
        else:  # a file, mostly this consultation's: several connections walk it by id at once
            share = readers()
            texts = await asyncio.gather(
                *(
                    asyncio.to_thread(_sqlite_spans, path, query, spans[i::share], bounds_of)
                    for i in range(share)
                )
            )
            ordered = [texts[i % share][i // share] for i in range(len(spans))]
        pairs = np.concatenate([empty, *ordered]).reshape(-1, 2)
        del ordered
        packed, at = pairs[:, 0], pairs[:, 1].copy()
        participant = packed >> shift
        proposal = (packed >> 3) & ((1 << (shift - 3)) - 1)
        key = ((packed >> 1) & 3).astype(np.int8)
        in_sequence = (packed & 1).astype(bool)
        del pairs, packed
        tie = np.arange(len(participant), dtype=np.int64)  # read in id order
        member = np.zeros(int(ids.max()) + 1, dtype=bool)
        member[ids] = True
        mine = member[proposal]  # the range of ids may hold other consultations' proposals
        participant, proposal, key = participant[mine], proposal[mine], key[mine]
        at, in_sequence, tie = at[mine], in_sequence[mine], tie[mine]
    order = np.lexsort((tie, at, participant))
    return VoteColumns(
        participant[order], proposal[order], key[order], at[order], in_sequence[order]
    )


_MOST = "SELECT max(id) FROM participant"
# About how many votes the consultation has, from its proposals' counters.
_COUNTED = (
    "SELECT sum(agree_count + disagree_count + neutral_count) FROM proposal "
    "WHERE consultation_id = ?"
)


def _numbers(text: str | None) -> NDArray[np.int64]:
    """The numbers of a `group_concat` text (two per vote)."""
    if not text:
        return np.zeros(0, dtype=np.int64)
    numbers: NDArray[np.int64] = np.fromstring(text, dtype=np.int64, sep=",")
    return numbers


def _sqlite_span(
    driver: sqlite3.Connection, query: str, span: tuple[int, int], proposals: tuple[int, int]
) -> NDArray[np.int64]:
    """One span of vote ids as numbers (two per vote)."""
    return _numbers(driver.execute(query, (*span, *proposals)).fetchone()[0])


def _sqlite_spans(
    path: str, query: str, spans: list[tuple[int, int]], proposals: tuple[int, int]
) -> list[NDArray[np.int64]]:
    """`spans` read on a connection of this thread's own."""
    reader = sqlite3.connect(path)
    try:
        return [_sqlite_span(reader, query, span, proposals) for span in spans]
    finally:
        reader.close()


async def _copied(
    engine: AsyncEngine, consultation_id: int, low: int, high: int
) -> NDArray[np.void]:
    """The consultation's votes with ids from `low` to `high`, through a binary COPY on a
    connection of its own, as `_COPY_ROW` records: no Python object per row."""
    received = bytearray()

    async def keep(chunk: bytes) -> None:
        received.extend(chunk)

    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        await driver.copy_from_query(
            _POSTGRES, consultation_id, low, high, output=keep, format="binary"
        )
    body = memoryview(received)[_COPY_HEADER : len(received) - 2]
    return np.frombuffer(body, _COPY_ROW).copy()

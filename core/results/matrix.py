"""The vote matrix: participants x proposals, agree +1 / disagree -1 / pass 0 / unseen missing.

As Polis's rating matrix (compdemocracy/polis, math/src/polismath/math/conversation.clj,
`:raw-rating-mat` and `:rating-mat`), with moderated-out comments left out: only accepted
proposals are columns. A seed proposal stored once per language (`p1.fr`, `p1.en`) is one
column, as in the report (`core.report`); a participant who voted on two translations of it
keeps one vote (the latest row read).

Stored as coordinates (row, column, value) in numpy arrays, read from the database in chunks:
at ten million votes, no Python object is kept per vote. A pass is a vote (it counts as seen),
so the values are never handed to a sparse format that might drop zeros: `centred` builds the
sparse matrix PCA needs, where zeros do not matter.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Consultation, Proposal, ProposalStatus

CHUNK = 200_000  # rows fetched at a time


@dataclass(frozen=True)
class VoteMatrix:
    """Votes as coordinates: `rows[i]`, `columns[i]`, `values[i]` is one vote.

    `participants[r]` is the participant id of row r (sorted), `refs[c]` the proposal ref of
    column c (an idea's ref, as the report names it). Rows are the participants who voted on
    an accepted proposal; columns every accepted proposal, voted or not.
    """

    participants: NDArray[np.int64]
    refs: tuple[str, ...]
    rows: NDArray[np.int32]
    columns: NDArray[np.int32]
    values: NDArray[np.int8]

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.participants), len(self.refs)

    @property
    def votes(self) -> int:
        return len(self.values)

    def votes_per_row(self) -> NDArray[np.int64]:
        """How many proposals each participant voted on (passes included)."""
        return np.bincount(self.rows, minlength=self.shape[0]).astype(np.int64)

    def column_means(self) -> NDArray[np.float64]:
        """Each column's mean vote over those who voted (0 for an unvoted column)."""
        n = self.shape[1]
        sums = np.bincount(self.columns, weights=self.values, minlength=n)
        counts = np.bincount(self.columns, minlength=n)
        return np.divide(sums, counts, out=np.zeros(n), where=counts > 0)

    def centred(self, means: NDArray[np.float64]) -> sp.csr_matrix:
        """The votes minus their column's mean, unseen entries 0: Polis's imputed and centred
        matrix (column-mean imputation, then centring, leaves 0 where nobody voted)."""
        data = self.values.astype(np.float64) - means[self.columns]
        return sp.csr_matrix((data, (self.rows, self.columns)), shape=self.shape)


def matrix_from_arrays(
    participants: NDArray[np.int64],
    proposals: NDArray[np.int64],
    values: NDArray[np.int8],
    refs: Sequence[str],
    *,
    unique: bool = False,
) -> VoteMatrix:
    """A matrix from votes given as (participant id, column index, value) arrays.

    Unless `unique` says each (participant, column) pair comes once, the last one wins.
    Participant ids must be non-negative (database ids).
    """
    if not unique and len(participants):
        order = np.lexsort((np.arange(len(participants)), proposals, participants))
        participants, proposals, values = participants[order], proposals[order], values[order]
        last = np.ones(len(participants), dtype=bool)
        last[:-1] = (participants[1:] != participants[:-1]) | (proposals[1:] != proposals[:-1])
        participants, proposals, values = participants[last], proposals[last], values[last]
    # Rows by a lookup over the ids' range, not a sort: linear in the votes.
    present = np.bincount(participants, minlength=1) > 0 if len(participants) else np.zeros(0)
    ids = np.flatnonzero(present)
    row_of = np.cumsum(present, dtype=np.int64) - 1
    return VoteMatrix(
        participants=ids.astype(np.int64),
        refs=tuple(refs),
        rows=row_of[participants].astype(np.int32),
        columns=proposals.astype(np.int32),
        values=values.astype(np.int8),
    )


def _idea(proposal_id: int, ref: str | None, locales: Sequence[str]) -> str:
    """The column a proposal falls in, named as `core.report` names ideas: the seed ref its
    translations share ("p1" for "p1.fr"), else its own ref, else "#<id>"."""
    if ref is None:
        return f"#{proposal_id}"
    stem, dot, lang = ref.rpartition(".")
    return stem if dot and lang in locales else ref


# Plain SQL read through the driver's own cursor: at ten million rows, the per-row cost of
# result objects is most of the time. PostgreSQL joins as it sees fit; SQLite would walk the
# proposals and fetch each one's votes through the index, jumping about the table, so it
# scans the votes in order instead ("+" keeps it off the index) over the range of the
# consultation's proposal ids, and the votes on other proposals are dropped afterwards.
_KEY = "CASE v.key WHEN 'agree' THEN 1 WHEN 'disagree' THEN -1 ELSE 0 END"
_POSTGRES_VOTES = (
    f"SELECT v.participant_id::int4, v.proposal_id::int4, ({_KEY})::int4 "
    "FROM vote v JOIN proposal p ON p.id = v.proposal_id "
    "WHERE p.consultation_id = $1 AND p.status = $2"
)
# PostgreSQL's binary COPY: a 19-byte header, then per row a field count (int16) and, per
# field, its length (int32) and its bytes; every field here is an int4, so rows are 26 bytes,
# and a -1 field count ends the data.
_COPY_HEADER = 19
_COPY_ROW = np.dtype(
    [
        ("n", ">i2"),
        ("l1", ">i4"),
        ("a", ">i4"),
        ("l2", ">i4"),
        ("b", ">i4"),
        ("l3", ">i4"),
        ("c", ">i4"),
    ]
)


async def _copied(driver: Any, query: str, args: tuple[Any, ...]) -> NDArray[np.int64]:
    """The (int4, int4, int4) rows of `query` through asyncpg's binary COPY, as an (n, 3)
    array: no Python object per row."""
    received = bytearray()

    async def keep(chunk: bytes) -> None:
        received.extend(chunk)

    await driver.copy_from_query(query, *args, output=keep, format="binary")
    body = memoryview(received)[_COPY_HEADER : len(received) - 2]
    rows = np.frombuffer(body, dtype=_COPY_ROW)
    return np.stack([rows["a"], rows["b"], rows["c"]], axis=1).astype(np.int64)


_SQLITE_VOTES = (
    f"SELECT v.participant_id, v.proposal_id, {_KEY} "
    "FROM vote v WHERE +v.proposal_id BETWEEN ? AND ?"
)


async def vote_matrix(
    session: AsyncSession, consultation: Consultation, *, trusted_only: bool = False
) -> VoteMatrix:
    """The consultation's vote matrix, read in chunks of CHUNK votes.

    `trusted_only` leaves out the votes marked untrusted (they are kept, not scored).
    """
    assert consultation.id is not None
    found = await session.exec(
        select(Proposal.id, Proposal.ref)
        .where(
            Proposal.consultation_id == consultation.id,
            Proposal.status == ProposalStatus.ACCEPTED,
        )
        .order_by(col(Proposal.id))
    )
    refs: dict[str, int] = {}
    column_of: dict[int, int] = {}
    for proposal_id, ref in found:
        assert proposal_id is not None
        column_of[proposal_id] = refs.setdefault(
            _idea(proposal_id, ref, consultation.locales), len(refs)
        )
    lookup = np.full(max(column_of, default=0) + 1, -1, dtype=np.int64)
    for proposal_id, column in column_of.items():
        lookup[proposal_id] = column
    trusted = " AND v.trusted" if trusted_only else ""
    parts: list[NDArray[np.int64]] = []

    def add(rows: Sequence[Sequence[int]]) -> None:
        flat = np.fromiter(itertools.chain.from_iterable(rows), np.int64, count=3 * len(rows))
        parts.append(flat.reshape(-1, 3))

    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    if not column_of:
        pass
    elif connection.dialect.name == "postgresql":  # asyncpg: COPY out, in binary
        args = (consultation.id, ProposalStatus.ACCEPTED.value)
        parts.append(await _copied(driver, _POSTGRES_VOTES + trusted, args))
    else:  # sqlite3, called inline (core.sqlite): its cursor reads lazily
        cursor = driver.execute(_SQLITE_VOTES + trusted, (min(column_of), max(column_of)))
        while rows := cursor.fetchmany(CHUNK):
            add(rows)
        cursor.close()
    triples = np.concatenate(parts) if parts else np.zeros((0, 3), dtype=np.int64)
    triples = triples[lookup[triples[:, 1]] >= 0]  # only accepted proposals of this one
    columns = lookup[triples[:, 1]]
    values = triples[:, 2].astype(np.int8)
    # A vote is unique per (participant, proposal); only translations can repeat a column.
    unique = len(refs) == len(column_of)
    return matrix_from_arrays(triples[:, 0], columns, values, list(refs), unique=unique)

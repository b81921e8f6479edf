"""The vote matrix: participants x proposals, agree +1 / disagree -1 / pass 0 / unseen missing.

As Polis's rating matrix (compdemocracy/polis, math/src/polismath/math/conversation.clj,
`:raw-rating-mat` and `:rating-mat`), with moderated-out comments left out: only accepted
proposals are columns. A seed proposal stored once per language (`p1.fr`, `p1.en`) is one
column, as in the report (`core.report`); a participant who voted on two translations of it
keeps one vote (the latest row read).

Stored as coordinates (row, column, value) in numpy arrays, built from the votes read as
columns (`core.results.votes`): at ten million votes, no Python object is kept per vote. A
pass is a vote (it counts as seen), so the values are never handed to a sparse format that
might drop zeros: `centred` builds the sparse matrix PCA needs, where zeros do not matter.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Consultation, Proposal, ProposalStatus
from core.report import idea_of
from core.results.votes import VoteColumns, read_votes

# The matrix's value of each answer, by `core.results.votes.KEYS` code: agree +1,
# disagree -1, pass 0.
_VALUES = np.array([1, -1, 0], dtype=np.int8)


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


async def vote_matrix(
    session: AsyncSession,
    consultation: Consultation,
    *,
    votes: VoteColumns | None = None,
    without: Collection[int] = (),
) -> VoteMatrix:
    """The consultation's vote matrix, from its votes read as columns (`core.results.votes`;
    read here unless the caller has them).

    `without`: participants whose votes are left out (untrusted ones, when the consultation
    leaves their votes out of the scores: they are kept, not counted).
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
            idea_of(proposal_id, ref, consultation.locales), len(refs)
        )
    if votes is None:
        votes = await read_votes(session, consultation.id)
    lookup = np.full(max(column_of, default=0) + 1, -1, dtype=np.int64)
    for proposal_id, column in column_of.items():
        lookup[proposal_id] = column
    inside = votes.proposal < len(lookup)
    columns = np.full(len(votes), -1, dtype=np.int64)
    columns[inside] = lookup[votes.proposal[inside]]
    keep = columns >= 0  # only accepted proposals
    if without:
        keep &= ~np.isin(votes.participant, np.fromiter(without, np.int64, len(without)))
    values = _VALUES[votes.key[keep]]
    # A vote is unique per (participant, proposal); only translations can repeat a column,
    # and the votes are in time order, so the last one kept is the latest.
    unique = len(refs) == len(column_of)
    return matrix_from_arrays(
        votes.participant[keep], columns[keep], values, list(refs), unique=unique
    )

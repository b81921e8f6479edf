"""Which opinion group a participant is in, worked out from their own votes when they ask.

Nobody's group is stored: a snapshot (`core.results.snapshot`) holds counts and refs only, and
its `projection` what the positions were projected with. `place` reads the participant's votes
on the snapshot's proposals and projects them as `core.results.groups.positions` projected
every row, Polis's sparsity-aware projection (compdemocracy/polis, math/src/polismath/math/
pca.clj, `sparsity-aware-project-ptpt`): (vote - column mean) . component over the proposals
voted on, times sqrt(proposals / proposals voted on). The participant's group is then that of
the nearest base cluster centre of the snapshot's map, which is how k-means assigned the
clustered participants (clusters.clj, `kmeans`: each point joins its nearest centre). No
group for someone below the clustering threshold (conversation.clj, `:in-conv`: min(7,
proposals) votes), when the snapshot has no groups (or predates `projection`), or when the
group is too small to be shown (`suppressed`).

Cost per request: `published_results` reads the latest snapshot's id (by the index on
consultation and time), under a millisecond; `place` reads the participant's votes (by the
index on participant) and projects them, O(their votes + base clusters). Only a snapshot this
process has not seen yet is read: the parts /results needs (projection, map, groups, the
report's consensus and controversy lists; about 50 bytes per proposal), picked out by the
database in three passes over the stored JSON rather than loading the whole payload with its
reports into Python. At 30,000 proposals (a 38 MB payload, reports in two languages) that
took about 1 s on SQLite and 2 s on PostgreSQL, once per snapshot and process: concurrent
requests wait for the one reading it, and the latest CACHED snapshots of each database are
kept. The cache holds published figures, never conversation state.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import JSON, String, column, func, true
from sqlalchemy import select as rows_of
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Consultation, Proposal, ProposalStatus, ResultSnapshot, Vote, VoteKey
from core.report import idea_of
from core.results.recompute import DASHBOARD

CACHED = 8  # snapshots kept parsed per database (the latest of the consultations asked about)
LISTED = 20  # refs kept of the consensus and controversy lists: a reply shows a few
_VALUE = {VoteKey.AGREE.value: 1.0, VoteKey.DISAGREE.value: -1.0}  # a pass counts as 0


@dataclass(frozen=True)
class Projection:
    """A snapshot's projection (see the module docstring): `columns` maps a proposal's ref to
    its column; `centres` are the base clusters' (x, y) and `groups` the group of each."""

    columns: Mapping[str, int]
    center: NDArray[np.float64]
    components: NDArray[np.float64]  # (2, columns)
    min_votes: int
    centres: NDArray[np.float64]
    groups: NDArray[np.int64]

    @classmethod
    def from_payload(
        cls, projection: Mapping[str, Any] | None, base: Sequence[Mapping[str, Any]] | None
    ) -> Projection | None:
        """The payload's `projection` and `map`; None without them (no groups, or a snapshot
        stored before version 2)."""
        if not projection or not base:
            return None
        return cls(
            columns={ref: c for c, ref in enumerate(projection["refs"])},
            center=np.asarray(projection["center"], dtype=np.float64),
            components=np.asarray(projection["components"], dtype=np.float64),
            min_votes=int(projection["min_votes"]),
            centres=np.asarray([(b["x"], b["y"]) for b in base], dtype=np.float64),
            groups=np.asarray([b["group"] for b in base], dtype=np.int64),
        )

    def position(self, columns: NDArray[np.int64], values: NDArray[np.float64]) -> NDArray[Any]:
        """Where one participant's votes (`values` on `columns`, each column once) fall on the
        map, as `core.results.groups.positions` placed the rows of the snapshot's matrix."""
        projected = self.components[:, columns] @ (values - self.center[columns])
        scale = np.sqrt(len(self.center) / max(len(columns), 1))
        return np.asarray(projected * scale, dtype=np.float64)

    def group_at(self, point: NDArray[np.float64]) -> int:
        """The group of the base cluster whose centre is nearest to `point`."""
        return int(self.groups[np.argmin(((self.centres - point) ** 2).sum(axis=1))])


@dataclass(frozen=True)
class OpinionGroup:
    """A group shown to its members: its size and its representative statements' refs, where
    it agrees more than the others and where it disagrees more, best first."""

    id: int
    size: int
    agrees: tuple[str, ...]
    disagrees: tuple[str, ...]


@dataclass(frozen=True)
class PublishedResults:
    """What a participant's /results reads of one snapshot: the report's consensus and
    controversies (refs, best first; the majority's agreed ones for a snapshot without the
    report), the groups that may be shown, and the projection to place someone in one."""

    snapshot_id: int
    consensus: tuple[str, ...]
    controversies: tuple[str, ...]
    groups: Mapping[int, OpinionGroup]
    projection: Projection | None


@dataclass(frozen=True)
class Placement:
    """A participant's group (None: not placed), and how many more of the snapshot's proposals
    they need to vote on to be placed (0 when they have voted on enough, or groups are not
    where voting more would help: none, or theirs too small)."""

    group: OpinionGroup | None
    votes_needed: int = 0


_cache: weakref.WeakKeyDictionary[Any, OrderedDict[int, PublishedResults]] = (
    weakref.WeakKeyDictionary()
)
_reading: dict[tuple[int, int], asyncio.Future[PublishedResults | None]] = {}
_SNAPSHOT = SQLModel.metadata.tables["resultsnapshot"]
_TOP = ("projection", "map", "groups", "majority_agree")  # the payload's keys /results reads


def _shown_groups(groups: Sequence[Mapping[str, Any]] | None) -> dict[int, OpinionGroup]:
    shown = {}
    for group in groups or []:
        if group.get("suppressed"):
            continue
        chosen = group.get("representative") or []
        shown[int(group["id"])] = OpinionGroup(
            id=int(group["id"]),
            size=int(group["size"]),
            agrees=tuple(r["ref"] for r in chosen if r["repful_for"] == "agree"),
            disagrees=tuple(r["ref"] for r in chosen if r["repful_for"] == "disagree"),
        )
    return shown


async def published_results(
    session: AsyncSession, consultation: Consultation
) -> PublishedResults | None:
    """What /results shows of the consultation's latest snapshot; None before the first one.
    Parsed once per snapshot and process (see the module docstring for the cost)."""
    assert consultation.id is not None
    latest = await session.exec(
        select(ResultSnapshot.id)
        .where(ResultSnapshot.consultation_id == consultation.id)
        .order_by(col(ResultSnapshot.computed_at).desc(), col(ResultSnapshot.id).desc())
        .limit(1)
    )
    snapshot_id = latest.first()
    if snapshot_id is None:
        return None
    # Per database: two databases (tests, or a second engine) may hold the same snapshot id.
    engine = session.get_bind()
    kept = _cache.setdefault(engine, OrderedDict())
    if snapshot_id in kept:
        kept.move_to_end(snapshot_id)
        return kept[snapshot_id]
    # A new snapshot is asked for by many at once: one request of the process reads it.
    key = (id(engine), snapshot_id)
    pending = _reading.get(key)
    if pending is not None:
        shared = await asyncio.shield(pending)
        if shared is not None:
            return shared  # else its reader failed: read it here
    reading: asyncio.Future[PublishedResults | None] = asyncio.get_running_loop().create_future()
    _reading[key] = reading
    results: PublishedResults | None = None
    try:
        results = await _read(session, consultation, snapshot_id)
    finally:
        reading.set_result(results)
        if _reading.get(key) is reading:
            del _reading[key]
    kept[snapshot_id] = results
    while len(kept) > CACHED:
        kept.popitem(last=False)
    return results


async def _read(
    session: AsyncSession, consultation: Consultation, snapshot_id: int
) -> PublishedResults:
    """The parts of one snapshot that /results needs, picked out by the database: the payload's
    top-level keys in one pass (json_each), the report's two lists by their paths, never the
    whole payload with its reports (each pass parses the stored JSON once)."""
    connection = await session.connection()
    each = func.json_each(_SNAPSHOT.c.payload).table_valued(
        column("key", String), column("value", JSON)
    )
    top = await connection.execute(
        rows_of(each.c.key, each.c.value)
        .select_from(_SNAPSHOT.join(each, true()))
        .where(_SNAPSHOT.c.id == snapshot_id, each.c.key.in_(_TOP))
    )
    parts: dict[str, Any] = {key: value for key, value in top.all()}
    report = (DASHBOARD, "reports", "all", consultation.default_locale)
    lists = await connection.execute(
        rows_of(
            _SNAPSHOT.c.payload[(*report, "consensus")],
            _SNAPSHOT.c.payload[(*report, "controversies")],
        ).where(_SNAPSHOT.c.id == snapshot_id)
    )
    consensus, controversies = lists.one()
    if consensus is None:  # stored without the report (`consult results --refresh`)
        consensus, controversies = parts.get("majority_agree"), []
    return PublishedResults(
        snapshot_id=snapshot_id,
        consensus=tuple((consensus or [])[:LISTED]),
        controversies=tuple((controversies or [])[:LISTED]),
        groups=_shown_groups(parts.get("groups")),
        projection=Projection.from_payload(parts.get("projection"), parts.get("map")),
    )


async def place(
    session: AsyncSession,
    participant_id: int,
    consultation: Consultation,
    results: PublishedResults,
) -> Placement:
    """The participant's opinion group in `results`, from their votes on its accepted
    proposals (every vote they cast, trusted or not: it is their own view they are shown)."""
    projection = results.projection
    if projection is None:
        return Placement(None)
    found = await session.exec(
        select(Proposal.id, Proposal.ref, Vote.key)
        .join(Vote, col(Vote.proposal_id) == col(Proposal.id))
        .where(
            Vote.participant_id == participant_id,
            Proposal.consultation_id == consultation.id,
            Proposal.status == ProposalStatus.ACCEPTED,
        )
        .order_by(col(Vote.updated_at), col(Vote.id))
    )
    votes: dict[int, float] = {}  # by column: a translation voted on later wins, as in the matrix
    for proposal_id, ref, key in found:
        assert proposal_id is not None
        # The column as `core.results.matrix` names it; None: a proposal the snapshot lacks.
        column = projection.columns.get(idea_of(proposal_id, ref, consultation.locales))
        if column is not None:
            votes[column] = _VALUE.get(key, 0.0)
    if len(votes) < projection.min_votes:
        return Placement(None, projection.min_votes - len(votes))
    columns = np.fromiter(votes, dtype=np.int64, count=len(votes))
    values = np.fromiter(votes.values(), dtype=np.float64, count=len(votes))
    group = projection.group_at(projection.position(columns, values))
    return Placement(results.groups.get(group))

"""Results snapshots: opinion groups and what they agree on, computed once and stored.

`refresh_snapshot` reads the votes (`core.results.matrix`), finds the groups
(`core.results.groups`, continuing the k smoother of the latest snapshot), counts and ranks
(`core.results.consensus`) and adds a `ResultSnapshot` row; the dashboard, the API and
`consult results` read the latest with `latest_snapshot` and never recompute on a page view.

The payload (JSON, `VERSION` 2):

- `participants`, `votes`, `clustered`: counts of the matrix; `groups_reason`: null, or why
  there are no groups (`core.results.groups` codes);
- `k`: the chosen k, the silhouette of each k tried, and the smoother to continue;
- `groups`: per group its id, size and representative statements; a group of fewer than the
  consultation's `min_segment_size` people shows neither (`suppressed`), as segments do; a
  group keeps its id from one snapshot to the next (`continued`);
- `map`: the base clusters (x, y, size, group), the opinion map Polis draws; no person's
  position;
- `projection` (since version 2; null without groups): what places a participant in a group
  later from their own votes (`core.results.placement`): the columns' refs in order, the
  column means and the two components the positions were projected with, and the votes a
  participant needs to be clustered; positions are scaled by the number of columns;
- `proposals`: per accepted proposal its ref, the counts of everyone and of each shown group
  ([agree, disagree, pass]), its group-informed consensus for agreement and disagreement;
- `majority_agree`, `majority_disagree`, `uncertain`: refs, highest share first, at most
  `MAX_LISTED`.

No participant id, name or channel identifier is in it: only counts and proposal refs.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import replace
from datetime import datetime
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.definitions import settings_of
from core.models import Consultation, ResultSnapshot
from core.results.consensus import (
    counts_by_group,
    everyone,
    group_informed_consensus,
    majority,
    representative,
    uncertain,
)
from core.results.groups import MIN_VOTES, KSmoother, NoGroups, OpinionGroups, opinion_groups
from core.results.matrix import VoteMatrix, vote_matrix
from core.results.votes import VoteColumns

VERSION = 2
MAX_LISTED = 100
DEFAULT_SEED = 0  # the same seed each time: the same votes give the same groups


def _round(x: float) -> float:
    return round(float(x), 6)


def results_payload(
    matrix: VoteMatrix, found: OpinionGroups | NoGroups, *, min_group_size: int
) -> dict[str, Any]:
    """The snapshot's JSON for `matrix` and its groups (see the module docstring)."""
    totals = everyone(matrix)
    agree_up, disagree_up = majority(totals)
    payload: dict[str, Any] = {
        "version": VERSION,
        "participants": matrix.shape[0],
        "votes": matrix.votes,
        "majority_agree": [matrix.refs[c] for c in agree_up[:MAX_LISTED]],
        "majority_disagree": [matrix.refs[c] for c in disagree_up[:MAX_LISTED]],
        "uncertain": [matrix.refs[c] for c in uncertain(totals)[:MAX_LISTED]],
    }
    all_counts = np.stack([totals.agree[0], totals.disagree[0], totals.passes[0]], axis=1)
    if isinstance(found, NoGroups):
        payload |= {
            "clustered": found.clustered,
            "groups_reason": found.reason,
            "k": {"chosen": None, "silhouettes": {}, "smoother": found.smoother.as_dict()},
            "groups": [],
            "map": [],
            "projection": None,
            "proposals": [
                {"ref": ref, "counts": [int(n) for n in all_counts[c]], "groups": []}
                for c, ref in enumerate(matrix.refs)
            ],
        }
        return payload
    counts = counts_by_group(matrix, found.labels, found.k)
    consensus_agree, consensus_disagree = group_informed_consensus(counts)
    chosen = representative(counts)
    shown = [size >= min_group_size for size in found.sizes]
    group_counts = np.stack([counts.agree, counts.disagree, counts.passes], axis=2)
    payload |= {
        "clustered": int(found.clustered.sum()),
        "groups_reason": None,
        "k": {
            "chosen": found.k,
            "silhouettes": {str(k): _round(s) for k, s in found.silhouettes.items()},
            "smoother": found.smoother.as_dict(),
        },
        "groups": [
            {"id": g, "size": size, "representative": [r.as_dict(matrix.refs) for r in chosen[g]]}
            if shown[g]
            else {"id": g, "suppressed": True, "fewer_than": min_group_size}
            for g, size in enumerate(found.sizes)
        ],
        "map": [
            {"x": _round(x), "y": _round(y), "size": int(n), "group": int(g)}
            for (x, y), n, g in zip(
                found.base_centres, found.base_sizes, found.base_groups, strict=True
            )
        ],
        "projection": projection_payload(matrix, found),
        "proposals": [
            {
                "ref": ref,
                "counts": [int(n) for n in all_counts[c]],
                "groups": [
                    [int(n) for n in group_counts[g, c]] if shown[g] else None
                    for g in range(found.k)
                ],
                "consensus": {
                    "agree": _round(consensus_agree[c]),
                    "disagree": _round(consensus_disagree[c]),
                },
            }
            for c, ref in enumerate(matrix.refs)
        ],
    }
    return payload


def projection_payload(matrix: VoteMatrix, found: OpinionGroups) -> dict[str, Any]:
    """The snapshot's `projection`: what `core.results.groups.positions` projected the matrix's
    rows with, so that a participant is placed later from their votes alone and nobody's
    group is stored. Means and components keep 8 decimals (the map's centres keep 6): about
    50 bytes per proposal."""
    return {
        "refs": list(matrix.refs),
        "center": np.round(found.pca.center, 8).tolist(),
        "components": np.round(found.pca.components, 8).tolist(),
        "min_votes": min(MIN_VOTES, matrix.shape[1]),
    }


def continued(
    found: OpinionGroups, matrix: VoteMatrix, previous: dict[str, Any] | None
) -> OpinionGroups:
    """`found` with its groups renumbered to follow the `previous` payload's: each new group
    takes the number of the previous group that voted most like it (mean gap between their
    (agree - disagree) / seen over the proposals both have, matched one to one by the
    Hungarian method), the unmatched ones come after. A group keeps its number from one
    computation to the next even when sizes change order or the map's axes flip; without a
    previous payload (or groups), groups stay numbered by size."""
    if not previous or not previous.get("groups"):
        return found
    before = len(previous["groups"])
    cells = {p["ref"]: p.get("groups") or [] for p in previous.get("proposals", [])}
    columns = [c for c, ref in enumerate(matrix.refs) if cells.get(ref)]
    if not columns:
        return found
    counts = counts_by_group(matrix, found.labels, found.k)
    seen = np.maximum(counts.seen, 1)
    new = ((counts.agree - counts.disagree) / seen)[:, columns]
    old = np.zeros((before, len(columns)))
    for j, c in enumerate(columns):
        for g, cell in enumerate(cells[matrix.refs[c]][:before]):
            if cell is not None:
                agree, disagree, passed = cell
                old[g, j] = (agree - disagree) / max(agree + disagree + passed, 1)
    cost = np.abs(new[:, None, :] - old[None, :, :]).mean(axis=2)
    rows, matched = linear_sum_assignment(cost)
    number = {int(r): int(m) for r, m in zip(rows, matched, strict=True)}
    order = sorted(range(found.k), key=lambda g: number.get(g, before + g))
    rank = np.empty(found.k, dtype=np.int64)
    rank[order] = np.arange(found.k)
    labels = np.where(found.labels >= 0, rank[np.maximum(found.labels, 0)], -1)
    return replace(found, labels=labels, base_groups=rank[found.base_groups])


async def latest_snapshot(session: AsyncSession, consultation_id: int) -> ResultSnapshot | None:
    """The consultation's most recent snapshot, if any."""
    found = await session.exec(
        select(ResultSnapshot)
        .where(ResultSnapshot.consultation_id == consultation_id)
        .order_by(col(ResultSnapshot.computed_at).desc(), col(ResultSnapshot.id).desc())
        .limit(1)
    )
    return found.first()


def previous_smoother(snapshot: ResultSnapshot | None) -> KSmoother | None:
    """The k smoother a snapshot left, to continue it (None: start afresh)."""
    if snapshot is None:
        return None
    k = snapshot.payload.get("k") or {}
    return KSmoother.from_dict(k.get("smoother"))


async def snapshot_payload(
    session: AsyncSession,
    consultation: Consultation,
    *,
    seed: int,
    votes: VoteColumns | None = None,
    without: Collection[int] = (),
    lap: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The payload of a new snapshot of the consultation's results (reads only). `votes`: the
    consultation's votes if the caller read them; `without`: participants whose votes are
    left out (`vote_matrix`); `lap(stage)` called as each stage ends ("matrix",
    `core.results.groups.opinion_groups`'s "pca", "clustering", "consensus, repness")."""
    assert consultation.id is not None
    done = lap or (lambda stage: None)
    matrix = await vote_matrix(session, consultation, votes=votes, without=without)
    done("matrix")
    last = await latest_snapshot(session, consultation.id)
    found = opinion_groups(matrix, seed=seed, previous=previous_smoother(last), lap=lap)
    if isinstance(found, OpinionGroups):
        found = continued(found, matrix, None if last is None else last.payload)
    done("clustering")
    payload = results_payload(
        matrix, found, min_group_size=settings_of(consultation).min_segment_size
    )
    done("consensus, repness")
    return payload


async def refresh_snapshot(
    session: AsyncSession, consultation: Consultation, *, seed: int, now: datetime
) -> ResultSnapshot:
    """Compute the consultation's groups and add them as a new snapshot (in the session's
    transaction: the caller commits); the scheduler stores the whole snapshot instead
    (`core.results.recompute`)."""
    assert consultation.id is not None
    payload = await snapshot_payload(session, consultation, seed=seed)
    snapshot = ResultSnapshot(
        consultation_id=consultation.id, computed_at=now, payload=payload, seed=seed
    )
    session.add(snapshot)
    await session.flush()
    return snapshot

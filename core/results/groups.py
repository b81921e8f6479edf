"""Opinion groups: Polis's PCA, base clusters and group clusters, on a sparse vote matrix.

Follows compdemocracy/polis, math/src/polismath/math/:

- who is clustered (conversation.clj, `:in-conv`): participants who voted on at least
  min(7, number of comments) comments (Polis's greedy top-up to 15 people is left out: with too
  few people there are no groups, rather than groups of people who hardly voted);
- PCA (pca.clj, `powerit-pca`; conversation.clj, `:mat`): unseen votes imputed with the
  column's mean, columns centred, the two leading components. Imputing the mean then centring
  leaves 0 where nobody voted, so the centred matrix is as sparse as the votes and is never
  made dense (see `pca` for how the components are found);
- positions (pca.clj, `sparsity-aware-project-ptpt`): each participant's centred votes
  projected on the components, scaled by sqrt(comments / comments voted on);
- base clusters (conversation.clj, `:base-clusters`, k = 100; clusters.clj, `kmeans`):
  k-means over the clustered participants' positions, until the centres move less than 0.01
  (beyond BASE_SAMPLE people, fitted on a sample, see `opinion_groups`);
- opinion groups (conversation.clj, `:group-clusterings`): k-means over the base clusters'
  centres weighted by their sizes, for k from 2 to min(5, 2 + base clusters / 12), k chosen by
  the silhouette over the base centres (clusters.clj, `silhouette`), smoothed by
  `:group-k-smoother`: a new k is taken only once it has won `buffer` (4) times in a row.

Polis starts k-means from the previous clustering and from the first distinct rows; here the
starts are drawn from a seeded generator (k-means++ for groups, best of several starts), so a
computation is deterministic for a seed, and groups are numbered by decreasing size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.sparse.linalg import svds
from scipy.spatial import cKDTree

from core.results.matrix import VoteMatrix

MIN_VOTES = 7  # conversation.clj, :in-conv: min(7, n-cmts)
BASE_K = 100  # conversation.clj, :base-k
MAX_K = 5  # conversation.clj, :max-k
K_BUFFER = 4  # conversation.clj, :group-k-buffer
BASE_ITERATIONS = 100  # conversation.clj, :base-iters
BASE_SAMPLE = 20_000  # base centres are fitted on a sample of this many clustered people
SAME_CLUSTERING = 0.01  # clusters.clj, same-clustering? threshold
GROUP_STARTS = 10  # k-means++ starts per k for groups; the least inertia wins
MIN_PARTICIPANTS = 10  # fewer clustered participants: no groups (a split of a handful says little)

# Why there are no groups (stable codes; what an organiser reads is in the catalogues).
NO_PROPOSALS = "no-proposals"
TOO_FEW_PARTICIPANTS = "too-few-participants"
NO_SPREAD = "no-spread"


@dataclass(frozen=True)
class KSmoother:
    """Polis's `:group-k-smoother`: the k that won last time, how many times in a row, and the
    k in use. Stored in the snapshot so that the next computation continues it."""

    last_k: int | None = None
    last_k_count: int = 0
    smoothed_k: int | None = None

    def after(self, this_k: int, available: set[int], buffer: int = K_BUFFER) -> KSmoother:
        """The smoother once `this_k` has won; `available` are the k computed this time."""
        count = self.last_k_count + 1 if self.last_k == this_k else 1
        if count >= buffer or self.smoothed_k not in available:
            smoothed = this_k
        else:
            smoothed = self.smoothed_k
        return KSmoother(last_k=this_k, last_k_count=count, smoothed_k=smoothed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "last_k": self.last_k,
            "last_k_count": self.last_k_count,
            "smoothed_k": self.smoothed_k,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> KSmoother:
        if not data:
            return cls()
        return cls(
            last_k=data.get("last_k"),
            last_k_count=int(data.get("last_k_count") or 0),
            smoothed_k=data.get("smoothed_k"),
        )


@dataclass(frozen=True)
class Pca:
    center: NDArray[np.float64]  # per column
    components: NDArray[np.float64]  # (2, columns), unit rows
    centred: Any = field(repr=False, compare=False)  # the sparse centred votes it came from


@dataclass(frozen=True)
class OpinionGroups:
    """Groups found. `labels[r]` is row r's group (0 = largest), -1 for the unclustered."""

    labels: NDArray[np.int64]
    positions: NDArray[np.float64]  # (rows, 2), every participant of the matrix
    clustered: NDArray[np.bool_]  # rows that took part in the clustering
    base_centres: NDArray[np.float64]  # (base clusters, 2)
    base_sizes: NDArray[np.int64]
    base_groups: NDArray[np.int64]  # each base cluster's group
    silhouettes: dict[int, float]
    smoother: KSmoother
    pca: Pca = field(repr=False)

    @property
    def k(self) -> int:
        return len(self.sizes)

    @property
    def sizes(self) -> list[int]:
        return [int(n) for n in np.bincount(self.base_groups, weights=self.base_sizes)]


@dataclass(frozen=True)
class NoGroups:
    """Too little to split: `reason` is one of the codes above; the smoother is kept as it was."""

    reason: str
    clustered: int
    smoother: KSmoother


def pca(matrix: VoteMatrix, rng: np.random.Generator) -> Pca:
    """Two principal components of the imputed, centred votes (see the module docstring).

    Polis finds them by power iteration (pca.clj, powerit-pca); the same two leading singular
    vectors of the sparse centred matrix are found here by ARPACK's Lanczos iteration (scipy's
    svds, started from a seeded vector), which needs far fewer products at millions of rows;
    a small matrix takes a dense SVD. Signs are fixed (largest entry positive).
    """
    center = matrix.column_means()
    centred = matrix.centred(center)
    if min(matrix.shape) <= 3 or matrix.shape[0] * matrix.shape[1] <= 250_000:
        _, _, vt = np.linalg.svd(centred.toarray(), full_matrices=False)
        components = vt[:2]
    else:
        start = rng.standard_normal(min(matrix.shape))
        # Positions need a few digits, not machine precision: tol bounds the products.
        _, values, vt = svds(centred, k=2, v0=start, solver="arpack", tol=1e-5)
        components = vt[np.argsort(-values)]
    components = np.array(components, dtype=np.float64)
    for i in range(components.shape[0]):
        if components[i, np.argmax(np.abs(components[i]))] < 0:
            components[i] = -components[i]
    return Pca(center=center, components=components, centred=centred)


def positions(matrix: VoteMatrix, found: Pca) -> NDArray[np.float64]:
    """Polis's sparsity-aware projection of every row (pca.clj, sparsity-aware-project-ptpt)."""
    projected = found.centred @ found.components.T
    voted = np.maximum(matrix.votes_per_row(), 1)
    scale: NDArray[np.float64] = np.sqrt(matrix.shape[1] / voted)
    return np.asarray(projected * scale[:, None], dtype=np.float64)


def _nearest(points: NDArray[np.float64], centres: NDArray[np.float64]) -> NDArray[np.int64]:
    """Index of each point's nearest centre (a k-d tree over the centres)."""
    _, found = cKDTree(centres).query(points)
    return np.asarray(found, dtype=np.int64)


def kmeans(
    points: NDArray[np.float64],
    centres: NDArray[np.float64],
    weights: NDArray[np.float64] | None = None,
    iterations: int = BASE_ITERATIONS,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Lloyd's k-means from `centres` (clusters.clj, kmeans): stops when no centre moves by
    SAME_CLUSTERING or more; clusters left empty are dropped, as Polis's `cluster-step` does.
    Returns the centres and each point's cluster."""
    w = np.ones(len(points)) if weights is None else weights
    labels = _nearest(points, centres)
    for _ in range(iterations):
        mass = np.bincount(labels, weights=w, minlength=len(centres))
        kept = mass > 0
        sums = np.stack(
            [np.bincount(labels, weights=w * points[:, d], minlength=len(centres)) for d in (0, 1)],
            axis=1,
        )
        moved_centres = sums[kept] / mass[kept, None]
        done = kept.all() and bool(
            np.all(np.linalg.norm(moved_centres - centres, axis=1) < SAME_CLUSTERING)
        )
        centres = moved_centres
        labels = _nearest(points, centres)
        if done:
            break
    # Renumber densely (a centre may have lost all its points on the last assignment).
    used, labels = np.unique(labels, return_inverse=True)
    return centres[used], labels.astype(np.int64)


def _kmeans_plus_plus(
    points: NDArray[np.float64], weights: NDArray[np.float64], k: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    chosen = [int(rng.choice(len(points), p=weights / weights.sum()))]
    gaps = ((points - points[chosen[0]]) ** 2).sum(axis=1)
    for _ in range(1, k):
        odds = gaps * weights
        if odds.sum() <= 0:
            break
        chosen.append(int(rng.choice(len(points), p=odds / odds.sum())))
        gaps = np.minimum(gaps, ((points - points[chosen[-1]]) ** 2).sum(axis=1))
    return points[chosen]


def silhouette(points: NDArray[np.float64], labels: NDArray[np.int64]) -> float:
    """Mean silhouette of the points (clusters.clj, silhouette): a point alone in its cluster
    scores 0; unweighted, as Polis averages over base clusters."""
    distances = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(axis=2))
    k = int(labels.max()) + 1
    member = np.eye(k, dtype=bool)[labels]  # (points, clusters)
    sizes = member.sum(axis=0)
    totals = distances @ member  # sum of distances to each cluster's points
    own = sizes[labels] - 1
    a = np.divide(
        totals[np.arange(len(points)), labels], own, out=np.zeros(len(points)), where=own > 0
    )
    others = np.where(member, np.inf, totals / np.maximum(sizes, 1))
    b = others.min(axis=1)
    scores = np.where(own > 0, (b - a) / np.maximum(np.maximum(a, b), 1e-300), 0.0)
    return float(scores.mean())


def _groups_for(
    centres: NDArray[np.float64], sizes: NDArray[np.float64], k: int, rng: np.random.Generator
) -> NDArray[np.int64]:
    best: tuple[float, NDArray[np.int64]] | None = None
    for _ in range(GROUP_STARTS):
        start = _kmeans_plus_plus(centres, sizes, k, rng)
        found, labels = kmeans(centres, start, sizes, iterations=100)
        inertia = float((sizes * ((centres - found[labels]) ** 2).sum(axis=1)).sum())
        if best is None or inertia < best[0] - 1e-12:
            best = (inertia, labels)
    assert best is not None
    return best[1]


def opinion_groups(
    matrix: VoteMatrix,
    *,
    seed: int,
    previous: KSmoother | None = None,
    min_participants: int = MIN_PARTICIPANTS,
    base_k: int = BASE_K,
    max_k: int = MAX_K,
    buffer: int = K_BUFFER,
    lap: Callable[[str], None] | None = None,
) -> OpinionGroups | NoGroups:
    """The opinion groups of `matrix`, deterministic for `seed`; `previous` is the smoother of
    the last computation (None the first time). Returns NoGroups with a reason when there is
    too little to split, never a made-up split. `lap("pca")` is called once the positions
    are known (for a benchmark's stage times)."""
    smoother = previous or KSmoother()
    n_rows, n_columns = matrix.shape
    if n_columns < 2:
        return NoGroups(NO_PROPOSALS, 0, smoother)
    clustered = matrix.votes_per_row() >= min(MIN_VOTES, n_columns)
    if int(clustered.sum()) < min_participants:
        return NoGroups(TOO_FEW_PARTICIPANTS, int(clustered.sum()), smoother)
    rng = np.random.default_rng(seed)
    found = pca(matrix, rng)
    where = positions(matrix, found)
    if lap is not None:
        lap("pca")
    points = where[clustered]
    # k-means++ starts, drawn from a sample's distinct positions: spread-out starts make the
    # base clusters depend less on the draw than Polis's first distinct rows, at a cost
    # bounded at millions.
    drawn = points[rng.choice(len(points), size=min(len(points), BASE_SAMPLE), replace=False)]
    sample = np.unique(np.round(drawn, 9), axis=0)
    if len(sample) < 3 and len(np.unique(np.round(points, 9), axis=0)) < 3:
        return NoGroups(NO_SPREAD, int(clustered.sum()), smoother)
    start = _kmeans_plus_plus(sample, np.ones(len(sample)), min(base_k, len(sample)), rng)
    if len(points) > BASE_SAMPLE:
        # Fitted on a seeded sample, then everyone joins their nearest centre and the centres
        # move to their members' mean (Polis admits at most 100,000 participants at all,
        # conversation.clj :max-ptpts; here nobody is left out, and the cost stays bounded).
        fitted, _ = kmeans(points[rng.choice(len(points), BASE_SAMPLE, replace=False)], start)
        base_centres, base_of = kmeans(points, fitted, iterations=1)
    else:
        base_centres, base_of = kmeans(points, start)
    base_sizes = np.bincount(base_of, minlength=len(base_centres)).astype(np.int64)
    top = min(max_k, 2 + len(base_centres) // 12, len(base_centres) - 1)
    if top < 2:
        return NoGroups(NO_SPREAD, int(clustered.sum()), smoother)
    weights = base_sizes.astype(np.float64)
    clusterings = {k: _groups_for(base_centres, weights, k, rng) for k in range(2, top + 1)}
    clusterings = {k: g for k, g in clusterings.items() if g.max() + 1 == k}
    if not clusterings:
        return NoGroups(NO_SPREAD, int(clustered.sum()), smoother)
    scores = {k: silhouette(base_centres, g) for k, g in clusterings.items()}
    this_k = max(scores, key=lambda k: (scores[k], -k))  # ties: the fewer groups
    smoother = smoother.after(this_k, set(clusterings), buffer)
    assert smoother.smoothed_k is not None
    base_groups = clusterings[smoother.smoothed_k]
    # Number groups by decreasing size (ties: by centre), so that ids read the same each time.
    group_sizes = np.bincount(base_groups, weights=weights)
    group_x = np.bincount(base_groups, weights=weights * base_centres[:, 0]) / group_sizes
    order = np.lexsort((group_x, -group_sizes))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    base_groups = rank[base_groups].astype(np.int64)
    labels = np.full(n_rows, -1, dtype=np.int64)
    labels[np.flatnonzero(clustered)] = base_groups[base_of]
    return OpinionGroups(
        labels=labels,
        positions=where,
        clustered=clustered,
        base_centres=base_centres,
        base_sizes=base_sizes,
        base_groups=base_groups,
        silhouettes=scores,
        smoother=smoother,
        pca=found,
    )

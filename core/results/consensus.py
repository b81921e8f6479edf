"""What opinion groups agree on: counts per group, group-informed consensus, representative
statements, majority statements and areas of uncertainty.

Follows compdemocracy/polis, math/src/polismath/math/:

- counts per comment and group (conversation.clj, `:group-votes`): A agrees, D disagrees,
  S seen (passes included);
- group-informed consensus (conversation.clj, `:group-aware-consensus`): the product over
  groups of (A_g + 1) / (S_g + 2); the same with D for disagreement;
- representativeness (repness.clj, `comment-stats`, `add-comparitive-stats`,
  `select-rep-comments`; stats.clj, `prop-test`, `two-prop-test`, `z-sig-90?`): for a group
  and a comment, pa = (1 + A) / (2 + S) against the rest of the groups, a comment is
  representative when both its proportion test and its two-proportion test pass at 90%
  (z > 1.2816) for agreeing, or both for disagreeing; up to 5 per group, sorted by
  repness x repness-test x p-success x p-test, the group's best agreed comment first, agrees
  before disagrees; with none passing, the best one by test;
- majority statements: more than 60% of those who saw it agree (or disagree); areas of
  uncertainty: more than 30% of those who saw it passed (Polis's report's "majority" and
  "uncertainty" views).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.results.matrix import VoteMatrix

Z_90 = 1.2816  # stats.clj, z-sig-90?
MAX_REPRESENTATIVE = 5
MAJORITY = 0.6
UNCERTAINTY = 0.3
Array = NDArray[np.float64]


@dataclass(frozen=True)
class Counts:
    """Per group (rows) and column: agrees, disagrees, seen (passes included)."""

    agree: NDArray[np.int64]
    disagree: NDArray[np.int64]
    seen: NDArray[np.int64]

    @property
    def passes(self) -> NDArray[np.int64]:
        return self.seen - self.agree - self.disagree


def counts_by_group(matrix: VoteMatrix, labels: NDArray[np.int64], groups: int) -> Counts:
    """Count the votes of each group's members; rows labelled -1 are left out. With
    `groups` = 1 and every label 0, the counts of everyone."""
    n = matrix.shape[1]
    group = labels[matrix.rows]
    kept = group >= 0
    cell = group[kept] * n + matrix.columns[kept]
    values = matrix.values[kept]
    size = groups * n

    def tally(mask: NDArray[np.bool_] | None) -> NDArray[np.int64]:
        chosen = cell if mask is None else cell[mask]
        return np.bincount(chosen, minlength=size).reshape(groups, n).astype(np.int64)

    return Counts(agree=tally(values == 1), disagree=tally(values == -1), seen=tally(None))


def everyone(matrix: VoteMatrix) -> Counts:
    """The counts of every participant of the matrix, as one group."""
    return counts_by_group(matrix, np.zeros(matrix.shape[0], dtype=np.int64), 1)


def group_informed_consensus(counts: Counts) -> tuple[Array, Array]:
    """Per column, (agreement, disagreement): products over groups of (A+1)/(S+2), (D+1)/(S+2)."""
    seen = counts.seen + 2.0
    agree = np.prod((counts.agree + 1.0) / seen, axis=0)
    disagree = np.prod((counts.disagree + 1.0) / seen, axis=0)
    return agree, disagree


def prop_test(successes: Array, trials: Array) -> Array:
    """stats.clj, prop-test: 2 sqrt(n+1) ((s+1)/(n+1) - 1/2)."""
    s, n = successes + 1.0, trials + 1.0
    result: Array = 2.0 * np.sqrt(n) * (s / n - 0.5)
    return result


def two_prop_test(succ_in: Array, succ_out: Array, pop_in: Array, pop_out: Array) -> Array:
    """stats.clj, two-prop-test (each count plus one); 0 where the pooled share is 1."""
    s1, s2, n1, n2 = succ_in + 1.0, succ_out + 1.0, pop_in + 1.0, pop_out + 1.0
    pooled = (s1 + s2) / (n1 + n2)
    spread = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (s1 / n1 - s2 / n2) / spread
    result: Array = np.where(pooled >= 1.0, 0.0, z)
    return result


@dataclass(frozen=True)
class Representative:
    """One representative statement of a group (repness.clj, finalize-cmt-stats)."""

    column: int
    repful_for: str  # "agree" or "disagree"
    n_success: int
    n_trials: int
    p_success: float
    p_test: float
    repness: float
    repness_test: float
    best_agree: bool = False

    def as_dict(self, refs: tuple[str, ...]) -> dict[str, Any]:
        return {
            "ref": refs[self.column],
            "repful_for": self.repful_for,
            "n_success": self.n_success,
            "n_trials": self.n_trials,
            "p_success": round(self.p_success, 4),
            "p_test": round(self.p_test, 4),
            "repness": round(self.repness, 4),
            "repness_test": round(self.repness_test, 4),
            "best_agree": self.best_agree,
        }


@dataclass(frozen=True)
class _Stats:
    na: Array
    nd: Array
    ns: Array
    pa: Array
    pd: Array
    pat: Array
    pdt: Array
    ra: Array
    rd: Array
    rat: Array
    rdt: Array


def _stats(counts: Counts, g: int) -> _Stats:
    na, nd, ns = (x[g].astype(np.float64) for x in (counts.agree, counts.disagree, counts.seen))
    rest_a = counts.agree.sum(axis=0) - na
    rest_d = counts.disagree.sum(axis=0) - nd
    rest_s = counts.seen.sum(axis=0) - ns
    pa, pd = (1 + na) / (2 + ns), (1 + nd) / (2 + ns)
    return _Stats(
        na=na,
        nd=nd,
        ns=ns,
        pa=pa,
        pd=pd,
        pat=prop_test(na, ns),
        pdt=prop_test(nd, ns),
        ra=pa / ((1 + rest_a) / (2 + rest_s)),
        rd=pd / ((1 + rest_d) / (2 + rest_s)),
        rat=two_prop_test(na, rest_a, ns, rest_s),
        rdt=two_prop_test(nd, rest_d, ns, rest_s),
    )


def _finalised(s: _Stats, c: int, best_agree: bool = False) -> Representative:
    """repness.clj, finalize-cmt-stats: agree if its repness test beats disagree's."""
    if s.rat[c] > s.rdt[c]:
        fields = (s.na, s.pa, s.pat, s.ra, s.rat, "agree")
    else:
        fields = (s.nd, s.pd, s.pdt, s.rd, s.rdt, "disagree")
    n, p, pt, r, rt, side = fields
    if best_agree:
        # The group's most agreed comment: Polis's client shows it by its agrees (n-agree),
        # whichever way its tests lean, so it is given as agreed here.
        n, p, pt, r, rt, side = s.na, s.pa, s.pat, s.ra, s.rat, "agree"
    return Representative(
        column=c,
        repful_for=side,
        n_success=int(n[c]),
        n_trials=int(s.ns[c]),
        p_success=float(p[c]),
        p_test=float(pt[c]),
        repness=float(r[c]),
        repness_test=float(rt[c]),
        best_agree=best_agree,
    )


def _best_agree(s: _Stats, columns: NDArray[np.int64]) -> int | None:
    """repness.clj, beats-best-agr?, folded over the comments in order."""
    best: int | None = None
    for c in columns.tolist():
        if s.na[c] == 0 and s.nd[c] == 0:
            continue
        if best is not None and s.ra[best] > 1.0:
            better = s.ra[c] * s.rat[c] * s.pa[c] * s.pat[c] > (
                s.ra[best] * s.rat[best] * s.pa[best] * s.pat[best]
            )
        elif best is not None:
            better = s.pa[c] * s.pat[c] > s.pa[best] * s.pat[best]
        else:
            better = s.pat[c] > Z_90 or (s.ra[c] > 1.0 and s.pa[c] > 0.5)
        if better:
            best = c
    return best


def _metric(r: Representative) -> float:
    """repness.clj, repness-metric."""
    return r.repness * r.repness_test * r.p_success * r.p_test


def representative(
    counts: Counts, excluded: frozenset[int] = frozenset()
) -> list[list[Representative]]:
    """Each group's representative statements (repness.clj, select-rep-comments), at most 5."""
    groups, n = counts.seen.shape
    columns = np.array([c for c in range(n) if c not in excluded], dtype=np.int64)
    chosen: list[list[Representative]] = []
    for g in range(groups):
        s = _stats(counts, g)
        passes = ((s.rat > Z_90) & (s.pat > Z_90)) | ((s.rdt > Z_90) & (s.pdt > Z_90))
        sufficient = [_finalised(s, int(c)) for c in columns[passes[columns]]]
        agree_at = _best_agree(s, columns)
        best_agree = None if agree_at is None else _finalised(s, agree_at, best_agree=True)
        if not sufficient:
            # beats-best-by-test?: the first comment with the highest max(rat, rdt)
            tests = np.maximum(s.rat, s.rdt)[columns]
            best = _finalised(s, int(columns[np.argmax(tests)])) if len(columns) else None
            head = [best_agree] if best_agree else [best] if best else []
            chosen.append(head)
            continue
        ranked = sorted(
            (r for r in sufficient if best_agree is None or r.column != best_agree.column),
            key=lambda r: -_metric(r),
        )
        top = ([best_agree] if best_agree else []) + ranked
        top = top[:MAX_REPRESENTATIVE]
        chosen.append(
            [r for r in top if r.repful_for == "agree"]
            + [r for r in top if r.repful_for == "disagree"]
        )
    return chosen


def majority(totals: Counts, threshold: float = MAJORITY) -> tuple[list[int], list[int]]:
    """Columns more than `threshold` of whose voters agree, and those they disagree with,
    each sorted by that share (highest first)."""
    seen = totals.seen[0].astype(np.float64)
    agree = np.divide(totals.agree[0], seen, out=np.zeros_like(seen), where=seen > 0)
    disagree = np.divide(totals.disagree[0], seen, out=np.zeros_like(seen), where=seen > 0)
    return _above(agree, threshold), _above(disagree, threshold)


def uncertain(totals: Counts, threshold: float = UNCERTAINTY) -> list[int]:
    """Columns more than `threshold` of whose voters passed, highest share first."""
    seen = totals.seen[0].astype(np.float64)
    passed = np.divide(totals.passes[0], seen, out=np.zeros_like(seen), where=seen > 0)
    return _above(passed, threshold)


def _above(shares: Array, threshold: float) -> list[int]:
    found = np.flatnonzero(shares > threshold)
    return [int(c) for c in found[np.argsort(-shares[found], kind="stable")]]

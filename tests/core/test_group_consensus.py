"""Group-informed consensus, Polis's tests, representative statements, majority and
uncertainty, against figures computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.results.consensus import (
    Counts,
    counts_by_group,
    everyone,
    group_informed_consensus,
    majority,
    prop_test,
    representative,
    two_prop_test,
    uncertain,
)
from core.results.matrix import matrix_from_arrays


def counts(agree: list[list[int]], disagree: list[list[int]], seen: list[list[int]]) -> Counts:
    return Counts(np.array(agree), np.array(disagree), np.array(seen))


def test_counts_by_group_count_each_groups_members_only() -> None:
    # Rows: 0, 1 in group 0; 2 in group 1; 3 unclustered. Columns: two proposals.
    matrix = matrix_from_arrays(
        np.array([0, 0, 1, 2, 2, 3]),
        np.array([0, 1, 0, 0, 1, 0]),
        np.array([1, 0, -1, 1, 1, 1], dtype=np.int8),
        ["a", "b"],
        unique=True,
    )
    found = counts_by_group(matrix, np.array([0, 0, 1, -1]), 2)
    assert found.agree.tolist() == [[1, 0], [1, 1]]
    assert found.disagree.tolist() == [[1, 0], [0, 0]]
    assert found.seen.tolist() == [[2, 1], [1, 1]]
    assert found.passes.tolist() == [[0, 1], [0, 0]]
    assert everyone(matrix).seen.tolist() == [[4, 2]]


def test_group_informed_consensus_is_the_product_of_smoothed_group_rates() -> None:
    # Group 0: 3 agree, 1 disagree, 0 pass of 4; group 1: 1 agree, 0 disagree, 1 pass of 2.
    found = counts([[3], [1]], [[1], [0]], [[4], [2]])
    agree, disagree = group_informed_consensus(found)
    assert agree[0] == pytest.approx((4 / 6) * (2 / 4))  # = 1/3
    assert disagree[0] == pytest.approx((2 / 6) * (1 / 4))  # = 1/12


def test_a_group_that_never_saw_a_proposal_counts_one_half() -> None:
    agree, disagree = group_informed_consensus(counts([[5], [0]], [[0], [0]], [[5], [0]]))
    assert agree[0] == pytest.approx((6 / 7) * 0.5)
    assert disagree[0] == pytest.approx((1 / 7) * 0.5)


def test_polis_proportion_tests_match_hand_figures() -> None:
    # prop-test: 2 sqrt(n+1) ((s+1)/(n+1) - 1/2); s = 3, n = 4 -> 2 sqrt(5) (4/5 - 1/2)
    assert prop_test(np.array([3.0]), np.array([4.0]))[0] == pytest.approx(2 * math.sqrt(5) * 0.3)
    # two-prop-test with s1 = 10, s2 = 0, n1 = n2 = 10: counts plus one: 11/11 against 1/11.
    pooled = 12 / 22
    expected = (1 - 1 / 11) / math.sqrt(pooled * (1 - pooled) * (2 / 11))
    z = two_prop_test(*(np.array([x]) for x in (10.0, 0.0, 10.0, 10.0)))
    assert z[0] == pytest.approx(expected)
    # Everyone agrees in and out of the group: the pooled share is 1, the test says 0.
    ones = two_prop_test(*(np.array([x]) for x in (10.0, 10.0, 10.0, 10.0)))
    assert ones[0] == 0


def test_representative_statements_follow_polis_test_and_order() -> None:
    # Two groups of 10. Proposal 0: group 0 all agree, group 1 all disagree. Proposal 1:
    # everyone agrees (not representative of anyone). Proposal 2: group 0 all disagree,
    # group 1 half agree.
    found = counts(
        agree=[[10, 10, 0], [0, 10, 5]],
        disagree=[[0, 0, 10], [10, 0, 5]],
        seen=[[10, 10, 10], [10, 10, 10]],
    )
    group0, group1 = representative(found)
    # Group 0: proposal 0 for agreeing, proposal 2 for disagreeing; agrees come first.
    assert [(r.column, r.repful_for) for r in group0] == [(0, "agree"), (2, "disagree")]
    first = group0[0]
    assert first.best_agree
    assert first.p_success == pytest.approx(11 / 12)
    assert first.repness == pytest.approx((11 / 12) / (1 / 12))
    assert first.p_test == pytest.approx(2 * math.sqrt(11) * (11 / 11 - 0.5))
    assert (first.n_success, first.n_trials) == (10, 10)
    # Group 1: proposal 0 for disagreeing passes both tests. Its most agreed comment comes
    # first (Polis's best-agree): proposal 1, which everyone agrees with; proposal 2's agree
    # test, 2 sqrt(11) (6/11 - 1/2) = 0.30, is below the 90% bar, and it loses to proposal 1.
    assert [(r.column, r.repful_for, r.best_agree) for r in group1] == [
        (1, "agree", True),
        (0, "disagree", False),
    ]
    assert all(r.column != 1 for r in group0)


def test_a_group_with_nothing_passing_gets_its_best_comment() -> None:
    # Identical groups: no test passes; each still gets one statement.
    found = counts([[3, 1], [3, 1]], [[1, 3], [1, 3]], [[4, 4], [4, 4]])
    chosen = representative(found)
    assert [len(c) for c in chosen] == [1, 1]


def test_at_most_five_representative_statements() -> None:
    n = 12
    found = counts(
        agree=[[20] * n, [0] * n], disagree=[[0] * n, [20] * n], seen=[[20] * n, [20] * n]
    )
    assert [len(c) for c in representative(found)] == [5, 5]
    assert len(representative(found, excluded=frozenset(range(9)))[0]) == 3


def test_majority_and_uncertainty_thresholds() -> None:
    # Shares of those who saw it: a 7/10 agree, b 6/10 agree (not more than 60%),
    # c 8/10 disagree, d 4/10 pass, e 3/10 pass (not more than 30%).
    totals = counts(
        agree=[[7, 6, 1, 3, 4]], disagree=[[3, 4, 8, 3, 3]], seen=[[10, 10, 10, 10, 10]]
    )
    agreed, disagreed = majority(totals)
    assert (agreed, disagreed) == ([0], [2])
    assert uncertain(totals) == [3]

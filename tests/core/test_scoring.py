"""Scoring formulas against values computed by hand."""

from __future__ import annotations

import math

import pytest

from core.scoring import (
    ProposalCounts,
    Zone,
    ZoneThresholds,
    combine,
    polis_agree,
    score,
    smoothed,
    zone_of,
)


def test_smoothed_rate_and_interval() -> None:
    estimate = smoothed(7, 10)
    assert estimate.value == pytest.approx(7.33 / 11)
    p = 7.33 / 11
    assert estimate.margin == pytest.approx(1.96 * math.sqrt(p * (1 - p) / 11))
    empty = smoothed(0, 0)
    assert empty.value == pytest.approx(0.33)
    assert empty.low < 0.33 < empty.high


def test_quadrature() -> None:
    a, b = smoothed(3, 10), smoothed(1, 10)
    diff = combine((1, a), (-1, b))
    assert diff.value == pytest.approx(3.33 / 11 - 1.33 / 11)
    assert diff.margin == pytest.approx(math.hypot(a.margin, b.margin))


def test_composite_scores_by_hand() -> None:
    counts = ProposalCounts(
        sequence={
            "agree": 6,
            "disagree": 2,
            "neutral": 2,
            "likeIt": 3,
            "doable": 1,
            "noWay": 1,
            "platitudeAgree": 1,
        },
        other={"agree": 2, "impossible": 2},
    )
    scores = score(counts)  # other votes weigh 0.5: 7 agree, 2 disagree, 2 neutral -> n = 11
    assert scores.votes == 11

    def r(count: float) -> float:
        return (count + 0.33) / 12

    agree, disagree, neutral = r(7), r(2), r(2)
    like, doable, no_way, impossible = r(3), r(1), r(1), r(1)
    platitude = r(1) + r(0)
    assert scores.rates["agree"].value == pytest.approx(agree)
    assert scores.top.value == pytest.approx(
        agree + like + doable - no_way - impossible - platitude
    )
    assert scores.controversy.value == pytest.approx(min(agree, disagree) + min(like, no_way))
    assert scores.rejection.value == pytest.approx(
        disagree + no_way + impossible - like - doable - platitude
    )
    assert scores.realistic.value == pytest.approx(doable - impossible)
    assert scores.engagement.value == pytest.approx(1 - neutral)
    assert scores.polis_agree == pytest.approx((7 + 1) / (11 + 2))
    margins = [scores.rates[k].margin for k in ("doable", "impossible")]
    assert scores.realistic.margin == pytest.approx(math.hypot(*margins))
    assert scores.zone is Zone.CONSENSUS  # agree 0.64 >= 0.6


def test_other_votes_weight_is_configurable() -> None:
    counts = ProposalCounts(sequence={"agree": 1}, other={"agree": 4})
    assert score(counts, other_weight=1.0).votes == 5
    assert score(counts, other_weight=0.0).votes == 1


@pytest.mark.parametrize(
    ("agree", "disagree", "neutral", "zone"),
    [
        (0.65, 0.30, 0.05, Zone.CONSENSUS),  # agree >= 0.6
        (0.50, 0.10, 0.40 - 1e-9, Zone.CONSENSUS),  # little neutral, little disagreement
        (0.10, 0.70, 0.20, Zone.REJECTION),
        (0.10, 0.55, 0.35, Zone.REJECTION),
        (0.30, 0.25, 0.45, Zone.LIMBO),
        (0.45, 0.40, 0.15, Zone.CONTROVERSY),
        (0.45, 0.10, 0.45, Zone.LIMBO),  # neutral too high for the second consensus rule
    ],
)
def test_zones(agree, disagree, neutral, zone) -> None:
    assert zone_of(agree, disagree, neutral, ZoneThresholds()) is zone


def test_zone_thresholds_are_settings() -> None:
    assert zone_of(0.55, 0.3, 0.15, ZoneThresholds(strong=0.5)) is Zone.CONSENSUS


def test_polis_pass_adjusted_agree() -> None:
    assert polis_agree(0, 0) == 0.5
    assert polis_agree(9, 10) == pytest.approx(10 / 12)

"""Weighting to the population's margins: raking, trimming, Kish's effective size, the weighted
figures of a stored consultation, and margins an organiser must fix."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from core.definitions import DefinitionError, parse_consultation
from core.results.weighting import (
    UnreachableMargin,
    design_effect,
    effective_size,
    rake,
    weighted_figures,
    weighted_rate,
)
from core.scoring import smoothed
from tests.conftest import Loader, consultation_data
from tests.core.test_report import enrol, vote
from tests.support import Clock

Sessions = async_sessionmaker[AsyncSession]

MARGINS = {
    "age": {"young": 0.3, "middle": 0.4, "old": 0.3},
    "region": {"north": 0.5, "south": 0.5},
}


def crafted(seed: int = 7) -> list[dict[str, str]]:
    """An uneven sample: mostly young people from the north, few old ones from the south."""
    rng = random.Random(seed)
    ages = rng.choices(["young", "middle", "old"], weights=[6, 3, 1], k=600)
    regions = [
        rng.choices(["north", "south"], weights=[4, 1] if age == "young" else [1, 1])[0]
        for age in ages
    ]
    return [{"age": a, "region": r} for a, r in zip(ages, regions, strict=True)]


def margins_of(profiles: list[dict[str, str]], weights: Any, question: str) -> dict[str, float]:
    total = float(np.sum(weights))
    shares: dict[str, float] = {}
    for profile, weight in zip(profiles, weights, strict=True):
        shares[profile[question]] = shares.get(profile[question], 0.0) + weight / total
    return shares


def test_raking_converges_to_the_declared_margins() -> None:
    profiles = crafted()
    raking, placed = rake(profiles, MARGINS)
    assert raking.converged and raking.unplaced == 0 and placed == list(range(600))
    for question, shares in MARGINS.items():
        reached = margins_of(profiles, raking.weights, question)
        for option, share in shares.items():
            assert reached[option] == pytest.approx(share, abs=1e-6)
    assert float(np.mean(raking.weights)) == pytest.approx(1.0)
    # Before weighting the sample is 60% young; the old, rarer, weigh more than the young.
    old = [w for p, w in zip(profiles, raking.weights, strict=True) if p["age"] == "old"]
    young = [w for p, w in zip(profiles, raking.weights, strict=True) if p["age"] == "young"]
    assert min(old) > max(young)


def test_a_sample_already_representative_keeps_equal_weights() -> None:
    profiles = [{"age": a, "region": r} for a in ("young", "old") for r in ("north", "south")] * 5
    raking, _ = rake(profiles, {"age": {"young": 0.5, "old": 0.5}})
    assert np.allclose(raking.weights, 1.0)
    assert raking.design_effect == pytest.approx(1.0)
    assert raking.effective_size == pytest.approx(20)


def test_trimming_caps_weights_then_rakes_again() -> None:
    # 2 old people out of 100 for a population one half old: each would weigh 25.
    profiles = [{"age": "young"}] * 98 + [{"age": "old"}] * 2
    untrimmed, _ = rake(profiles, {"age": {"young": 0.5, "old": 0.5}})
    assert max(untrimmed.weights) == pytest.approx(25.0)
    trimmed, _ = rake(profiles, {"age": {"young": 0.5, "old": 0.5}}, trim=5.0)
    # One question: the margin needs the old at 25, the cap cannot hold, and the margin wins.
    assert trimmed.trimmed == 2 and trimmed.converged and not trimmed.within_cap
    # Two questions: old people from the north and from the south can share the old's half.
    profiles = crafted()
    free, _ = rake(profiles, MARGINS)
    assert max(free.weights) > 3.8
    capped, _ = rake(profiles, MARGINS, trim=3.5)
    assert capped.trimmed > 0 and capped.within_cap and capped.converged
    assert max(capped.weights) <= 3.5 * (1 + 1e-3)
    for question, shares in MARGINS.items():
        reached = margins_of(profiles, capped.weights, question)
        for option, share in shares.items():
            assert reached[option] == pytest.approx(share, abs=1e-4)
    assert capped.design_effect < free.design_effect


def test_kish_effective_size_and_design_effect() -> None:
    assert effective_size([1, 1, 1, 1]) == pytest.approx(4)
    # (1 + 3)^2 / (1 + 9) = 1.6; design effect 2 / 1.6.
    assert effective_size([1, 3]) == pytest.approx(1.6)
    assert design_effect([1, 3]) == pytest.approx(1.25)
    assert effective_size([]) == 0


def test_a_weighted_rate_uses_the_effective_size_in_its_interval() -> None:
    hits, weights = [1, 0, 1, 0], [3.0, 1.0, 1.0, 1.0]
    n_eff = 36 / 12
    rate = weighted_rate(hits, weights)
    assert rate == smoothed(4 / 6 * n_eff, n_eff)
    # Equal weights: the unweighted smoothed rate of the report.
    assert weighted_rate([1, 0, 1, 0], [1, 1, 1, 1]) == smoothed(2, 4)


def test_participants_without_an_answer_to_weight_on_are_counted() -> None:
    profiles = [{"age": "young"}, {"age": ""}, {}, {"age": "old"}, {"age": "teen"}]
    raking, placed = rake(profiles, {"age": {"young": 0.5, "old": 0.5}})
    assert placed == [0, 3] and raking.unplaced == 3


def test_an_empty_cell_is_refused_naming_it() -> None:
    profiles = [{"age": "young"}] * 10
    with pytest.raises(UnreachableMargin) as raised:
        rake(profiles, {"age": {"young": 0.6, "old": 0.4}})
    assert "population.age.old" in str(raised.value)
    assert (raised.value.question, raised.value.option) == ("age", "old")


def with_margins(population: Any, **settings: Any) -> dict[str, Any]:
    data = consultation_data()
    data["settings"] = {**data["settings"], "population": population, **settings}
    return data


@pytest.mark.parametrize(
    ("population", "fix"),
    [
        ({"age": {"young": 0.5, "old": 0.4}}, "population.age: the shares sum to 0.9, not 1"),
        ({"region": {"north": 1.0}}, "settings.population.region: not a profile question"),
        ({"age": {"young": 0.5, "teen": 0.5}}, "settings.population.age.teen: not an option"),
        ({"age": {"young": 1.5, "old": -0.5}}, "settings.population.age.young"),
    ],
)
def test_bad_margins_are_refused_with_what_to_fix(population: Any, fix: str) -> None:
    with pytest.raises(DefinitionError) as raised:
        parse_consultation(with_margins(population))
    assert any(fix in problem for problem in raised.value.problems), raised.value.problems


def test_shares_may_be_off_by_rounding_only() -> None:
    spec = parse_consultation(with_margins({"age": {"young": 1 / 3, "old": 2 / 3}}))
    assert spec.settings.population["age"]["young"] == pytest.approx(1 / 3)
    with pytest.raises(DefinitionError):
        parse_consultation(with_margins({"age": {"young": 0.333, "old": 0.666}}))
    with pytest.raises(DefinitionError) as raised:
        parse_consultation(with_margins({"age": {"young": 0.5, "old": 0.5}}, weighting={"trim": 0}))
    assert any("weighting.trim" in problem for problem in raised.value.problems)


async def test_weighted_figures_of_a_stored_consultation(
    sessions: Sessions, load_consultation: Loader, clock: Clock
) -> None:
    settings = {
        "sequence_size": 4,
        "summary_min_votes": 1,
        "population": {"age": {"young": 0.5, "old": 0.5}},
        "weighting": {"trim": 5.0},
    }
    consultation = await load_consultation(settings=settings)
    # 3 young people agree with p1, 1 old person disagrees; 1 participant gave no age.
    young = [await enrol(sessions, consultation, clock, {"age": "young"}) for _ in range(3)]
    old = await enrol(sessions, consultation, clock, {"age": "old"})
    silent = await enrol(sessions, consultation, clock, {"age": ""})
    for person in young:
        await vote(sessions, clock, person, "p1.fr", "agree")
    await vote(sessions, clock, old, "p1.en", "disagree")
    await vote(sessions, clock, silent, "p1.fr", "agree")
    async with sessions() as session:
        figures = await weighted_figures(session, consultation)
    assert figures is not None
    assert figures.participants == 5 and figures.unplaced == 1
    # Weights: young 4/6 each, old 2 (mean 1 over the 4 placed), so agree 2 / 4 = 50%.
    n_eff = 16 / (3 * (2 / 3) ** 2 + 4)
    assert figures.effective_size == pytest.approx(n_eff)
    assert figures.design_effect == pytest.approx(4 / n_eff)
    (p1,) = figures.proposals
    assert p1.ref == "p1" and p1.voters == 4
    assert p1.rates["agree"].value == pytest.approx(smoothed(0.5 * n_eff, n_eff).value)
    assert math.isclose(p1.rates["agree"].margin, smoothed(0.5 * n_eff, n_eff).margin)
    # Leaving a participant out (untrusted) takes them out of the raking too.
    async with sessions() as session:
        without = await weighted_figures(session, consultation, left_out={young[0]})
    assert without is not None and without.participants == 4
    assert without.proposals[0].voters == 3
    assert without.proposals[0].rates["agree"].value == pytest.approx(
        smoothed(0.5 * without.effective_size, without.effective_size).value
    )
    # ... and leaving out the only old person leaves their half of the population empty.
    async with sessions() as session:
        with pytest.raises(UnreachableMargin):
            await weighted_figures(session, consultation, left_out={old})


async def test_a_consultation_nobody_answered_yet_has_nothing_to_weight(
    sessions: Sessions, load_consultation: Loader, clock: Clock
) -> None:
    settings = {"population": {"age": {"young": 0.5, "old": 0.5}}}
    consultation = await load_consultation(settings=settings)
    await enrol(sessions, consultation, clock, {"age": ""})
    async with sessions() as session:
        figures = await weighted_figures(session, consultation)
    assert figures is not None
    assert (figures.participants, figures.unplaced, figures.proposals) == (1, 1, ())
    assert figures.effective_size == 0 and figures.design_effect == 1.0


async def test_no_margins_no_weighting(
    sessions: Sessions, load_consultation: Loader, clock: Clock
) -> None:
    consultation = await load_consultation()
    async with sessions() as session:
        assert await weighted_figures(session, consultation) is None

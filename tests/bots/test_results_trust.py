"""`consult results` with the population's margins and the trust filter, as an organiser runs
it: weighted rates beside the others, the design effect, who had no answer to weight on, how
many votes were left out as untrusted, and margins nobody's answer can reach."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from bench.processes import consult_server
from core.definitions import consultation_by_slug
from tests.bots.console.dashboard_population import compute, hold_the_scheduler
from tests.bots.test_cli import run
from tests.conftest import Loader
from tests.core.test_report import Sessions, enrol, vote
from tests.support import Clock

TOKEN = "organiser-secret-token"

SETTINGS = {
    "sequence_size": 4,
    "summary_min_votes": 1,
    "population": {"age": {"young": 0.5, "old": 0.5}},
    "weighting": {"trim": 5.0},
    "exclude_untrusted": True,
}


@pytest.fixture
async def voted(sessions: Sessions, load_consultation: Loader, clock: Clock) -> None:
    """Young people agree with p1, fewer old ones disagree, one person gave no age; a troll
    taps 'disagree' on eight cards in under two seconds."""
    consultation = await load_consultation(settings=SETTINGS)
    for age, key, count in (("young", "agree", 6), ("old", "disagree", 2), ("", "agree", 1)):
        for _ in range(count):
            person = await enrol(sessions, consultation, clock, {"age": age})
            clock.advance(seconds=30)
            await vote(sessions, clock, person, "p1.en", key)
    troll = await enrol(sessions, consultation, clock, {"age": "young"})
    for j in range(8):
        clock.advance(seconds=0.2)
        await vote(sessions, clock, troll, f"p{j + 1}.en", "disagree")


@pytest.mark.usefixtures("voted")
def test_weighted_figures_and_trust_in_the_results(database_url: str, tmp_path: Path) -> None:
    result = run(["results", "elders", "--json"], database_url, tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    trust = report["trust"]
    assert (trust["untrusted"], trust["untrusted_votes"], trust["left_out_votes"]) == (1, 8, 8)
    assert trust["reasons"]["too_fast"] == 1
    weighting = report["weighting"]
    assert weighting["participants"] == 9 and weighting["unplaced"] == 1
    # 6 young at 2/3 and 2 old at 2: agree weighs 4 of 8, where 6 of 8 voters agreed.
    (p1,) = weighting["proposals"]
    assert p1["voters"] == 8 and abs(p1["agree"]["value"] - 0.5) < 0.05
    assert weighting["design_effect"] == pytest.approx(8 * (6 * 4 / 9 + 8) / 64, abs=1e-3)
    unweighted = {p["ref"]: p for p in report["proposals"]}["p1"]
    assert unweighted["agree"]["value"] > 0.6  # the troll's disagreement is left out too

    table = run(["results", "elders"], database_url, tmp_path)
    assert table.returncode == 0, table.stderr
    assert "weighted · agree 48% (11%–85%) · disagree 48%" in table.stdout
    assert "(effective voters 6 of 8)" in table.stdout
    assert "Controversies\n  (none)" in table.stdout  # p2 to p8: only the troll voted
    assert "Weighted to the population's margins (age)" in table.stdout
    assert "1 participants without an answer to weight on" in table.stdout
    assert "Trust: 1 of 10 participants untrusted from their behaviour" in table.stdout
    assert "their 8 votes are kept but left out of the scores" in table.stdout


async def test_a_margin_nobody_can_reach_is_a_message_and_exit_2(
    sessions: Sessions, load_consultation: Loader, clock: Clock, database_url: str, tmp_path: Path
) -> None:
    consultation = await load_consultation(settings=SETTINGS)
    person = await enrol(sessions, consultation, clock, {"age": "young"})
    await vote(sessions, clock, person, "p1.en", "agree")
    result = run(["results", "elders"], database_url, tmp_path)
    assert result.returncode == 2
    assert "no participant answered 'old' to 'age'" in result.stderr
    assert "Traceback" not in result.stderr


async def test_the_api_gives_the_same_figures_and_a_422_for_an_unreachable_margin(
    sessions: Sessions, load_consultation: Loader, clock: Clock, database_url: str, tmp_path: Path
) -> None:
    consultation = await load_consultation(settings=SETTINGS)
    young = await enrol(sessions, consultation, clock, {"age": "young"})
    await vote(sessions, clock, young, "p1.en", "agree")
    await hold_the_scheduler(sessions)  # the results the test stores are the ones read
    await compute(sessions, consultation, clock)
    env = {
        "CONSULT_DATABASE_URL": database_url,
        "CONSULT_DATA_DIR": str(tmp_path),
        "CONSULT_ORGANISER_TOKEN": TOKEN,
    }
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with consult_server(env) as url:
        results = f"{url}/api/consultations/elders/results"
        unreachable = httpx.get(results, params={"locale": "fr"}, headers=auth)
        assert unreachable.status_code == 422
        assert "aucun participant n'a répondu « old » à « age »" in unreachable.json()["detail"]
        old = await enrol(sessions, consultation, clock, {"age": "old"})
        await vote(sessions, clock, old, "p1.en", "disagree")
        clock.advance(minutes=5)
        await compute(sessions, consultation, clock)  # the scheduler's next computation
        ok = httpx.get(results, headers=auth)
        assert ok.status_code == 200, ok.text
        report = ok.json()
        assert report["trust"]["untrusted"] == 0 and report["trust"]["exclude_untrusted"]
        assert report["weighting"]["participants"] == 2
        assert report["weighting"]["proposals"][0]["agree"]["value"] == pytest.approx(
            (0.5 * 2 + 0.33) / 3, abs=1e-4
        )


@pytest.mark.usefixtures("voted")
async def test_the_api_reads_the_scores_without_the_untrusted_votes(
    sessions: Sessions, clock: Clock, database_url: str, tmp_path: Path
) -> None:
    await hold_the_scheduler(sessions)
    async with sessions() as session:
        consultation = await consultation_by_slug(session, "elders")
    assert consultation is not None
    await compute(sessions, consultation, clock)
    env = {
        "CONSULT_DATABASE_URL": database_url,
        "CONSULT_DATA_DIR": str(tmp_path),
        "CONSULT_ORGANISER_TOKEN": TOKEN,
    }
    with consult_server(env) as url:
        answer = httpx.get(
            f"{url}/api/consultations/elders/results",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert (report["trust"]["untrusted"], report["trust"]["left_out_votes"]) == (1, 8)
    p1 = {p["ref"]: p for p in report["proposals"]}["p1"]
    assert p1["agree"]["value"] > 0.6  # the troll's disagreement left out, as the CLI shows
    assert report["controversies"] == []

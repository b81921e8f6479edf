"""`consult results` as an organiser runs it, and the organiser API over real HTTP (which
answers the report stored with the latest snapshot)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
import yaml

from bench.processes import consult_server
from bots.results_worker import compute_results
from core.definitions import consultation_by_slug
from core.storage import create_engine, session_factory
from tests.bots.console.dashboard_population import hold_the_scheduler
from tests.bots.test_cli import run
from tests.conftest import Loader, consultation_data
from tests.core.test_report import Sessions, enrol, vote
from tests.support import Clock

TOKEN = "organiser-secret-token"


@pytest.fixture
async def voted(sessions: Sessions, load_consultation: Loader, clock: Clock) -> None:
    """5 young participants agree with p1, and 5 who did not say their age; 2 old ones
    disagree (a segment too small to show)."""
    consultation = await load_consultation()
    for _ in range(5):
        person = await enrol(sessions, consultation, clock, {"age": ""})
        await vote(sessions, clock, person, "p1.en", "agree")
    for _ in range(5):
        person = await enrol(sessions, consultation, clock, {"age": "young"})
        await vote(sessions, clock, person, "p1.fr", "agree")
    for _ in range(2):
        person = await enrol(sessions, consultation, clock, {"age": "old"})
        await vote(sessions, clock, person, "p1.en", "disagree")


def store_results(database_url: str, clock: Clock) -> None:
    """The results computed and stored as the scheduler's child does, and the scheduler's
    lease held by the test, so that the server stores none of its own meanwhile."""

    async def store() -> None:
        engine = create_engine(database_url)
        sessions = session_factory(engine)
        await hold_the_scheduler(sessions)
        async with sessions() as session:
            consultation = await consultation_by_slug(session, "elders")
        await engine.dispose()
        assert consultation is not None and consultation.id is not None
        assert await compute_results(database_url, [consultation.id], clock()) == (1, 0)

    asyncio.run(store())


@pytest.mark.usefixtures("voted")
def test_results_as_json_and_as_a_table(database_url: str, tmp_path: Path) -> None:
    result = run(["results", "elders", "--json", "--by", "age"], database_url, tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["participants"], report["votes"], report["consensus"]) == (12, 12, ["p1"])
    assert report["locale"] == "en"  # the organiser's language (C -> en), offered by elders
    young, old = report["breakdown"]["segments"]
    assert young["participants"] == 5 and young["proposals"][0]["agree"] == 1.0
    assert old == {"option": "old", "label": "40 and over", "suppressed": True, "fewer_than": 5}

    table = run(["results", "elders", "--by", "age"], database_url, tmp_path)
    assert table.returncode == 0, table.stderr
    assert "Results of 'elders': How can we better care for our elders?" in table.stdout
    assert "12 participants, 12 votes; proposals: accepted 14" in table.stdout
    assert "Consensus\n  p1  We should fund weekly home visits" in table.stdout
    assert "40 and over: fewer than 5 participants, not shown" in table.stdout
    assert "Under 40 (5 participants)" in table.stdout

    french = run(["results", "elders"], database_url, tmp_path, language="fr_FR.UTF-8")
    assert "Il faut financer des visites à domicile chaque semaine" in french.stdout
    assert "Controverses" in french.stdout
    english = run(["results", "elders", "--locale", "en"], database_url, tmp_path, "", "fr_FR")
    assert "We should fund weekly home visits" in english.stdout


@pytest.mark.usefixtures("voted")
def test_an_unknown_slug_or_question_is_a_message_and_exit_2(
    database_url: str, tmp_path: Path
) -> None:
    missing = run(["results", "eldres"], database_url, tmp_path)
    assert missing.returncode == 2
    assert "there is no consultation 'eldres'; check the slug (existing: elders)" in missing.stderr
    unknown = run(["results", "elders", "--by", "salary"], database_url, tmp_path)
    assert unknown.returncode == 2
    assert "'salary' is not a profile question of 'elders'; use one of: age" in unknown.stderr


@pytest.mark.usefixtures("voted")
def test_the_api_answers_the_organiser_only(
    database_url: str, tmp_path: Path, clock: Clock
) -> None:
    store_results(database_url, clock)
    env = {
        "CONSULT_DATABASE_URL": database_url,
        "CONSULT_DATA_DIR": str(tmp_path),
        "CONSULT_ORGANISER_TOKEN": TOKEN,
    }
    with consult_server(env) as url:
        results = f"{url}/api/consultations/elders/results"
        anonymous = httpx.get(results)
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in anonymous.json()["detail"]
        wrong = httpx.get(results, headers={"Authorization": "Bearer not-the-token"})
        assert wrong.status_code == 401
        assert "unknown or was revoked" in wrong.json()["detail"]
        assert httpx.get(results, headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401

        auth = {"Authorization": f"Bearer {TOKEN}"}
        ok = httpx.get(results, params={"by": "age", "locale": "fr"}, headers=auth)
        assert ok.status_code == 200
        report = ok.json()
        assert report["question"] == "Comment mieux prendre soin de nos aînés ?"
        assert report["consensus"] == ["p1"]
        young, old = report["breakdown"]["segments"]
        assert (young["label"], young["participants"]) == ("Moins de 40 ans", 5)
        assert old == {
            "option": "old",
            "label": "40 ans et plus",
            "suppressed": True,
            "fewer_than": 5,
        }
        assert report["computed_at"] == clock().isoformat()  # stored, not computed now
        assert report["opinion_groups"]["groups_reason"] is not None  # too few for groups
        assert "dashboard" not in report["opinion_groups"]
        # In another language, the same figures under that language's labels.
        english = httpx.get(results, params={"by": "age", "locale": "en"}, headers=auth).json()
        assert english["question"] == "How can we better care for our elders?"
        assert english["breakdown"]["label"] == "Your age?"
        assert [s["label"] for s in english["breakdown"]["segments"]] == [
            "Under 40",
            "40 and over",
        ]
        assert english["breakdown"]["segments"][0]["proposals"] == young["proposals"]
        # Without a locale: the consultation's default language.
        assert httpx.get(results, headers=auth).json()["locale"] == "fr"

        missing = httpx.get(f"{url}/api/consultations/eldres/results", headers=auth)
        assert missing.status_code == 404
        assert "no consultation 'eldres'" in missing.json()["detail"]
        assert "existing: elders" in missing.json()["detail"]
        unknown = httpx.get(results, params={"by": "salary"}, headers=auth)
        assert unknown.status_code == 422
        assert "use one of: age" in unknown.json()["detail"]

        # A question added since the latest snapshot: its breakdown comes with the next one.
        data = consultation_data()
        region = {
            "id": "region",
            "label": {"fr": "Région ?", "en": "Region?"},
            "options": [
                {"id": "north", "label": {"fr": "Nord", "en": "North"}},
                {"id": "south", "label": {"fr": "Sud", "en": "South"}},
            ],
        }
        data["profile_questions"].append(region)
        path = tmp_path / "elders.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        assert run(["consultation", "load", str(path)], database_url, tmp_path).returncode == 0
        later = httpx.get(results, params={"by": "region", "locale": "en"}, headers=auth)
        assert later.status_code == 422
        assert "no breakdown by 'region' in 'en'" in later.json()["detail"]
        assert "next computation stores it (every 5 minutes" in later.json()["detail"]


def test_without_the_legacy_token_organisers_use_their_own(tmp_path: Path, clock: Clock) -> None:
    database_url = f"sqlite:///{tmp_path / 'db'}"
    env = {
        "CONSULT_DATABASE_URL": database_url,
        "CONSULT_DATA_DIR": str(tmp_path),
        "CONSULT_ORGANISER_TOKEN": "",  # even if the environment running the tests sets one
    }
    path = tmp_path / "elders.yaml"
    path.write_text(yaml.safe_dump(consultation_data(), allow_unicode=True), encoding="utf-8")
    assert run(["consultation", "load", str(path)], database_url, tmp_path).returncode == 0
    run(["organiser", "add", "ana@example.org", "--role", "analyst"], database_url, tmp_path)
    token = run(["organiser", "token", "ana@example.org"], database_url, tmp_path).stdout.strip()
    store_results(database_url, clock)
    with consult_server(env) as url:
        results = f"{url}/api/consultations/elders/results"
        assert httpx.get(results, headers={"Authorization": "Bearer x"}).status_code == 401
        mine = httpx.get(results, headers={"Authorization": f"Bearer {token}"})
        assert mine.status_code == 200 and mine.json()["slug"] == "elders"

"""Every storage-touching test runs on SQLite, and on PostgreSQL when
CONSULT_TEST_POSTGRES_URL names a server (CI always sets it)."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from core.definitions import parse_consultation, upsert_consultation
from core.flow import Flow
from core.models import Consultation
from core.storage import create_engine, migrate, session_factory
from tests.support import Chat, Clock

POSTGRES_URL = os.environ.get("CONSULT_TEST_POSTGRES_URL")
SECRET = b"test-secret-key"

BACKENDS = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=pytest.mark.skipif(not POSTGRES_URL, reason="CONSULT_TEST_POSTGRES_URL not set"),
    ),
]


def _own_database_url(server_url: str) -> str:
    """A database of this test run's own on the server, so that parallel runs never wipe each
    other's tables (every test resets its schema)."""
    base, _, _ = server_url.rpartition("/")
    return f"{base}/consult_test_{os.getpid()}"


async def _admin(server_url: str, statement: str) -> None:
    engine = create_engine(server_url)
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text(statement))
    await engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    assert POSTGRES_URL is not None
    url = _own_database_url(POSTGRES_URL)
    name = url.rpartition("/")[2]
    asyncio.run(_admin(POSTGRES_URL, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    asyncio.run(_admin(POSTGRES_URL, f"CREATE DATABASE {name}"))
    yield url
    asyncio.run(_admin(POSTGRES_URL, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def _reset_postgres(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'consult.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    asyncio.run(_reset_postgres(url))
    return url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await migrate(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def flow(sessions: async_sessionmaker[AsyncSession], clock: Clock) -> Flow:
    return Flow(sessions, SECRET, clock=clock, rng=random.Random(7))


ELDER_PROPOSALS = [
    ("financer des visites à domicile chaque semaine", "fund weekly home visits"),
    ("former davantage d'aides-soignants", "train more care assistants"),
    ("créer des colocations entre jeunes et seniors", "create house shares for young and old"),
    ("baisser le prix des maisons de retraite", "lower the cost of care homes"),
    ("aider les aidants familiaux à souffler", "give family carers time off"),
    ("ouvrir les cantines scolaires aux anciens", "open school canteens to older people"),
    ("installer des bancs dans toutes les rues", "put benches in every street"),
    ("proposer des cours d'informatique gratuits", "offer free computer classes"),
    ("rendre les bus gratuits après 70 ans", "make buses free after seventy"),
    ("adapter les logements au vieillissement", "adapt homes for ageing"),
    ("mieux payer les infirmières de nuit", "pay night nurses better"),
    ("lutter contre l'isolement par le bénévolat", "fight loneliness through volunteering"),
    ("créer un numéro d'écoute national", "set up a national helpline"),
    ("développer la télémédecine rurale", "develop telemedicine in rural areas"),
]


def consultation_data(**overrides: Any) -> dict[str, Any]:
    """A small bilingual consultation with 14 proposals; override any top-level field."""
    data: dict[str, Any] = {
        "slug": "elders",
        "status": "open",
        "default_locale": "fr",
        "locales": ["fr", "en"],
        "question": {
            "fr": "Comment mieux prendre soin de nos aînés ?",
            "en": "How can we better care for our elders?",
        },
        "settings": {"sequence_size": 4, "summary_min_votes": 1, "results_published": True},
        "profile_questions": [
            {
                "id": "age",
                "label": {"fr": "Votre âge ?", "en": "Your age?"},
                "options": [
                    {"id": "young", "label": {"fr": "Moins de 40 ans", "en": "Under 40"}},
                    {"id": "old", "label": {"fr": "40 ans et plus", "en": "40 and over"}},
                ],
            }
        ],
        "proposals": [
            {"ref": f"p{i}", "text": {"fr": f"Il faut {fr}", "en": f"We should {en}"}}
            for i, (fr, en) in enumerate(ELDER_PROPOSALS, start=1)
        ],
    }
    data.update(overrides)
    return data


Loader = Callable[..., Awaitable[Consultation]]


@pytest.fixture
def load_consultation(sessions: async_sessionmaker[AsyncSession], clock: Clock) -> Loader:
    async def load(**overrides: Any) -> Consultation:
        spec = parse_consultation(consultation_data(**overrides))
        async with sessions() as session, session.begin():
            consultation, _ = await upsert_consultation(session, spec, clock())
        return consultation

    return load


@pytest.fixture
def chat(flow: Flow) -> Callable[..., Chat]:
    def make(user_id: str = "alice", locale_hint: str | None = "fr", **kwargs: Any) -> Chat:
        return Chat(flow, user_id, locale_hint, **kwargs)

    return make


def pytest_report_header() -> str:
    if POSTGRES_URL:
        return "storage backends: SQLite and PostgreSQL (CONSULT_TEST_POSTGRES_URL)"
    return "storage backends: SQLite only (set CONSULT_TEST_POSTGRES_URL to add PostgreSQL)"

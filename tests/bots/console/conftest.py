"""The console under uvicorn (the real app, its clock injected) over a migrated database, with
organisers, participants' proposals and a signed-in browser-like client at hand."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bench.processes import serving
from bots.server import create_app
from bots.settings import Settings
from core.definitions import settings_of
from core.models import AuditEntry, Consultation, Participant, Proposal
from core.organisers import Role, add_organiser
from core.proposals import submit_proposal
from tests.support import Clock

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token a console page's forms carry."""
    found = _CSRF.search(html)
    assert found is not None, "the page has no form token"
    return found.group(1)


@dataclass
class ConsoleServer:
    url: str
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    consultation: Consultation
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    @property
    def console(self) -> str:
        return f"{self.url}/console"

    async def code_for(self, email: str, role: Role, slug: str | None = "elders") -> str:
        """A one-time sign-in code for a (new or existing) organiser."""
        async with self.sessions() as session, session.begin():
            _, code = await add_organiser(session, email, role, slug, now=self.clock())
        return code

    def client(self) -> httpx.AsyncClient:
        client = httpx.AsyncClient(timeout=30)
        self.clients.append(client)
        return client

    async def signed_in(
        self, email: str, role: Role = Role.MODERATOR, slug: str | None = "elders"
    ) -> httpx.AsyncClient:
        """A client signed in through the link's page, as a browser would."""
        code = await self.code_for(email, role, slug)
        client = self.client()
        page = await client.get(f"{self.console}/sign-in", params={"code": code})
        assert page.status_code == 200
        answer = await client.post(
            f"{self.console}/sign-in", data={"code": code, "csrf": csrf_of(page.text)}
        )
        assert answer.status_code == 303, answer.text
        return client

    async def propose(self, *texts: str, author: int | None = None) -> list[int]:
        """Pending proposals (one author for all, a new participant unless given), a minute
        apart."""
        ids = []
        async with self.sessions() as session, session.begin():
            if author is None:
                participant = Participant(created_at=self.clock())
                session.add(participant)
                await session.flush()
                author = participant.id
            assert author is not None and self.consultation.id is not None
            for typed in texts:
                proposal = await submit_proposal(
                    session,
                    author,
                    self.consultation.id,
                    typed,
                    "en",
                    settings_of(self.consultation),
                    self.clock(),
                )
                ids.append(proposal.id)
                self.clock.advance(minutes=1)
        return ids

    async def proposal(self, proposal_id: int) -> Proposal:
        async with self.sessions() as session:
            found = await session.get(Proposal, proposal_id)
            assert found is not None
            return found

    async def accepted_seed(self) -> Proposal:
        """One of the consultation's accepted seed proposals, in English."""
        async with self.sessions() as session:
            found = await session.exec(
                select(Proposal)
                .where(Proposal.consultation_id == self.consultation.id, Proposal.locale == "en")
                .order_by(col(Proposal.id))
            )
            return found.first()  # type: ignore[return-value]

    async def audit_count(self) -> int:
        async with self.sessions() as session:
            return len(list(await session.exec(select(AuditEntry))))

    def snapshot_of(self, proposal: Proposal) -> dict[str, Any]:
        return {
            "status": proposal.status,
            "text": proposal.text,
            "refusal_reason": proposal.refusal_reason,
        }


@pytest.fixture
async def server(
    database_url: str,
    tmp_path: Path,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    load_consultation: Any,
) -> AsyncIterator[ConsoleServer]:
    consultation = await load_consultation()
    settings = Settings(
        data_dir=tmp_path, database_url=database_url, secret_key="console-test-secret"
    )
    app = create_app(settings, channels=[], clock=clock)
    async with serving(app) as url:
        running = ConsoleServer(url, sessions, clock, consultation)
        try:
            yield running
        finally:
            for client in running.clients:
                await client.aclose()

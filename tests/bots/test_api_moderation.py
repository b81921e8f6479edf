"""The moderation API over real HTTP (uvicorn on a local port), on both databases: the queue,
every decision, the filtered list, the audit log; every refusal a 4xx saying what to fix with
nothing changed; two servers deciding the same proposal at once; malformed bodies never 500."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bench.processes import consult_server, serving
from bots.server import create_app
from bots.settings import Settings
from core.definitions import settings_of
from core.models import AuditEntry, Consultation, Participant, Proposal, ProposalEvent
from core.organisers import Role, add_organiser, issue_token
from core.proposals import submit_proposal
from tests.conftest import SECRET
from tests.fuzzing import FUZZ, LONG_TEXT, mutated, to_json
from tests.support import Clock

LEGACY = "legacy-organiser-token"
Sessions = async_sessionmaker[AsyncSession]
_authors = itertools.count(1)


@dataclass
class Rig:
    url: str
    http: httpx.AsyncClient
    tokens: dict[str, str]  # admin, moderator, analyst, outsider (moderator elsewhere)
    elders: Consultation

    async def get(self, path: str, who: str | None = "moderator", **kwargs: Any) -> httpx.Response:
        return await self.http.get(path, headers=self._auth(who), **kwargs)

    async def post(self, path: str, who: str | None = "moderator", **kwargs: Any) -> httpx.Response:
        headers = {**self._auth(who), **kwargs.pop("headers", {})}
        return await self.http.post(path, headers=headers, **kwargs)

    def _auth(self, who: str | None) -> dict[str, str]:
        if who is None:
            return {}
        return {"Authorization": f"Bearer {self.tokens.get(who, who)}"}


async def _organiser(sessions: Sessions, clock: Clock, email: str, role: Role, slug: str | None):
    async with sessions() as session, session.begin():
        await add_organiser(session, email, role, slug, now=clock())
        return await issue_token(session, email, now=clock())


async def propose(sessions: Sessions, clock: Clock, consultation: Consultation, typed: str) -> int:
    """A pending proposal by a new participant."""
    async with sessions() as session, session.begin():
        participant = Participant(created_at=clock())
        session.add(participant)
        await session.flush()
        assert participant.id is not None and consultation.id is not None
        proposal = await submit_proposal(
            session,
            participant.id,
            consultation.id,
            f"We should {typed}",
            "en",
            settings_of(consultation),
            clock(),
        )
        assert proposal.id is not None
        return proposal.id


async def seed(sessions: Sessions, consultation: Consultation, ref: str) -> Proposal:
    """One of the consultation's accepted proposals from its definition."""
    async with sessions() as session:
        query = select(Proposal).where(
            Proposal.ref == ref, Proposal.consultation_id == consultation.id
        )
        return (await session.exec(query)).one()


async def snapshot(sessions: Sessions) -> tuple[Any, ...]:
    """Everything a moderation request may change."""
    async with sessions() as session:
        proposals = await session.exec(
            select(Proposal.id, Proposal.status, Proposal.text, Proposal.locked_by).order_by(
                col(Proposal.id)
            )
        )
        events = (await session.exec(select(func.count()).select_from(ProposalEvent))).one()
        audit = (await session.exec(select(func.count()).select_from(AuditEntry))).one()
        return (proposals.all(), events, audit)


@pytest.fixture
async def rig(
    load_consultation, sessions: Sessions, clock: Clock, database_url: str, tmp_path: Path
) -> AsyncIterator[Rig]:
    elders = await load_consultation()
    await load_consultation(slug="other")
    tokens = {
        "admin": await _organiser(sessions, clock, "root@example.org", Role.ADMIN, None),
        "moderator": await _organiser(sessions, clock, "ana@example.org", Role.MODERATOR, "elders"),
        "second": await _organiser(sessions, clock, "ben@example.org", Role.MODERATOR, "elders"),
        "analyst": await _organiser(sessions, clock, "carl@example.org", Role.ANALYST, "elders"),
        "outsider": await _organiser(sessions, clock, "dora@example.org", Role.MODERATOR, "other"),
        "legacy": LEGACY,
    }
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        secret_key=SECRET.decode(),
        organiser_token=LEGACY,
    )
    app = create_app(settings, channels=[], clock=clock)  # the API reads the test's clock
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        yield Rig(url, http, tokens, elders)


async def test_the_queue_serves_one_proposal_to_one_moderator_with_its_similar_ones(
    rig: Rig, sessions: Sessions, clock: Clock
) -> None:
    copy = await propose(sessions, clock, rig.elders, "fund weekly home visits")
    clock.advance(minutes=1)
    other = await propose(sessions, clock, rig.elders, "paint the town hall in green")
    original = await seed(sessions, rig.elders, "p1.en")

    served = await rig.get("/api/consultations/elders/moderation/next")
    assert served.status_code == 200, served.text
    body = served.json()
    assert body["proposal"]["id"] == copy
    assert body["proposal"]["text"] == "We should fund weekly home visits"
    assert body["proposal"]["locale"] == "en" and body["proposal"]["status"] == "pending"
    assert body["proposal"]["locked_by"] == "ana@example.org"
    assert body["lock_expires_at"] == body["proposal"]["lock_expires_at"]
    assert isinstance(body["flags"], list)
    assert body["similar"][0]["proposal_id"] == original.id
    assert body["similar"][0]["status"] == "accepted" and 0 < body["similar"][0]["score"] <= 1
    assert all(s["proposal_id"] != copy for s in body["similar"])

    again = await rig.get("/api/consultations/elders/moderation/next")
    assert again.json()["proposal"]["id"] == copy  # asking again: the same one, still held
    second = await rig.get("/api/consultations/elders/moderation/next", "second")
    assert second.json()["proposal"]["id"] == other
    empty = await rig.get("/api/consultations/elders/moderation/next", "admin")
    assert empty.status_code == 204 and empty.content == b""

    renewed = await rig.post(f"/api/proposals/{copy}/renew")
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["proposal_id"] == copy
    held = await rig.post(f"/api/proposals/{copy}/renew", "second")
    assert held.status_code == 409
    assert held.json()["locked_by"] == "ana@example.org"
    assert "held by ana@example.org" in held.json()["detail"]


async def test_a_lapsed_lock_passes_to_the_next_moderator(
    rig: Rig, sessions: Sessions, clock: Clock
) -> None:
    proposal = await propose(sessions, clock, rig.elders, "open libraries until midnight")
    served = await rig.get("/api/consultations/elders/moderation/next")
    assert served.json()["proposal"]["id"] == proposal
    assert (await rig.get("/api/consultations/elders/moderation/next", "second")).status_code == 204
    clock.advance(seconds=31)  # the lock lasts 30 s by default, and ana did not renew it
    taken = await rig.get("/api/consultations/elders/moderation/next", "second")
    assert taken.json()["proposal"]["locked_by"] == "ben@example.org"
    late = await rig.post(f"/api/proposals/{proposal}/accept")
    assert late.status_code == 409 and late.json()["locked_by"] == "ben@example.org"
    decided = await rig.post(f"/api/proposals/{proposal}/accept", "second")
    assert decided.status_code == 200, decided.text


async def test_each_decision_is_applied_recorded_and_audited_as_from_the_api(
    rig: Rig, sessions: Sessions, clock: Clock
) -> None:
    ids = [
        await propose(sessions, clock, rig.elders, typed)
        for typed in (
            "open libraries until midnight",
            "plant trees in every school",
            "fund weekly home visits",
            "build more bike lanes",
            "hire more night bus drivers",
        )
    ]
    accepted, refused, duplicate, postponed, archived = ids
    original = await seed(sessions, rig.elders, "p1.en")

    edit = {"text": "open public libraries until midnight", "notify": False}
    answers = [
        await rig.post(f"/api/proposals/{accepted}/accept", json=edit),
        await rig.post(f"/api/proposals/{refused}/refuse", json={"reason": "off-topic"}),
        await rig.post(
            f"/api/proposals/{duplicate}/refuse",
            json={"reason": "already-exists", "duplicate_of": original.id},
        ),
        await rig.post(f"/api/proposals/{postponed}/postpone"),
        await rig.post(f"/api/proposals/{archived}/archive", "admin"),
        await rig.post(f"/api/proposals/{accepted}/withdraw", "legacy"),
    ]
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
    assert [a.json()["status"] for a in answers] == [
        "accepted",
        "refused",
        "refused",
        "postponed",
        "archived",
        "withdrawn",
    ]
    async with sessions() as session:
        edited = await session.get(Proposal, accepted)
        assert (
            edited is not None and edited.text == "We should open public libraries until midnight"
        )
        history = (
            await session.exec(
                select(ProposalEvent)
                .where(ProposalEvent.proposal_id == accepted)
                .order_by(col(ProposalEvent.id))
            )
        ).all()
    assert [(e.action, e.moderator, e.source) for e in history] == [
        ("accept", "ana@example.org", "api"),
        ("withdraw", "token", "api"),
    ]
    assert history[0].original_text == "We should open libraries until midnight"

    audit = await rig.get("/api/consultations/elders/audit", "analyst", params={"limit": 4})
    assert audit.status_code == 200, audit.text
    page = audit.json()
    assert [e["action"] for e in page["entries"]] == [
        "proposal.withdraw",
        "proposal.archive",
        "proposal.postpone",
        "proposal.refuse",
    ]
    assert page["entries"][1]["actor"] == "root@example.org"
    assert {e["source"] for e in page["entries"]} == {"api"}
    assert page["entries"][0]["consultation"] == "elders"
    rest = await rig.get(
        "/api/consultations/elders/audit", "analyst", params={"before": page["next_before"]}
    )
    assert [e["action"] for e in rest.json()["entries"]] == ["proposal.refuse", "proposal.accept"]
    assert rest.json()["next_before"] is None

    whole = await rig.get("/api/audit", "admin")
    assert whole.status_code == 200 and len(whole.json()["entries"]) == 6
    assert (await rig.get("/api/audit", "legacy")).status_code == 200
    for who in ("moderator", "analyst"):
        refused_log = await rig.get("/api/audit", who)
        assert refused_log.status_code == 403
        assert "administrators of every consultation" in refused_log.json()["detail"]


async def test_every_refusal_says_what_to_fix_and_changes_nothing(
    rig: Rig, sessions: Sessions, clock: Clock
) -> None:
    pending = await propose(sessions, clock, rig.elders, "open libraries until midnight")
    free = await propose(sessions, clock, rig.elders, "plant trees in every school")
    decided = await propose(sessions, clock, rig.elders, "build more bike lanes")
    assert (await rig.post(f"/api/proposals/{decided}/accept")).status_code == 200
    served = await rig.get("/api/consultations/elders/moderation/next", "second")
    assert served.json()["proposal"]["id"] == pending
    served = await rig.get("/api/consultations/elders/moderation/next", "second")
    assert served.json()["proposal"]["id"] == pending  # ben holds `pending`
    await rig.post(f"/api/proposals/{pending}/renew", "second")
    before = await snapshot(sessions)

    cases: list[tuple[str, str, str | None, dict[str, Any] | None, int, str]] = [
        ("post", f"/api/proposals/{free}/accept", None, None, 401, "Authorization: Bearer"),
        ("post", f"/api/proposals/{free}/accept", "wrong-token", None, 401, "unknown or was"),
        ("get", "/api/consultations/elders/moderation/next", None, None, 401, "Bearer"),
        ("post", f"/api/proposals/{free}/accept", "analyst", None, 403, "moderator or admin"),
        ("post", f"/api/proposals/{free}/refuse", "outsider", {"reason": "off-topic"}, 403, ""),
        ("get", "/api/consultations/elders/moderation/next", "outsider", None, 403, "role"),
        ("get", "/api/consultations/elders/proposals", "outsider", None, 403, "no role"),
        ("get", "/api/consultations/elders/audit", "outsider", None, 403, "no role"),
        ("get", "/api/consultations/elders/results", "outsider", None, 403, "no role"),
        ("post", "/api/proposals/99999/accept", None, None, 404, "no proposal #99999"),
        ("get", "/api/consultations/nowhere/moderation/next", None, None, 404, "'nowhere'"),
        ("get", "/api/consultations/nowhere/audit", None, None, 404, "'nowhere'"),
        ("post", f"/api/proposals/{pending}/accept", None, None, 409, "held by ben@example.org"),
        ("post", f"/api/proposals/{decided}/refuse", None, {"reason": "off-topic"}, 409, ""),
        ("post", f"/api/proposals/{decided}/postpone", None, None, 409, "accepted already"),
        ("post", f"/api/proposals/{free}/withdraw", None, None, 409, "this one is pending"),
        ("post", f"/api/proposals/{decided}/renew", None, None, 409, "accepted already"),
        ("post", f"/api/proposals/{free}/refuse", None, {"reason": "boring"}, 422, "off-topic"),
        (
            "post",
            f"/api/proposals/{free}/refuse",
            None,
            {"reason": "already-exists"},
            422,
            "needs duplicate_of",
        ),
        (
            "post",
            f"/api/proposals/{free}/refuse",
            None,
            {"reason": "off-topic", "duplicate_of": decided},
            422,
            "only with the reason already-exists",
        ),
        (
            "post",
            f"/api/proposals/{free}/refuse",
            None,
            {"reason": "already-exists", "duplicate_of": free},
            422,
            "not another accepted proposal",
        ),
        ("post", f"/api/proposals/{free}/accept", None, {"text": "go " * 80}, 422, "140"),
        ("post", f"/api/proposals/{free}/accept", None, {"txt": "typo"}, 422, ""),
        ("post", f"/api/proposals/{free}/refuse", None, {}, 422, ""),
        ("post", "/api/proposals/0/accept", None, None, 422, ""),
        ("get", "/api/consultations/elders/proposals", None, None, 200, ""),
        ("get", "/api/consultations/elders/proposals?status=lost", None, None, 422, ""),
        ("get", "/api/consultations/elders/proposals?limit=0", None, None, 422, ""),
    ]
    for method, path, who, body, status, says in cases:
        if who is None and status != 401:
            who = "moderator"
        caller = rig.post if method == "post" else rig.get
        kwargs: dict[str, Any] = {} if body is None else {"json": body}
        response = await caller(path, who, **kwargs)
        assert response.status_code == status, (path, who, response.text)
        if status != 200:
            text = str(response.json())
            assert says in text, (path, text)
        if status == 401:
            assert response.headers["www-authenticate"] == "Bearer"
    assert await snapshot(sessions) == before

    french = await rig.http.post(
        "/api/proposals/99999/accept",
        headers={**rig._auth("moderator"), "Accept-Language": "fr-FR,fr;q=0.9"},
    )
    assert french.json() == {
        "detail": "Il n'y a pas de proposition n° 99999.",
        "code": "api.unknown_proposal",
    }


async def test_the_list_filters_by_status_flag_and_text_page_by_page(
    rig: Rig, sessions: Sessions, clock: Clock
) -> None:
    first = await propose(sessions, clock, rig.elders, "open libraries until midnight")
    clock.advance(minutes=1)
    linked = await propose(sessions, clock, rig.elders, "read the plan on www.example.com now")
    clock.advance(minutes=1)
    await propose(sessions, clock, rig.elders, "100% of libraries open on_sundays")

    pending = await rig.get(
        "/api/consultations/elders/proposals", "analyst", params={"status": "pending"}
    )
    assert pending.status_code == 200, pending.text
    assert pending.json()["total"] == 3
    assert [p["id"] for p in pending.json()["proposals"]][:2] == [first, linked]

    found = await rig.get(
        "/api/consultations/elders/proposals", "analyst", params={"q": "LIBRARIES"}
    )
    assert found.json()["proposals"][0]["id"] == first
    assert found.json()["total"] == 2
    literal = await rig.get("/api/consultations/elders/proposals", params={"q": "100%"})
    assert literal.json()["total"] == 1  # % and _ are searched as typed, not as wildcards
    underscore = await rig.get("/api/consultations/elders/proposals", params={"q": "n_s"})
    assert underscore.json()["total"] == 1

    flagged = await rig.get("/api/consultations/elders/proposals", params={"flag": "link"})
    assert [p["id"] for p in flagged.json()["proposals"]] == [linked]
    assert "link" in flagged.json()["proposals"][0]["flags"]

    accepted = await rig.get(
        "/api/consultations/elders/proposals",
        params={"status": "accepted", "limit": 5, "offset": 10},
    )
    page = accepted.json()
    assert (page["total"], page["limit"], page["offset"]) == (28, 5, 10)
    assert len(page["proposals"]) == 5


async def test_the_openapi_document_describes_every_route_and_its_refusals(rig: Rig) -> None:
    document = (await rig.http.get("/openapi.json")).json()
    paths = document["paths"]
    for path in (
        "/api/consultations/{slug}/moderation/next",
        "/api/consultations/{slug}/proposals",
        "/api/consultations/{slug}/audit",
        "/api/audit",
        "/api/proposals/{proposal_id}/accept",
        "/api/proposals/{proposal_id}/refuse",
        "/api/proposals/{proposal_id}/postpone",
        "/api/proposals/{proposal_id}/archive",
        "/api/proposals/{proposal_id}/withdraw",
        "/api/proposals/{proposal_id}/renew",
    ):
        operation = next(iter(paths[path].values()))
        ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert "$ref" in ok, path
        assert {"401", "403", "404"} <= set(operation["responses"]), path
    assert "204" in paths["/api/consultations/{slug}/moderation/next"]["get"]["responses"]


# Any JSON at all, and bodies shaped like valid ones with values replaced.
VALID_BODIES = [
    {"text": "open public libraries until midnight", "notify": True},
    {"reason": "already-exists", "duplicate_of": 1, "notify": False},
    {"reason": "off-topic"},
]


@FUZZ
@given(
    body=mutated(VALID_BODIES),
    action=st.sampled_from(["accept", "refuse", "postpone", "withdraw", "renew"]),
)
@example(body={"text": LONG_TEXT}, action="accept")
@example(body={"text": "\x00" * 20}, action="accept")
@example(body={"reason": "off-topic", "duplicate_of": 10**30}, action="refuse")
@example(body=[], action="refuse")
@example(body=None, action="accept")
async def test_a_malformed_body_is_never_a_server_error(
    rig: Rig, sessions: Sessions, clock: Clock, body: Any, action: str
) -> None:
    proposal = await propose(sessions, clock, rig.elders, "open libraries until midnight")
    response = await rig.post(
        f"/api/proposals/{proposal}/{action}",
        content=to_json(body),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code < 500, response.text
    assert response.status_code in (200, 400, 409, 422), response.text


async def test_two_servers_deciding_at_once_one_wins_the_other_is_told(
    load_consultation, sessions: Sessions, clock: Clock, database_url: str, tmp_path: Path
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("two servers on one SQLite file write one at a time: PostgreSQL shows it")
    elders = await load_consultation()
    ana = await _organiser(sessions, clock, "ana@example.org", Role.MODERATOR, "elders")
    ben = await _organiser(sessions, clock, "ben@example.org", Role.MODERATOR, "elders")
    contested = [
        await propose(sessions, clock, elders, f"open library number {n} until midnight")
        for n in range(5)
    ]
    env = {"CONSULT_DATABASE_URL": database_url, "CONSULT_DATA_DIR": str(tmp_path)}
    with consult_server(env) as first, consult_server(env) as second:
        async with httpx.AsyncClient(timeout=30) as http:
            for proposal in contested:
                outcomes = await asyncio.gather(
                    http.post(
                        f"{first}/api/proposals/{proposal}/accept",
                        headers={"Authorization": f"Bearer {ana}"},
                    ),
                    http.post(
                        f"{second}/api/proposals/{proposal}/refuse",
                        json={"reason": "off-topic"},
                        headers={"Authorization": f"Bearer {ben}"},
                    ),
                )
                statuses = sorted(o.status_code for o in outcomes)
                assert statuses == [200, 409], [o.text for o in outcomes]
                won = next(o for o in outcomes if o.status_code == 200).json()["status"]
                lost = next(o for o in outcomes if o.status_code == 409).json()
                assert lost["code"] == "api.already_decided" and lost["status"] == won
    async with sessions() as session:
        events = (await session.exec(select(func.count()).select_from(ProposalEvent))).one()
    assert events == len(contested)

"""The broadcasts API over real HTTP (uvicorn on a local port), on both databases: an admin
schedules, pauses, resumes and cancels; moderators and analysts read; the audience's size by
channel and locale; the preview; every bad input a 422 naming the field and what to fix, with
nothing written; no answer ever carries a recipient's address."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import example, given, settings
from sqlmodel import func, select

from bots.scheduler import LEASE
from core.models import (
    AuditEntry,
    Broadcast,
    BroadcastMessage,
    ChannelIdentity,
    Consultation,
    Contact,
    Participant,
    Participation,
    SchedulerLease,
)
from tests.bots import test_api_moderation as api
from tests.bots.test_api_moderation import Rig, Sessions
from tests.fuzzing import FUZZ, LONG_TEXT, mutated, to_json
from tests.support import Clock

rig = api.rig  # the API under uvicorn, with an organiser of each role, on both databases

ADDRESS = "+33612345678"  # a participant's address: no answer may carry it
TEXTS = {"fr": "Votez avant dimanche !", "en": "Vote before Sunday!"}


async def people(
    sessions: Sessions,
    clock: Clock,
    consultation: Consultation,
    *who: tuple[str, str, str],
    consented: bool = True,
) -> None:
    """Participants of the consultation, each (channel, locale, age), reachable at an address."""
    async with sessions() as session, session.begin():
        for n, (channel, locale, age) in enumerate(who):
            participant = Participant(locale=locale, created_at=clock())
            session.add(participant)
            await session.flush()
            assert participant.id is not None and consultation.id is not None
            session.add(
                ChannelIdentity(
                    channel=channel,
                    identity_hash=f"{channel}-{participant.id}",
                    address=f"{ADDRESS}{n}",
                    participant_id=participant.id,
                    created_at=clock(),
                )
            )
            session.add(
                Participation(
                    participant_id=participant.id,
                    consultation_id=consultation.id,
                    consented_at=clock() if consented else None,
                    profile={"age": age},
                    created_at=clock(),
                    updated_at=clock(),
                )
            )


async def hold_the_scheduler(sessions: Sessions) -> None:
    """The test decides when occurrences are planned: it holds the scheduler's lease, as
    another process would, so the server's own scheduler (which may read the machine's clock,
    past every date here) plans nothing. Taken before any broadcast exists."""
    until = datetime(2100, 1, 1, tzinfo=UTC)
    async with sessions() as session, session.begin():
        lease = await session.get(SchedulerLease, LEASE)
        lease = lease or SchedulerLease(name=LEASE, holder="", expires_at=until)
        lease.holder, lease.expires_at = "the-test", until
        session.add(lease)


async def written(sessions: Sessions) -> tuple[int, int, int]:
    """Broadcasts, their messages and audit entries: what a refused request must not change."""
    async with sessions() as session:
        counts = []
        for table in (Broadcast, BroadcastMessage, AuditEntry):
            counts.append((await session.exec(select(func.count()).select_from(table))).one())
        return counts[0], counts[1], counts[2]


def body(**changes: Any) -> dict[str, Any]:
    return {"text": TEXTS, "audience": "all", "at": "now", **changes}


@pytest.fixture
async def crowd(rig: Rig, sessions: Sessions, clock: Clock) -> Rig:
    """Five consenting participants (Telegram and WhatsApp, French and English) and one who
    never consented; the scheduler held by the test."""
    await hold_the_scheduler(sessions)
    await people(
        sessions,
        clock,
        rig.elders,
        ("telegram", "fr", "old"),
        ("telegram", "fr", "young"),
        ("telegram", "en", "old"),
        ("whatsapp", "fr", "old"),
        ("whatsapp", "en", "young"),
    )
    await people(sessions, clock, rig.elders, ("telegram", "fr", "old"), consented=False)
    return rig


async def test_the_audience_is_counted_by_channel_and_locale(crowd: Rig) -> None:
    everyone = await crowd.post("/api/consultations/elders/audience", json={"audience": "all"})
    assert everyone.status_code == 200, everyone.text
    assert everyone.json() == {
        "total": 5,
        "by_channel": {"telegram": 3, "whatsapp": 2},
        "by_locale": {"fr": 3, "en": 2},
        "outside": None,
    }
    some = await crowd.post(
        "/api/consultations/elders/audience",
        "analyst",
        json={"audience": "profile.age:old and not channel:whatsapp"},
    )
    assert some.json()["total"] == 2 and some.json()["by_locale"] == {"fr": 1, "en": 1}
    broken = await crowd.post(
        "/api/consultations/elders/audience", json={"audience": "locale:fr and (votes<3"}
    )
    assert broken.status_code == 422
    assert broken.json()["field"] == "audience" and broken.json()["position"] >= 1
    assert broken.json()["detail"].startswith("audience: ")
    assert ADDRESS not in everyone.text + some.text + broken.text


async def test_people_the_bot_has_not_met_are_counted_where_we_know_them(
    rig: Rig, sessions: Sessions, clock: Clock
) -> None:
    async with sessions() as session, session.begin():
        for n, opted_in in enumerate((True, True, False)):  # the third never opted in
            session.add(
                Contact(
                    consultation_id=rig.elders.id,
                    list_name="clients",
                    channel="whatsapp",
                    identity_hash=f"h{n}",
                    address=f"{ADDRESS}{n}",
                    locale="en",
                    opted_in_at=clock() if opted_in else None,
                    created_at=clock(),
                )
            )
    listed = await rig.post(
        "/api/consultations/elders/audience", json={"audience": "whatsapp:list:clients"}
    )
    assert listed.status_code == 200, listed.text
    assert listed.json() == {
        "total": 2,
        "by_channel": {"whatsapp": 2},
        "by_locale": {"en": 2},
        "outside": {"kind": "whatsapp-list", "name": "clients"},
    }
    slack = await rig.post("/api/consultations/elders/audience", json={"audience": "slack:members"})
    assert slack.json()["outside"] == {"kind": "slack-members", "name": None}
    assert slack.json()["total"] == 0  # Slack says how many when the broadcast goes
    assert ADDRESS not in listed.text


async def test_an_admin_schedules_a_broadcast_that_everyone_of_the_consultation_reads(
    crowd: Rig, sessions: Sessions, clock: Clock
) -> None:
    at = (clock() + timedelta(days=1)).replace(microsecond=0)
    created = await crowd.post(
        "/api/consultations/elders/broadcasts",
        "admin",
        json=body(at=at.isoformat(), audience="locale:fr", button=True),
    )
    assert created.status_code == 201, created.text
    made = created.json()
    assert made["state"] == "scheduled" and made["consultation"] == "elders"
    assert made["texts"] == TEXTS and made["button"] is True and made["audience"] == "locale:fr"
    assert datetime.fromisoformat(made["first_at"]) == at
    assert datetime.fromisoformat(made["next_run_at"]) == at and made["every"] is None

    for who in ("admin", "moderator", "analyst", "legacy"):
        listed = await crowd.get("/api/consultations/elders/broadcasts", who)
        assert listed.status_code == 200 and [b["id"] for b in listed.json()] == [made["id"]]
        shown = await crowd.get(f"/api/broadcasts/{made['id']}", who)
        assert shown.status_code == 200, shown.text
    stats = shown.json()["stats"]
    assert stats["sent"] == 0 and stats["queued"] == 0 and stats["skipped"] == {}
    assert ADDRESS not in listed.text + shown.text
    async with sessions() as session:
        entry = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "broadcast-create"))
        ).one()
    assert (entry.actor, entry.source) == ("root@example.org", "api")

    # A time without a zone is the consultation's wall clock (UTC by default).
    naive = await crowd.post(
        "/api/consultations/elders/broadcasts",
        "admin",
        json=body(at=(clock() + timedelta(hours=2)).replace(tzinfo=None).isoformat()),
    )
    assert naive.status_code == 201, naive.text
    expected = (clock() + timedelta(hours=2)).astimezone(UTC)
    assert datetime.fromisoformat(naive.json()["first_at"]) == expected


async def test_only_an_admin_sends_and_others_are_told_why(crowd: Rig, sessions: Sessions) -> None:
    before = await written(sessions)
    for who, status in (("moderator", 403), ("analyst", 403), ("outsider", 403), (None, 401)):
        answer = await crowd.post("/api/consultations/elders/broadcasts", who, json=body())
        assert answer.status_code == status, (who, answer.text)
        assert answer.json()["detail"]
    assert (await crowd.get("/api/consultations/elders/broadcasts", "outsider")).status_code == 403
    assert (await crowd.post("/api/consultations/nowhere/broadcasts", "admin", json=body())).json()[
        "code"
    ] == "api.unknown_consultation"
    assert await written(sessions) == before


BAD_INPUT: list[tuple[dict[str, Any], str, str]] = [
    ({"text": {"fr": "  ", "en": "Vote!"}}, "text", "fr"),
    ({"text": {"en": "Vote!"}}, "text", "fr"),  # the default locale's text is required
    ({"text": {"fr": "Votez", "de": "Stimmt ab"}}, "text", "de"),
    ({"text": {"fr": "x" * 1025}, "button": True}, "text", "1024"),
    ({"template": "no_such_template"}, "template", "no_such_template"),
    # a WhatsApp list is outside the 24-hour window: only a template reaches it
    ({"audience": "whatsapp:list:clients"}, "template", "clients"),
    ({"audience": "locale:fr and"}, "audience", ""),
    ({"audience": "channel:fax"}, "audience", "fax"),
    ({"audience": "profile.height:tall"}, "audience", "height"),
    ({"at": "2026-03-01T09:00:00+00:00"}, "at", "2026-03-01"),
    ({"every": "0 10 31 2 *"}, "every", "0 10 31 2 *"),  # the 31st of February
    ({"every": "every monday"}, "every", "every monday"),
]


async def test_bad_input_is_a_422_naming_the_field_with_nothing_written(
    rig: Rig, sessions: Sessions
) -> None:
    before = await written(sessions)
    for changes, field, said in BAD_INPUT:
        answer = await rig.post(
            "/api/consultations/elders/broadcasts",
            "admin",
            json=body(**changes),
            headers={"Accept-Language": "fr"},
        )
        assert answer.status_code == 422, (changes, answer.text)
        refusal = answer.json()
        assert refusal["code"] == "api.broadcast.invalid" and refusal["field"] == field, changes
        assert refusal["detail"].startswith(f"{field} : ") and said in refusal["detail"], refusal
        assert refusal["problem"].startswith("broadcast."), refusal
    assert await written(sessions) == before


async def test_a_body_pydantic_cannot_read_is_a_422_too(rig: Rig, sessions: Sessions) -> None:
    before = await written(sessions)
    for wrong in (body(colour="red"), body(text="not per locale"), body(at="tomorrow")):
        answer = await rig.post("/api/consultations/elders/broadcasts", "admin", json=wrong)
        assert answer.status_code == 422, answer.text
    assert await written(sessions) == before


async def test_pause_resume_and_cancel_with_409_for_what_the_state_forbids(
    crowd: Rig, sessions: Sessions, clock: Clock
) -> None:
    at = (clock() + timedelta(hours=3)).isoformat()
    made = (
        await crowd.post("/api/consultations/elders/broadcasts", "admin", json=body(at=at))
    ).json()
    path = f"/api/broadcasts/{made['id']}"
    assert (await crowd.post(f"{path}/pause", "moderator")).status_code == 403
    assert (await crowd.post(f"{path}/resume", "admin")).status_code == 409
    paused = await crowd.post(f"{path}/pause", "admin")
    assert paused.status_code == 200 and paused.json()["state"] == "paused"
    again = await crowd.post(f"{path}/pause", "admin")
    assert again.status_code == 409 and again.json()["code"] == "broadcast.error.paused_already"
    resumed = await crowd.post(f"{path}/resume", "admin")
    assert resumed.status_code == 200 and resumed.json()["state"] == "scheduled"
    cancelled = await crowd.post(f"{path}/cancel", "admin")
    assert cancelled.json()["state"] == "cancelled" and cancelled.json()["next_run_at"] is None
    twice = await crowd.post(f"{path}/cancel", "admin", headers={"Accept-Language": "fr"})
    assert twice.status_code == 409 and twice.json()["detail"]
    assert (await crowd.post("/api/broadcasts/999999/pause", "admin")).status_code == 404
    assert (await crowd.post("/api/broadcasts/9999999999/pause", "admin")).status_code == 422
    async with sessions() as session:
        actions = list(
            await session.exec(
                select(AuditEntry.action).where(AuditEntry.target == f"broadcast:{made['id']}")
            )
        )
    assert sorted(actions) == sorted(
        ["broadcast-create", "broadcast-pause", "broadcast-resume", "broadcast-cancel"]
    )


async def test_the_preview_shows_each_locale_and_the_audience(crowd: Rig) -> None:
    answer = await crowd.post(
        "/api/consultations/elders/broadcasts/preview",
        "analyst",
        json={"text": {"fr": "Votez !"}, "button": True, "audience": "channel:whatsapp"},
    )
    assert answer.status_code == 200, answer.text
    preview = answer.json()
    # English readers get the default locale's text: the consultation's default is French
    assert preview["texts"] == {"fr": "Votez !", "en": "Votez !"}
    assert preview["button"] is True and preview["audience"]["total"] == 2
    assert preview["telegram_stars"] is None  # not asked
    # WhatsApp shows a button message's body within its 1,024 characters, with its button
    assert preview["channels"]["fr"].get("whatsapp", {"buttons": ["Continuer"]})["buttons"] == [
        "Continuer"
    ]
    paid = await crowd.post(
        "/api/consultations/elders/broadcasts/preview",
        json={"text": {"fr": "Votez !"}, "paid": True},
    )
    assert paid.json()["telegram_stars"] == 0  # 3 messages: within the free 30 a second
    empty = await crowd.post(
        "/api/consultations/elders/broadcasts/preview", json={"text": {"fr": ""}}
    )
    assert empty.status_code == 422 and empty.json()["field"] == "text"


async def test_the_openapi_document_describes_every_broadcast_route(rig: Rig) -> None:
    paths = (await rig.http.get("/openapi.json")).json()["paths"]
    for path, method, ok in (
        ("/api/consultations/{slug}/broadcasts", "get", "200"),
        ("/api/consultations/{slug}/broadcasts", "post", "201"),
        ("/api/consultations/{slug}/broadcasts/preview", "post", "200"),
        ("/api/consultations/{slug}/audience", "post", "200"),
        ("/api/broadcasts/{broadcast_id}", "get", "200"),
        ("/api/broadcasts/{broadcast_id}/pause", "post", "200"),
        ("/api/broadcasts/{broadcast_id}/resume", "post", "200"),
        ("/api/broadcasts/{broadcast_id}/cancel", "post", "200"),
    ):
        responses = paths[path][method]["responses"]
        assert "schema" in responses[ok]["content"]["application/json"], (path, method)
        assert {"401", "403", "404"} <= set(responses), (path, method)


VALID_BODIES = [
    {"text": TEXTS, "audience": "locale:fr and votes<3", "at": "now", "button": True},
    {"text": {"fr": "Votez"}, "at": "2026-03-09T10:00", "every": "0 10 * * mon"},
    {"text": {"fr": "Votez"}, "template": "reminder", "paid": True},
]


@settings(FUZZ, max_examples=25)  # each example is a request to a real server
@given(body=mutated(VALID_BODIES))
@example(body={"text": {"fr": LONG_TEXT}})
@example(body={"text": {"fr": "a\x00b"}})
@example(body={"text": {"fr": "Votez"}, "audience": "(" * 500})
@example(body={"text": {"fr": "Votez"}, "at": "9999-12-31T23:59:59"})
@example(body={"text": {"fr": "Votez"}, "every": "* * * * * * *"})
async def test_a_malformed_body_is_never_a_server_error(rig: Rig, body: Any) -> None:
    for path in ("broadcasts", "broadcasts/preview", "audience"):
        response = await rig.post(
            f"/api/consultations/elders/{path}",
            "admin",
            content=to_json(body),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code in (200, 201, 400, 422), response.text

"""The console's broadcast pages over real HTTP, on both databases: who may see and send, the
CSRF check, a refused form shown again (422) with its fault under the field and nothing
written, a recurring broadcast, cancelling it twice (409), the live count's fragment, and the
pages in French."""

from __future__ import annotations

from sqlmodel import func, select

from core.models import AuditEntry, Broadcast
from core.organisers import Role
from tests.bots.console.conftest import ConsoleServer, csrf_of
from tests.bots.test_api_broadcasts import hold_the_scheduler, people


async def _count(server: ConsoleServer) -> int:
    async with server.sessions() as session:
        return (await session.exec(select(func.count()).select_from(Broadcast))).one()


def _form(token: str, **changes: str) -> dict[str, str]:
    return {
        "csrf": token,
        "text-fr": "Votez avant dimanche !",
        "text-en": "",
        "audience": "all",
        "when": "now",
        "at": "",
        "every": "",
        **changes,
    }


async def test_moderators_and_analysts_read_but_only_admins_send(server: ConsoleServer) -> None:
    base = f"{server.console}/c/elders/broadcasts"
    moderator = await server.signed_in("ana@example.org", Role.MODERATOR)
    listed = await moderator.get(base)
    assert listed.status_code == 200 and "No broadcast yet." in listed.text
    assert 'id="compose"' not in listed.text
    assert (await moderator.get(f"{base}/new")).status_code == 403
    refused = await moderator.post(base, data=_form(csrf_of(listed.text)))
    assert refused.status_code == 403 and "admin role" in refused.text
    analyst = await server.signed_in("carl@example.org", Role.ANALYST)
    counted = await analyst.get(f"{base}/audience", params={"audience": "all"})
    assert counted.status_code == 200 and "0 recipients" in counted.text
    assert await _count(server) == 0


async def test_a_refused_form_is_shown_again_with_its_fault_and_nothing_written(
    server: ConsoleServer,
) -> None:
    await people(server.sessions, server.clock, server.consultation, ("telegram", "fr", "old"))
    admin = await server.signed_in("root@example.org", Role.ADMIN)
    base = f"{server.console}/c/elders/broadcasts"
    page = await admin.get(f"{base}/new")
    assert page.status_code == 200
    token = csrf_of(page.text)
    audit = await server.audit_count()

    forged = await admin.post(base, data=_form("forged"))
    assert forged.status_code == 403
    for changes, where in (
        ({"audience": "votes<<3"}, 'id="audience-fault"'),
        ({"audience": "locale:de"}, 'id="audience-fault"'),
        ({"text-fr": "   "}, 'id="text-fault"'),
        ({"when": "at", "at": "2026-03-01T08:00"}, 'id="at-fault"'),
        ({"when": "at", "at": "soon"}, 'id="at-fault"'),
        ({"when": "every", "every": ""}, 'id="every-fault"'),
        ({"when": "every", "every": "0 10 31 2 *"}, 'id="every-fault"'),
    ):
        answer = await admin.post(base, data=_form(token, **changes))
        assert answer.status_code == 422, (changes, answer.text[:300])
        assert where in answer.text and "Nothing was scheduled" in answer.text, changes
        typed = changes.get("text-fr", "Votez avant dimanche !").strip()
        assert typed in answer.text  # what was typed is kept
    assert await _count(server) == 0 and await server.audit_count() == audit

    fragment = await admin.get(f"{base}/audience", params={"audience": "locale:fr or ("})
    assert 'id="audience-fault"' in fragment.text and "^" in fragment.text
    counted = await admin.get(f"{base}/audience", params={"audience": "channel:telegram"})
    assert "1 recipient" in counted.text and "telegram 1" in counted.text
    shown = await admin.post(
        f"{base}/preview",
        data=_form(token, button="on", paid="on"),
        headers={"X-CSRF-Token": token},
    )
    assert shown.status_code == 200 and ">Continuer<" in shown.text and ">Continue<" in shown.text
    assert 'id="stars"' in shown.text and "at most 0 Stars" in shown.text


async def test_a_recurring_broadcast_is_scheduled_then_cancelled_once(
    server: ConsoleServer,
) -> None:
    await hold_the_scheduler(server.sessions)
    admin = await server.signed_in("root@example.org", Role.ADMIN)
    base = f"{server.console}/c/elders/broadcasts"
    token = csrf_of((await admin.get(f"{base}/new")).text)
    made = await admin.post(
        base,
        data=_form(token, when="every", at="2026-03-09T10:00", every="0 10 * * mon"),
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text[:500]
    async with server.sessions() as session:
        (broadcast,) = list(await session.exec(select(Broadcast)))
    assert made.headers["location"].endswith(f"/c/elders/broadcasts/{broadcast.id}")
    assert (broadcast.every, broadcast.texts) == ("0 10 * * mon", {"fr": "Votez avant dimanche !"})
    assert broadcast.first_at.isoformat().startswith("2026-03-09T10:00")

    shown = await admin.get(f"{base}/{broadcast.id}")
    assert "scheduled" in shown.text and "0 10 * * mon" in shown.text
    cancel = f"{base}/{broadcast.id}/cancel"
    done = await admin.post(cancel, data={"csrf": token}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].endswith("?done=cancel")
    again = await admin.post(cancel, data={"csrf": token})
    assert again.status_code == 409
    assert (
        await admin.post(f"{base}/{broadcast.id}/explode", data={"csrf": token})
    ).status_code == 404
    assert (await admin.get(f"{base}/999999")).status_code == 404
    assert (await admin.get(f"{base}/9999999999")).status_code == 422
    async with server.sessions() as session:
        sources = list(
            await session.exec(
                select(AuditEntry.source).where(AuditEntry.target == f"broadcast:{broadcast.id}")
            )
        )
    assert sources == ["console", "console"]

    french = await admin.get(f"{base}/{broadcast.id}", headers={"Accept-Language": "fr"})
    assert f"Diffusion n°{broadcast.id}" in french.text and "annulée" in french.text
    compose = await admin.get(f"{base}/new", headers={"Accept-Language": "fr"})
    assert "Rédiger une diffusion" in compose.text and "Texte en FR" in compose.text

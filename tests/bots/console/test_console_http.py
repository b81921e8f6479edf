"""The console over real HTTP on both databases: sign-in, pages, and every refusal (CSRF,
expired or revoked session, scope, role, conflicts, bad reasons and edits) a clear 4xx or a
way back to sign-in, with nothing changed."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import httpx
from sqlmodel import select

from bots.console.access_log import ACCESS_LOGGER
from bots.console.sessions import COOKIE
from bots.organisers import sign_in_link
from bots.settings import Settings
from core.definitions import parse_consultation, upsert_consultation
from core.models import ChannelIdentity, Notice, Participant, SignInAttempt
from core.moderation import ideas_of
from core.organisers import Role, revoke
from tests.bots.console.conftest import ConsoleServer, csrf_of
from tests.conftest import consultation_data

LONG_TEXT = "We should " + "really " * 30 + "do it"


async def _served(client: httpx.AsyncClient, server: ConsoleServer) -> tuple[int, str]:
    """The proposal the moderation page serves this client, and the page's form token."""
    page = await client.get(f"{server.console}/c/elders/moderate")
    assert page.status_code == 200, page.text
    found = re.search(r"/proposals/(\d+)/accept", page.text)
    assert found is not None, "no proposal served"
    return int(found.group(1)), csrf_of(page.text)


async def test_an_organiser_signs_in_through_the_link_once(server: ConsoleServer) -> None:
    anonymous = server.client()
    before = await anonymous.get(f"{server.console}/")
    assert before.status_code == 303 and before.headers["location"] == "/console/sign-in"

    code = await server.code_for("ana@example.org", Role.MODERATOR)
    link = await anonymous.get(f"{server.console}/sign-in", params={"code": code})
    assert link.status_code == 200 and 'type="submit"' in link.text
    assert link.headers["referrer-policy"] == "no-referrer"  # the code stays on this page
    # Showing the link spends nothing: a mail scanner's GET leaves the code usable.
    signed_in = await anonymous.post(
        f"{server.console}/sign-in", data={"code": code, "csrf": csrf_of(link.text)}
    )
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/console/"
    cookie = signed_in.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/console" in cookie
    listing = await anonymous.get(f"{server.console}/")
    assert listing.status_code == 200 and "/console/c/elders" in listing.text
    assert "ana@example.org" in listing.text

    again = server.client()
    page = await again.get(f"{server.console}/sign-in", params={"code": code})
    reused = await again.post(
        f"{server.console}/sign-in", data={"code": code, "csrf": csrf_of(page.text)}
    )
    assert reused.status_code == 400 and "once" in reused.text
    assert (await again.get(f"{server.console}/")).status_code == 303


async def test_the_pages_speak_the_organisers_language(server: ConsoleServer) -> None:
    client = await server.signed_in("ana@example.org")
    french = await client.get(
        f"{server.console}/c/elders", headers={"Accept-Language": "fr-CH, fr;q=0.9, en;q=0.8"}
    )
    assert 'lang="fr"' in french.text and "À modérer" in french.text
    switched = await client.get(
        f"{server.console}/language", params={"to": "en", "back": "/console/c/elders"}
    )
    assert switched.status_code == 303 and switched.headers["location"] == "/console/c/elders"
    english = await client.get(f"{server.console}/c/elders", headers={"Accept-Language": "fr"})
    assert 'lang="en"' in english.text and "Overview" in english.text
    away = await client.get(
        f"{server.console}/language", params={"to": "fr", "back": "https://evil.example/"}
    )
    assert away.headers["location"] == "/console/"


async def test_a_post_without_its_token_or_with_a_forged_one_is_403(
    server: ConsoleServer,
) -> None:
    await server.propose("We should open libraries on Sundays")
    client = await server.signed_in("ana@example.org")
    proposal_id, token = await _served(client, server)
    other = await server.signed_in("ben@example.org")
    others_page = await other.get(f"{server.console}/c/elders")
    accept = f"{server.console}/c/elders/proposals/{proposal_id}/accept"
    audited = await server.audit_count()

    for data in (
        {},
        {"csrf": "forged"},
        {"csrf": token[:-2] + "xx"},
        {"csrf": csrf_of(others_page.text)},
    ):
        refused = await client.post(accept, data=data)
        assert refused.status_code == 403, data
        assert "security token" in refused.text and "nothing was changed" in refused.text
    assert (await server.proposal(proposal_id)).status == "pending"
    assert await server.audit_count() == audited

    done = await client.post(accept, data={"csrf": token})
    assert done.status_code == 303
    assert (await server.proposal(proposal_id)).status == "accepted"


async def test_an_expired_or_revoked_session_goes_back_to_sign_in(server: ConsoleServer) -> None:
    (proposal_id,) = await server.propose("We should open libraries on Sundays")
    client = await server.signed_in("ana@example.org")
    _, token = await _served(client, server)

    server.clock.advance(hours=13)  # the default session lasts 12 hours
    late = await client.post(
        f"{server.console}/c/elders/proposals/{proposal_id}/accept", data={"csrf": token}
    )
    assert late.status_code == 303
    assert late.headers["location"] == "/console/sign-in?notice=expired"
    assert (await server.proposal(proposal_id)).status == "pending"
    notice = await client.get(f"{server.console}/sign-in?notice=expired")
    assert "Your session has expired" in notice.text
    # The expired cookie was dropped: the next page asks to sign in, with nothing to explain.
    page = await client.get(f"{server.console}/c/elders")
    assert page.status_code == 303 and page.headers["location"] == "/console/sign-in"

    client = await server.signed_in("ben@example.org")
    async with server.sessions() as session, session.begin():
        await revoke(session, "ben@example.org", now=server.clock())
    cut = await client.get(f"{server.console}/")
    assert cut.status_code == 303 and cut.headers["location"].endswith("notice=revoked")


async def test_a_moderator_outside_their_consultation_is_refused(server: ConsoleServer) -> None:
    other_spec = parse_consultation(consultation_data(slug="others"))
    async with server.sessions() as session, session.begin():
        other, _ = await upsert_consultation(session, other_spec, server.clock())
    (mine,) = await server.propose("We should open libraries on Sundays")
    client = await server.signed_in("ana@example.org", Role.MODERATOR, "others")
    listing = await client.get(f"{server.console}/")
    assert "/console/c/others" in listing.text and "/console/c/elders" not in listing.text
    page = await client.get(f"{server.console}/c/others")
    token = csrf_of(page.text)

    assert (await client.get(f"{server.console}/c/elders")).status_code == 403
    assert (await client.get(f"{server.console}/c/elders/moderate")).status_code == 403
    assert (await client.get(f"{server.console}/c/elders/audit")).status_code == 403
    outside = await client.post(
        f"{server.console}/c/elders/proposals/{mine}/accept", data={"csrf": token}
    )
    assert outside.status_code == 403
    # Their own consultation in the path does not reach another's proposal.
    smuggled = await client.post(
        f"{server.console}/c/others/proposals/{mine}/accept", data={"csrf": token}
    )
    assert smuggled.status_code == 404
    bulk = await client.post(
        f"{server.console}/c/others/bulk",
        data={"csrf": token, "action": "accept", "ids": [str(mine)]},
    )
    assert bulk.status_code == 404
    assert (await server.proposal(mine)).status == "pending"
    assert (await client.get(f"{server.console}/c/nowhere")).status_code == 404
    assert other.id is not None


async def test_an_analyst_reads_but_cannot_decide(server: ConsoleServer) -> None:
    (proposal_id,) = await server.propose("We should open libraries on Sundays")
    client = await server.signed_in("ana@example.org", Role.ANALYST)
    overview = await client.get(f"{server.console}/c/elders")
    assert overview.status_code == 200 and "Moderate the queue" not in overview.text
    bulk = await client.get(f"{server.console}/c/elders/bulk")
    assert bulk.status_code == 200 and "open libraries on Sundays" in bulk.text
    assert 'name="ids"' not in bulk.text and "Apply to the selection" not in bulk.text
    assert (await client.get(f"{server.console}/c/elders/moderate")).status_code == 403
    token = csrf_of(bulk.text)
    for action in ("accept", "postpone"):
        refused = await client.post(
            f"{server.console}/c/elders/proposals/{proposal_id}/{action}", data={"csrf": token}
        )
        assert refused.status_code == 403 and "not moderate it" in refused.text
    refused = await client.post(
        f"{server.console}/c/elders/bulk",
        data={"csrf": token, "action": "accept", "ids": [str(proposal_id)]},
    )
    assert refused.status_code == 403
    assert (await server.proposal(proposal_id)).status == "pending"


async def test_bad_reasons_and_edits_are_422_and_change_nothing(server: ConsoleServer) -> None:
    (proposal_id,) = await server.propose("We should open libraries on Sundays")
    client = await server.signed_in("ana@example.org")
    served, token = await _served(client, server)
    assert served == proposal_id
    before = server.snapshot_of(await server.proposal(proposal_id))
    audited = await server.audit_count()
    base = f"{server.console}/c/elders/proposals/{proposal_id}"
    seed = await server.accepted_seed()

    attempts = [
        ("refuse", {"reason": "because"}, "not a refusal reason"),
        ("refuse", {"reason": "already-exists"}, "give the number"),
        ("refuse", {"reason": "already-exists", "duplicate_of": "abc"}, "not a proposal number"),
        ("refuse", {"reason": "already-exists", "duplicate_of": str(proposal_id)}, "not another"),
        ("refuse", {"reason": "rudeness", "duplicate_of": str(seed.id)}, "Only a refusal"),
        ("refuse", {}, "reason"),
        ("accept", {"text": LONG_TEXT}, "cannot be accepted"),
        ("accept", {"text": "x" * 2001}, "text"),
    ]
    for action, data, said in attempts:
        refused = await client.post(f"{base}/{action}", data={"csrf": token, **data})
        assert refused.status_code == 422, (data, refused.status_code)
        assert said in refused.text, (data, refused.text)
    assert server.snapshot_of(await server.proposal(proposal_id)) == before
    assert await server.audit_count() == audited

    edited = await client.post(
        f"{base}/accept", data={"csrf": token, "text": "We should open libraries every Sunday"}
    )
    assert edited.status_code == 303
    assert (
        edited.headers["location"] == f"/console/c/elders/moderate?done={proposal_id}&order=oldest"
    )
    after = await server.proposal(proposal_id)
    assert (after.status, after.text) == ("accepted", "We should open libraries every Sunday")
    again = await client.post(f"{base}/accept", data={"csrf": token})
    assert again.status_code == 409 and "decided meanwhile" in again.text


async def test_a_proposal_held_by_another_moderator_is_a_409(server: ConsoleServer) -> None:
    first, second = await server.propose(
        "We should open libraries on Sundays", "We should plant trees in schools"
    )
    ana = await server.signed_in("ana@example.org")
    ben = await server.signed_in("ben@example.org")
    served_ana, ana_token = await _served(ana, server)
    served_ben, ben_token = await _served(ben, server)
    assert (served_ana, served_ben) == (first, second)  # never the one another holds

    taken = await ben.post(
        f"{server.console}/c/elders/proposals/{first}/accept", data={"csrf": ben_token}
    )
    assert taken.status_code == 409 and "ana@example.org" in taken.text
    assert (await server.proposal(first)).status == "pending"

    renewed = await ana.post(
        f"{server.console}/c/elders/proposals/{first}/renew",
        headers={"X-CSRF-Token": ana_token, "HX-Request": "true"},
    )
    assert renewed.status_code == 200 and "Held for you until" in renewed.text
    ben_renew = await ben.post(
        f"{server.console}/c/elders/proposals/{first}/renew",
        headers={"X-CSRF-Token": ben_token, "HX-Request": "true"},
    )
    assert ben_renew.status_code == 409 and "ana@example.org" in ben_renew.text
    await ana.post(
        f"{server.console}/c/elders/proposals/{first}/postpone", data={"csrf": ana_token}
    )
    decided = await ana.post(
        f"{server.console}/c/elders/proposals/{first}/renew", headers={"X-CSRF-Token": ana_token}
    )
    assert decided.status_code == 409 and "decided meanwhile" in decided.text


async def test_bulk_decides_the_selection_and_says_why_for_the_rest(
    server: ConsoleServer,
) -> None:
    ids = await server.propose(
        "We should open libraries on Sundays",
        "We should plant trees in schools",
        "We should light the river banks",
    )
    client = await server.signed_in("ana@example.org")
    listing = await client.get(
        f"{server.console}/c/elders/bulk", params={"status": "pending", "q": "SCHOOLS"}
    )
    assert "plant trees in schools" in listing.text and "libraries" not in listing.text
    token = csrf_of(listing.text)
    refused = await client.post(
        f"{server.console}/c/elders/bulk",
        data={
            "csrf": token,
            "action": "refuse",
            "reason": "off-topic",
            "ids": [str(i) for i in ids[:2]],
        },
    )
    assert refused.status_code == 200
    assert f"Proposal #{ids[0]}: refused." in refused.text
    assert [(await server.proposal(i)).status for i in ids] == ["refused", "refused", "pending"]
    nothing = await client.post(
        f"{server.console}/c/elders/bulk", data={"csrf": token, "action": "accept"}
    )
    assert nothing.status_code == 422 and "tick at least one" in nothing.text
    again = await client.post(
        f"{server.console}/c/elders/bulk",
        data={"csrf": token, "action": "accept", "ids": [str(ids[0])]},
    )
    assert again.status_code == 409 and "decided meanwhile" in again.text
    assert (await server.proposal(ids[0])).status == "refused"


async def test_the_audit_log_pages_and_no_page_names_a_participant(
    server: ConsoleServer,
) -> None:
    async with server.sessions() as session, session.begin():
        author = Participant(created_at=server.clock())
        session.add(author)
        await session.flush()
        assert author.id is not None
        session.add(
            ChannelIdentity(
                channel="whatsapp",
                identity_hash="f" * 64,
                address="+33612345678",
                participant_id=author.id,
                created_at=server.clock(),
            )
        )
    texts = [f"We should open library number {n} on Sundays" for n in range(55)]
    ids = await server.propose(*texts, author=author.id)
    client = await server.signed_in("ana@example.org")
    page = await client.get(f"{server.console}/c/elders/bulk", params={"status": "pending"})
    token = csrf_of(page.text)
    for chunk in (ids[:30], ids[30:]):
        await client.post(
            f"{server.console}/c/elders/bulk",
            data={"csrf": token, "action": "postpone", "ids": [str(i) for i in chunk]},
        )
    newest = await client.get(f"{server.console}/c/elders/audit")
    assert newest.text.count("proposal.postpone") == 50
    older = re.search(r"audit\?before=(\d+)", newest.text)
    assert older is not None
    rest = await client.get(f"{server.console}/c/elders/audit?before={older.group(1)}")
    assert rest.text.count("proposal.postpone") == 5
    assert "audit?before=" not in rest.text

    (fresh,) = await server.propose("We should open a library at the station", author=author.id)
    pages = [
        f"{server.console}/",
        f"{server.console}/c/elders",
        f"{server.console}/c/elders/moderate",
        f"{server.console}/c/elders/bulk?status=",
        f"{server.console}/c/elders/audit",
    ]
    for address in pages:
        shown = await client.get(address)
        assert shown.status_code == 200
        for identifier in ("+33612345678", "33612345678", "f" * 64, "author_id"):
            assert identifier not in shown.text, (address, identifier)
    moderation = await client.get(f"{server.console}/c/elders/moderate")
    assert f"#{fresh}" in moderation.text and "open library number 54" in moderation.text


async def test_sign_in_attempts_are_limited_per_address(server: ConsoleServer) -> None:
    client = server.client()
    page = await client.get(f"{server.console}/sign-in", params={"code": "a.b"})
    token = csrf_of(page.text)
    statuses = []
    for _ in range(10):
        wrong = await client.post(f"{server.console}/sign-in", data={"code": "x.y", "csrf": token})
        statuses.append(wrong.status_code)
    assert statuses == [400] * 10
    # Past the limit even a good code waits: guessing is what the limit stops.
    code = await server.code_for("ana@example.org", Role.MODERATOR)
    held = await client.post(f"{server.console}/sign-in", data={"code": code, "csrf": token})
    assert held.status_code == 429 and "Too many sign-in attempts" in held.text
    assert (await client.get(f"{server.console}/")).status_code == 303
    # What counts them is keyed with the server's secret: a hash of the address alone could be
    # reversed by trying every address.
    async with server.sessions() as session:
        stored = set((await session.exec(select(SignInAttempt.key_hash))).all())
    for plain in ("127.0.0.1", "console:127.0.0.1"):
        assert hashlib.sha256(f"sign-in\x1f{plain}".encode()).hexdigest() not in stored
    assert len(stored) == 1
    server.clock.advance(minutes=16)
    later = await client.post(f"{server.console}/sign-in", data={"code": code, "csrf": token})
    assert later.status_code == 303


async def test_flagged_proposals_first_and_a_flag_filter(server: ConsoleServer) -> None:
    plain, linked = await server.propose(
        "We should open libraries on Sundays", "We should read www.example.com every day"
    )
    client = await server.signed_in("ana@example.org")
    page = await client.get(f"{server.console}/c/elders/moderate", params={"order": "flagged"})
    assert f"Proposal #{linked}" in page.text and "contains a link" in page.text.lower()
    token = csrf_of(page.text)
    decided = await client.post(
        f"{server.console}/c/elders/proposals/{linked}/postpone",
        data={"csrf": token, "order": "flagged"},
    )
    assert decided.headers["location"].endswith(f"done={linked}&order=flagged")
    listing = await client.get(
        f"{server.console}/c/elders/bulk", params={"status": "", "flag": "link"}
    )
    assert "www.example.com" in listing.text and "open libraries" not in listing.text
    assert (await server.proposal(plain)).status == "pending"
    bad = await client.get(f"{server.console}/c/elders/moderate", params={"order": "random"})
    assert bad.status_code == 422


async def test_signing_out_ends_the_session_on_the_server(server: ConsoleServer) -> None:
    client = await server.signed_in("ana@example.org")
    elsewhere = await server.signed_in("ana@example.org")  # her other browser
    copied = server.client()  # someone who copied the cookie
    copied.cookies.set(COOKIE, client.cookies[COOKIE], domain=httpx.URL(server.url).host)
    assert (await copied.get(f"{server.console}/")).status_code == 200
    page = await client.get(f"{server.console}/")
    assert (await client.post(f"{server.console}/sign-out")).status_code == 403  # no token
    out = await client.post(f"{server.console}/sign-out", data={"csrf": csrf_of(page.text)})
    assert (
        out.status_code == 303 and out.headers["location"] == "/console/sign-in?notice=signed-out"
    )
    assert (await client.get(f"{server.console}/")).status_code == 303
    for other in (copied, elsewhere):  # signing out ends every session of hers
        ended = await other.get(f"{server.console}/")
        assert ended.status_code == 303 and ended.headers["location"].endswith("notice=revoked")
    said = await client.get(f"{server.console}/sign-in?notice=signed-out")
    assert "You are signed out." in said.text
    unknown = await client.get(f"{server.console}/sign-in?notice=<b>")
    assert 'class="notice"' not in unknown.text and "<b>" not in unknown.text


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def test_no_sign_in_code_reaches_the_access_log(server: ConsoleServer, caplog) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)  # `consult serve` logs at info
    captured = _Lines()
    logging.getLogger(ACCESS_LOGGER).addHandler(captured)
    try:
        client = server.client()
        # The link `consult organiser add` prints: its code is after "#", never sent.
        code = await server.code_for("ana@example.org", Role.MODERATOR)
        page = await client.get(sign_in_link(Settings(public_url=server.url), code))
        assert page.status_code == 200 and code not in page.text
        assert 'name="code" value=""' in page.text  # to fill in (console.js) or to paste
        signed = await client.post(
            f"{server.console}/sign-in", data={"code": code, "csrf": csrf_of(page.text)}
        )
        assert signed.status_code == 303
        # A link handed out before, with `?code=`, still signs in, and is logged without it.
        old = await server.code_for("ben@example.org", Role.MODERATOR)
        before = server.client()
        page = await before.get(f"{server.console}/sign-in", params={"code": old})
        assert page.status_code == 200 and f'value="{old}"' in page.text
        signed = await before.post(
            f"{server.console}/sign-in", data={"code": old, "csrf": csrf_of(page.text)}
        )
        assert signed.status_code == 303
    finally:
        logging.getLogger(ACCESS_LOGGER).removeHandler(captured)
    assert any("GET /console/sign-in HTTP" in line for line in captured.lines), captured.lines
    assert not [line for line in captured.lines if code in line or old in line], captured.lines


async def test_the_overview_shows_notices_that_need_an_organiser(server: ConsoleServer) -> None:
    (proposal_id,) = await server.propose("We should open libraries on Sundays")
    proposal = await server.proposal(proposal_id)
    async with server.sessions() as session, session.begin():
        session.add(
            Notice(
                consultation_id=server.consultation.id,
                proposal_id=proposal_id,
                participant_id=proposal.author_id,
                channel="whatsapp",
                kind="accepted",
                locale="en",
                state="unknown",
                problem="worker-died",
                attempts=1,
                next_attempt_at=server.clock(),
                created_at=server.clock(),
            )
        )
    client = await server.signed_in("ana@example.org", Role.ANALYST)
    overview = await client.get(f"{server.console}/c/elders")
    assert "Notices to look at" in overview.text and "it may have arrived" in overview.text


async def test_the_console_serves_its_own_assets_and_no_other_sites(
    server: ConsoleServer,
) -> None:
    client = server.client()
    script = await client.get(f"{server.console}/static/htmx.min.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    licence = await client.get(f"{server.console}/static/htmx.LICENSE")
    assert licence.status_code == 200 and "Zero-Clause BSD" in licence.text
    page = await client.get(f"{server.console}/sign-in")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["cache-control"] == "no-store"
    templates = Path(__file__).resolve().parents[3] / "bots" / "console" / "templates"
    for template in templates.glob("*.html"):
        assert not re.search(r"(src|href)=\"(https?:)?//", template.read_text()), template.name


async def test_a_moderator_groups_similar_proposals_into_an_idea(server: ConsoleServer) -> None:
    seed = await server.accepted_seed()  # "We should fund weekly home visits"
    (copy,) = await server.propose("We should fund weekly home visits!")
    client = await server.signed_in("ana@example.org")
    page = await client.get(f"{server.console}/c/elders/moderate")
    assert f'name="ids" value="{seed.id}"' in page.text  # offered from the similar proposals
    token = csrf_of(page.text)
    ideas = f"{server.console}/c/elders/ideas"

    made = await client.post(
        ideas, data={"csrf": token, "name": " Home  visits ", "ids": [str(copy), str(seed.id)]}
    )
    assert made.status_code == 303
    async with server.sessions() as session:
        (idea,) = await ideas_of(session, server.consultation.id)
    assert (idea.name, idea.proposal_ids) == ("Home visits", tuple(sorted((copy, seed.id))))
    shown = await client.get(made.headers["location"].replace("/console", server.console, 1))
    assert "groups 2 proposals" in shown.text and "In the idea “Home visits”" in shown.text

    refusals = [
        ({"name": "Home visits", "ids": [str(copy)]}, 422, "Another idea"),
        ({"name": "   ", "ids": [str(copy)]}, 422, "Give the new idea a name"),
        ({"name": "Other"}, 422, "Tick between one"),
        ({"idea": "999", "ids": [str(copy)]}, 404, "no idea 999"),
        ({"name": "Other", "ids": [str(copy), "100000"]}, 404, "no proposal #100000"),
    ]
    for data, status, said in refusals:
        refused = await client.post(ideas, data={"csrf": token, **data})
        assert (refused.status_code, said in refused.text) == (status, True), data
    added = await client.post(ideas, data={"csrf": token, "idea": str(idea.id), "ids": ["3"]})
    assert added.status_code == 303
    async with server.sessions() as session:
        (idea,) = await ideas_of(session, server.consultation.id)
    assert 3 in idea.proposal_ids

    analyst = await server.signed_in("ben@example.org", Role.ANALYST)
    page = await analyst.get(f"{server.console}/c/elders")
    refused = await analyst.post(
        ideas, data={"csrf": csrf_of(page.text), "name": "Mine", "ids": [str(copy)]}
    )
    assert refused.status_code == 403

"""What an organiser types or a browser sends that the database cannot take: numbers that are
no ids ("²", beyond PostgreSQL's integer), NUL characters. Each is a 4xx saying what to fix,
on both databases, and changes nothing; fuzzed, no form field or query is ever a 5xx."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.organisers import Role
from tests.bots.console.conftest import ConsoleServer, csrf_of
from tests.fuzzing import FUZZ

FEWER = settings(FUZZ, max_examples=60)  # each example is a request to a real server

BIG = "99999999999"  # beyond PostgreSQL's integer
NOT_IDS = ["²", "#¹²", "١٢", BIG, f"#{2**31}", "0"]
# What an organiser (or a forged form) may put where a number is expected.
NUMBERISH = st.one_of(
    st.text(max_size=25),
    st.integers(-(10**25), 10**25).map(str),
    st.sampled_from([*NOT_IDS, "\x00", "1\x00", "-1", " 7 ", "1e3", "²³"]),
)


async def _moderator(server: ConsoleServer) -> tuple[httpx.AsyncClient, str]:
    client = await server.signed_in("mia@example.org", Role.MODERATOR, "elders")
    page = await client.get(f"{server.console}/c/elders/moderate")
    return client, csrf_of(page.text)


@pytest.mark.parametrize("typed", NOT_IDS)
async def test_a_duplicate_that_is_no_proposal_number_is_a_422(
    server: ConsoleServer, typed: str
) -> None:
    (pid,) = await server.propose("We should open libraries on Sundays")
    client, token = await _moderator(server)
    before = server.snapshot_of(await server.proposal(pid))
    c = f"{server.console}/c/elders"
    form = {"csrf": token, "reason": "already-exists", "duplicate_of": typed}
    one = await client.post(f"{c}/proposals/{pid}/refuse", data=form)
    bulk = await client.post(f"{c}/bulk", data={**form, "action": "refuse", "ids": [str(pid)]})
    for answer in (one, bulk):
        assert answer.status_code == 422, answer.status_code
        assert "is not a proposal number" in answer.text
    assert server.snapshot_of(await server.proposal(pid)) == before


@pytest.mark.parametrize(
    ("how", "status"),
    [
        ("accept", 422),
        ("renew", 422),
        ("done", 422),
        ("bulk", 422),
        ("ideas", 422),
        ("idea", 404),  # the idea to add to: an unknown idea
        ("audit", 422),
    ],
)
async def test_an_id_beyond_the_database_is_refused(
    server: ConsoleServer, how: str, status: int
) -> None:
    (pid,) = await server.propose("We should open libraries on Sundays")
    client, token = await _moderator(server)
    audited = await server.audit_count()
    c = f"{server.console}/c/elders"
    if how in ("accept", "renew"):
        answer = await client.post(f"{c}/proposals/{BIG}/{how}", data={"csrf": token})
    elif how == "done":
        answer = await client.get(f"{c}/moderate", params={"done": BIG})
    elif how == "bulk":
        answer = await client.post(
            f"{c}/bulk", data={"csrf": token, "action": "accept", "ids": [BIG]}
        )
    elif how == "ideas":
        answer = await client.post(f"{c}/ideas", data={"csrf": token, "name": "x", "ids": [BIG]})
    elif how == "idea":
        form = {"csrf": token, "idea": "²", "ids": [str(pid)]}
        answer = await client.post(f"{c}/ideas", data=form)
    else:
        answer = await client.get(f"{c}/audit", params={"before": "9" * 20})
    assert answer.status_code == status, answer.status_code
    assert await server.audit_count() == audited


async def test_a_nul_character_is_refused_before_the_database(server: ConsoleServer) -> None:
    anonymous = server.client()
    page = await anonymous.get(f"{server.console}/sign-in", params={"code": "x"})
    form = {"code": "abcd\x00.efgh", "csrf": csrf_of(page.text)}
    answer = await anonymous.post(f"{server.console}/sign-in", data=form)
    assert answer.status_code == 422 and "code" in answer.text

    client, token = await _moderator(server)
    c = f"{server.console}/c/elders"
    answer = await client.get(f"{c}/bulk", params={"q": "a\x00b"})
    assert answer.status_code == 422 and "q" in answer.text
    (pid,) = await server.propose("We should open libraries on Sundays")
    answer = await client.post(f"{c}/proposals/{pid}/accept", data={"csrf": token, "text": "a\x00"})
    assert answer.status_code == 422
    assert (await server.proposal(pid)).status == "pending"
    answer = await client.get(f"{server.console}/c/el%00ders")
    assert answer.status_code == 404


@FEWER
@given(
    route=st.sampled_from(["refuse", "bulk", "ideas"]),
    duplicate_of=NUMBERISH,
    idea=NUMBERISH,
    ids=st.lists(NUMBERISH, max_size=3),
    q=st.text(max_size=30),
)
@example(route="bulk", duplicate_of="²", idea="", ids=[BIG], q="\x00")
@example(route="ideas", duplicate_of="", idea="²", ids=["1"], q="")
async def test_no_form_field_is_ever_a_server_error(
    server: ConsoleServer,
    route: str,
    duplicate_of: str,
    idea: str,
    ids: list[str],
    q: str,
) -> None:
    client, token = await _signed_in_once(server)
    c = f"{server.console}/c/elders"
    form = {"csrf": token, "reason": "already-exists", "duplicate_of": duplicate_of, "ids": ids}
    if route == "refuse":
        target = f"{c}/proposals/{quote(ids[0] if ids else '1', safe='')}/refuse"
    elif route == "bulk":
        target, form = f"{c}/bulk", {**form, "action": "refuse", "q": q}
    else:
        target, form = f"{c}/ideas", {**form, "idea": idea, "name": q}
    answer = await client.post(target, data=form)
    assert answer.status_code < 500, (answer.status_code, form)


@FEWER
@given(
    page=st.sampled_from(["moderate", "audit", "bulk"]),
    name=st.sampled_from(["done", "grouped", "before", "page", "q", "order"]),
    value=NUMBERISH,
)
@example(page="moderate", name="done", value=BIG)
@example(page="audit", name="before", value="9" * 20)
async def test_no_query_is_ever_a_server_error(
    server: ConsoleServer, page: str, name: str, value: str
) -> None:
    client, _ = await _signed_in_once(server)
    answer = await client.get(f"{server.console}/c/elders/{page}", params={name: value})
    assert answer.status_code < 500, (answer.status_code, page, name, value)


async def _signed_in_once(server: ConsoleServer) -> tuple[httpx.AsyncClient, str]:
    """One moderator's client and form token for all of a fuzz test's examples."""
    if not server.clients:
        await server.propose("We should open libraries on Sundays", "Plant trees in the square")
        await _moderator(server)
    client = server.clients[0]
    page = await client.get(f"{server.console}/c/elders/bulk")
    return client, csrf_of(page.text)

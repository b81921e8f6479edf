"""Ids and texts the database cannot take, sent to the API: ids beyond PostgreSQL's integer in
a path or a query, NUL characters. Each is a 4xx saying what to fix, on both databases, and
changes nothing; fuzzed, no path or query id is ever a 5xx."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.bots import test_api_moderation as api
from tests.bots.test_api_moderation import Rig, propose, snapshot
from tests.fuzzing import FUZZ

rig = api.rig  # the API under uvicorn, with an organiser of each role, on both databases
FEWER = settings(FUZZ, max_examples=60)  # each example is a request to a real server
BIG = "9999999999"  # beyond PostgreSQL's integer
NUMBERISH = st.one_of(
    st.integers(-(10**25), 10**25).map(str),
    st.text(max_size=25),
    st.sampled_from([BIG, str(2**31), str(2**63), "²", "١٢", "\x00", "0", "-1"]),
)


@pytest.mark.parametrize(
    "path", ["/api/consultations/elders/audit?before=", "/api/audit?before=", "/api/proposals/"]
)
async def test_an_id_beyond_the_database_is_a_422(rig: Rig, sessions, path: str) -> None:
    before = await snapshot(sessions)
    if path.endswith("/"):
        answer = await rig.post(f"{path}{BIG}/accept", "admin", json={})
    else:
        answer = await rig.get(path + BIG, "admin")
    assert answer.status_code == 422, answer.text
    assert await snapshot(sessions) == before


async def test_a_nul_character_is_refused_before_the_database(rig: Rig, sessions, clock) -> None:
    answer = await rig.get("/api/consultations/elders/proposals", params={"q": "a\x00b"})
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["query", "q"]
    pid = await propose(sessions, clock, rig.elders, "open libraries on sundays")
    before = await snapshot(sessions)
    answer = await rig.post(f"/api/proposals/{pid}/accept", json={"text": "We should open\x00"})
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body", "text"]
    assert await snapshot(sessions) == before
    answer = await rig.get("/api/consultations/el%00ders/proposals")
    assert answer.status_code == 404 and answer.json()["code"] == "api.unknown_consultation"


@FEWER
@given(
    action=st.sampled_from(["accept", "refuse", "postpone", "withdraw", "renew", "similar"]),
    proposal=NUMBERISH,
)
@example(action="accept", proposal=BIG)
@example(action="renew", proposal=str(2**31))
async def test_no_path_id_is_ever_a_server_error(rig: Rig, action: str, proposal: str) -> None:
    path = f"/api/proposals/{quote(proposal, safe='')}/{action}"
    if action == "similar":
        answer = await rig.get(path)
    else:
        answer = await rig.post(path, json={"reason": "off-topic"})
    assert answer.status_code < 500, (answer.status_code, path)


@FEWER
@given(
    path=st.sampled_from(
        ["/api/audit", "/api/consultations/elders/audit", "/api/consultations/elders/proposals"]
    ),
    name=st.sampled_from(["before", "limit", "offset", "q", "status", "flag"]),
    value=NUMBERISH,
)
@example(path="/api/audit", name="before", value=BIG)
@example(path="/api/consultations/elders/proposals", name="offset", value=str(2**31))
async def test_no_query_is_ever_a_server_error(rig: Rig, path: str, name: str, value: str) -> None:
    answer = await rig.get(path, "admin", params={name: value})
    assert answer.status_code < 500, (answer.status_code, path, name, value)

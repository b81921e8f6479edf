"""`consult organiser`, run as an administrator would (a real process): add, links, tokens,
revocation, the list, each action in the audit log, every bad input a message and exit 2."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlmodel import col, select

from core.models import AuditEntry
from core.organisers import Grant, Role, organiser_for_token, redeem_sign_in_code
from tests.bots.test_cli import run


def _code(stdout: str, base: str = "http://localhost:8000") -> str:
    """The code of the sign-in link printed on the last line."""
    link = stdout.strip().splitlines()[-1]
    assert link.startswith(f"{base}/console/sign-in#code="), stdout  # never sent to a server
    return parse_qs(urlsplit(link).fragment)["code"][0]


async def test_an_added_organiser_signs_in_with_the_printed_link_and_scripts_with_a_token(
    load_consultation, sessions, clock, database_url: str, tmp_path: Path
) -> None:
    consultation = await load_consultation()
    public = {"CONSULT_PUBLIC_URL": "https://consult.example.org/"}
    added = run(
        ["organiser", "add", "Ana@Example.org", "--role", "moderator", "--consultation", "elders"],
        database_url,
        tmp_path,
        extra_env=public,
    )
    assert added.returncode == 0, added.stderr
    assert "ana@example.org is now moderator of elders." in added.stdout
    code = _code(added.stdout, "https://consult.example.org")
    async with sessions() as session, session.begin():
        ana = await redeem_sign_in_code(session, code, now=clock())
    assert ana.email == "ana@example.org"
    assert ana.grants == (Grant(Role.MODERATOR, consultation.id),)

    link = run(["organiser", "link", "ana@example.org"], database_url, tmp_path)
    assert link.returncode == 0, link.stderr
    assert _code(link.stdout) != code

    token = run(["organiser", "token", "ana@example.org"], database_url, tmp_path)
    assert token.returncode == 0, token.stderr
    assert len(token.stdout.splitlines()) == 1  # alone: TOKEN=$(consult organiser token ...)
    assert "shown only once" in token.stderr
    async with sessions() as session:
        found = await organiser_for_token(session, token.stdout.strip(), now=clock())
    assert found == ana

    run(["organiser", "add", "ben@example.org", "--role", "admin"], database_url, tmp_path)
    listed = run(["organiser", "list"], database_url, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "ana@example.org  moderator of elders",
        "ben@example.org  admin of every consultation",
    ]
    french = run(["organiser", "list"], database_url, tmp_path, language="fr_FR.UTF-8")
    assert "ben@example.org  administrateur de toutes les consultations" in french.stdout

    revoked = run(["organiser", "revoke", "ana@example.org"], database_url, tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    assert "ana@example.org is revoked: their API tokens (1)" in revoked.stdout
    async with sessions() as session:
        assert await organiser_for_token(session, token.stdout.strip(), now=clock()) is None
        audit = (await session.exec(select(AuditEntry).order_by(col(AuditEntry.id)))).all()
    assert [(e.action, e.source, e.consultation_id) for e in audit] == [
        ("organiser.add", "cli", consultation.id),
        ("organiser.link", "cli", None),
        ("organiser.token", "cli", None),
        ("organiser.add", "cli", None),
        ("organiser.revoke", "cli", None),
    ]
    assert audit[0].target == f"organiser:{ana.id}" and audit[-1].detail["tokens"] == 1
    assert all(token.stdout.strip() not in str(e.detail) for e in audit)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "ana", "--role", "admin"], '"ana" is not an e-mail address'),
        (
            ["add", "ana@example.org", "--role", "admin", "--consultation", "nowhere"],
            'there is no consultation "nowhere"',
        ),
        (["add", "ana@example.org", "--role", "boss"], "invalid choice: 'boss'"),
        (["add", "ana@example.org"], "--role"),
        (["token", "zoe@example.org"], "there is no organiser zoe@example.org"),
        (["link", "zoe@example.org"], "there is no organiser zoe@example.org"),
        (["revoke", "zoe@example.org"], "there is no organiser zoe@example.org"),
        (["token", "not an address"], '"not an address" is not an e-mail address'),
    ],
)
async def test_bad_input_is_a_message_and_exit_2(
    load_consultation, sessions, database_url: str, tmp_path: Path, args, message
) -> None:
    await load_consultation()
    result = run(["organiser", *args], database_url, tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""
    async with sessions() as session:
        assert (await session.exec(select(AuditEntry))).all() == []


def test_no_organisers_yet_says_how_to_add_one(database_url: str, tmp_path: Path) -> None:
    listed = run(["organiser", "list"], database_url, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "consult organiser add EMAIL --role admin" in listed.stdout

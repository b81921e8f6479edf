"""`consult broadcast`, run as an organiser would (a real process): an id alone on stdout,
counts and texts but never an address, and every bad input named on stderr with exit code 2."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bench.fakes.telegram_api import FakeTelegram
from bots.broadcast_preview import telegram_stars, whatsapp_days
from bots.broadcasts import first_moment, run_broadcast
from bots.cli import _parser
from bots.contacts import e164_digits
from bots.errors import OrganiserError
from bots.scheduler import next_fire
from bots.settings import Settings
from core.broadcasts.planning import plan_due
from core.i18n import Translator
from core.identity import enrol
from core.models import BroadcastMessage, ChannelIdentity, Consultation, Contact, Participation
from tests.adapters.telegram.test_telegram_http import environment
from tests.bots.test_cli import consult as consult_process
from tests.bots.test_cli import run
from tests.bots.test_notices import AMELIE, BOB, _serving, join
from tests.bots.test_notices import fake as fake  # the fake Telegram, as a fixture here too
from tests.conftest import SECRET, Loader

WAIT = 60.0  # a bound on a hang: the wait ends when the messages arrive
ADDRESS = "tg-4711-secret"  # a participant's address: in no organiser output
MESSAGE = 'text:\n  fr: "Votez avant dimanche !"\n  en: "Vote before Sunday!"\nbutton: true\n'


async def _participants(
    sessions: async_sessionmaker[AsyncSession],
    consultation: Consultation,
    who: list[tuple[str, str, datetime]],
) -> None:
    """(channel, locale, last seen) for each participant, who consented."""
    async with sessions() as session, session.begin():
        for index, (channel, locale, seen) in enumerate(who):
            enrolment = await enrol(
                session, SECRET, channel, f"user-{index}", f"{ADDRESS}-{index}", seen
            )
            enrolment.participant.locale = locale
            assert enrolment.participant.id is not None and consultation.id is not None
            session.add(
                Participation(
                    participant_id=enrolment.participant.id,
                    consultation_id=consultation.id,
                    consented_at=seen,
                    created_at=seen,
                    updated_at=seen,
                )
            )


@dataclass
class Output:
    returncode: int
    stdout: str
    stderr: str


Consult = Callable[..., Awaitable[Output]]


@pytest.fixture
def consult(database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Consult:
    """`consult ARGS...` in this process (a process of its own costs seconds of imports): the
    command line parsed as `consult` parses it, run as `consult` runs it."""

    async def call(args: list[str], language: str = "en", **settings: Any) -> Output:
        parsed = _parser().parse_args(args)
        configured = Settings(database_url=database_url, data_dir=tmp_path / "data", **settings)
        code = await run_broadcast(configured, parsed, Translator(language))
        captured = capsys.readouterr()
        return Output(code, captured.out, captured.err)

    return call


def _message(tmp_path: Path, text: str = MESSAGE, name: str = "message.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _no_address(*outputs: str) -> None:
    for output in outputs:
        for secret in (ADDRESS, "98 76 54 32", "33798765432", "900123"):
            assert secret not in output


async def test_create_follow_and_control_a_broadcast(
    load_consultation: Loader,
    sessions: async_sessionmaker[AsyncSession],
    database_url: str,
    tmp_path: Path,
    consult: Consult,
) -> None:
    consultation = await load_consultation()
    now = datetime.now(UTC)
    await _participants(
        sessions, consultation, [("telegram", "fr", now), ("telegram", "en", now)] * 2
    )
    message = _message(tmp_path)
    created = run(
        ["broadcast", "create", "elders", "--message", message, "--audience", "all", "--at", "now"],
        database_url,
        tmp_path,
    )
    assert created.returncode == 0, created.stderr
    broadcast_id = int(created.stdout)  # the id alone: ID=$(consult broadcast create ...)
    weekly = await consult(
        [
            "broadcast",
            "create",
            "elders",
            "--message",
            message,
            "--audience",
            "locale:fr",
            "--at",
            (now + timedelta(days=1)).strftime("%Y-%m-%d %H:%M"),
            "--every",
            "0 10 * * 1",
        ]
    )
    assert weekly.returncode == 0, weekly.stderr
    weekly_id = int(weekly.stdout)

    async with sessions() as session, session.begin():  # what the scheduler does when due
        planned = await plan_due(session, datetime.now(UTC), next_fire)
    assert [run_.broadcast_id for run_ in planned] == [broadcast_id]
    shown = await consult(["broadcast", "show", str(broadcast_id), "--json"])
    assert shown.returncode == 0, shown.stderr
    counts = json.loads(shown.stdout)
    assert (counts["id"], counts["queued"], counts["sent"]) == (broadcast_id, 4, 0)
    assert counts["by_channel"]["telegram"]["queued"] == 4

    async with sessions() as session, session.begin():  # what the delivery worker records
        await session.exec(
            update(BroadcastMessage).values(state="sent", sent_at=datetime.now(UTC))  # type: ignore[call-overload]
        )
    followed = await consult(["broadcast", "show", str(broadcast_id), "--follow"])
    assert followed.returncode == 0, followed.stderr
    assert f"Broadcast #{broadcast_id} 100% (4/4)" in followed.stderr  # not a terminal: lines
    assert "sent 4" in followed.stdout

    listed = await consult(["broadcast", "list", "elders"])
    assert f"#{weekly_id}  scheduled  locale:fr  0 10 * * 1" in listed.stdout
    paused = await consult(["broadcast", "pause", str(weekly_id)])
    assert paused.returncode == 0 and f"#{weekly_id} is paused" in paused.stdout
    again = await consult(["broadcast", "pause", str(weekly_id)])
    assert again.returncode == 2 and again.stderr
    resumed = await consult(["broadcast", "resume", str(weekly_id)])
    assert resumed.returncode == 0 and "goes on" in resumed.stdout
    cancelled = await consult(["broadcast", "cancel", str(weekly_id)])
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout
    french = await consult(["broadcast", "show", str(weekly_id)], language="fr")
    assert f"Diffusion n° {weekly_id} de « elders », annulée" in french.stdout
    _no_address(*(r.stdout + r.stderr for r in (created, shown, followed, listed, french)))


async def test_every_bad_input_is_named_with_exit_code_2(
    load_consultation: Loader,
    database_url: str,
    tmp_path: Path,
    consult: Consult,
) -> None:
    await load_consultation()
    good = _message(tmp_path)
    empty = _message(tmp_path, 'text:\n  fr: "Votez"\n  en: "   "\n', "empty.yaml")
    template = _message(tmp_path, 'text:\n  fr: "Votez"\ntemplate: nope\n', "template.yaml")

    def create(*extra: str, message: str = good, audience: str = "all") -> list[str]:
        at = ["--at", "now"] if "--at" not in extra else []
        base = ["broadcast", "create", "elders", "--message", message, "--audience", audience]
        return [*base, *at, *extra]

    cases = [
        (create(message=empty), "'en' is empty"),
        (create(message=template), "no WhatsApp template 'nope'"),
        (create(audience="locale:fr and ("), "^"),
        (create(audience="channel:fax"), "fax"),
        (create("--at", "2020-01-01 10:00"), "2020-01-01"),
        (create("--at", "next tuesday"), "--at next tuesday is not a time"),
        (create("--every", "0 0 31 2 *"), "never fires"),
        (create("--every", "every monday"), "every monday"),
        (["broadcast", "show", "99999"], "there is no broadcast #99999"),
        (["broadcast", "cancel", "99999999999"], "there is no broadcast #99999999999"),
        (["broadcast", "list", "nope"], 'there is no consultation "nope"'),
    ]
    process = run(create(audience="locale:fr and ("), database_url, tmp_path)  # a real one
    assert process.returncode == 2 and "^" in process.stderr and process.stdout == ""
    for args, expected in cases:
        result = await consult(args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert expected in result.stderr, (args, result.stderr)
        assert result.stdout == "", args  # nothing created, no id printed
        assert "Traceback" not in result.stderr


async def test_preview_counts_by_channel_and_locale_and_says_the_cost(
    load_consultation: Loader,
    sessions: async_sessionmaker[AsyncSession],
    database_url: str,
    tmp_path: Path,
    consult: Consult,
) -> None:
    consultation = await load_consultation()
    now = datetime.now(UTC)
    await _participants(
        sessions,
        consultation,
        [
            ("telegram", "fr", now),
            ("telegram", "en", now),
            ("whatsapp", "fr", now),  # wrote an hour ago: inside the window
            ("whatsapp", "en", now - timedelta(days=3)),  # only a template reaches them
        ],
    )
    preview = await consult(
        [
            "broadcast",
            "preview",
            "elders",
            "--message",
            _message(tmp_path),
            "--audience",
            "all",
            "--paid",
        ],
        whatsapp_tier="250",
    )
    assert preview.returncode == 0, preview.stderr
    out = preview.stdout
    assert "Recipients in 'elders' now: 4" in out
    assert "By channel: telegram 2, whatsapp 2" in out
    assert "By language: en 2, fr 2" in out
    assert "Read in fr:\n    Votez avant dimanche !" in out
    assert "Read in en:\n    Vote before Sunday!" in out
    assert "WhatsApp recipients outside the 24-hour window: 1" in out
    assert "on whatsapp, with the button: Continue" in out  # WhatsApp's reply button
    assert "on telegram, with the button: Continue" in out
    assert "at most 0 Stars for 2 messages" in out  # within the free 30 a second
    _no_address(out, preview.stderr)
    async with sessions() as session:
        assert (await session.exec(select(func.count()).select_from(BroadcastMessage))).one() == 0


async def test_contacts_are_imported_whole_or_not_at_all(
    load_consultation: Loader,
    sessions: async_sessionmaker[AsyncSession],
    database_url: str,
    tmp_path: Path,
    consult: Consult,
) -> None:
    await load_consultation()
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "phone,opted_in,locale\n+33 7 98 76 54 32,yes,fr\n06 12 34 56 78,yes,fr\n"
        "+44 7700 900123,maybe,en\n\n",
        encoding="utf-8",
    )
    refused = await consult(["broadcast", "contacts", "import", "elders", "clients", str(bad)])
    assert refused.returncode == 2
    assert "line 3: the phone number is not in international form" in refused.stderr
    assert "line 4: opted_in is 'maybe'" in refused.stderr
    assert "line 2" not in refused.stderr
    async with sessions() as session:
        assert (await session.exec(select(func.count()).select_from(Contact))).one() == 0

    good = tmp_path / "good.csv"
    good.write_text(
        "phone,opted_in,locale\n+33 7 98 76 54 32,yes,fr\n0044 7700 900123,no,en\n",
        encoding="utf-8",
    )
    imported = await consult(["broadcast", "contacts", "import", "elders", "clients", str(good)])
    assert imported.returncode == 0, imported.stderr
    assert "2 contacts added, 0 updated, 1 of the file's opted in" in imported.stdout
    again = await consult(["broadcast", "contacts", "import", "elders", "clients", str(good)])
    assert "0 contacts added, 2 updated" in again.stdout
    _no_address(refused.stderr, imported.stdout, again.stdout)
    async with sessions() as session:
        contacts = (await session.exec(select(Contact).order_by(col(Contact.id)))).all()
        identities = (await session.exec(select(func.count()).select_from(ChannelIdentity))).one()
    assert [(c.address, c.locale, c.opted_in_at is not None) for c in contacts] == [
        ("33798765432", "fr", True),
        ("447700900123", "en", False),
    ]
    assert identities == 0  # people the bot has not met are no participants


def test_when_is_now_an_offset_time_or_the_consultation_s_wall_clock() -> None:
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    assert first_moment("now", "Europe/Paris", now) == now
    assert first_moment("2026-12-07 10:00", "Europe/Paris", now) == datetime(
        2026, 12, 7, 9, 0, tzinfo=UTC
    )
    assert first_moment("2026-12-07T10:00+05:00", "Europe/Paris", now) == datetime(
        2026, 12, 7, 5, 0, tzinfo=UTC
    )
    for bad in ("tomorrow", "2026-12-07", "10:00", ""):
        with pytest.raises(OrganiserError):
            first_moment(bad, "Europe/Paris", now)


def test_numbers_costs_and_days() -> None:
    assert e164_digits("+33 6 12 34 56 78") == "33612345678"
    assert e164_digits("0033 (6) 12.34.56.78") == "33612345678"
    assert e164_digits("06 12 34 56 78") is None  # which country?
    assert e164_digits("+0 123 456 789") is None
    assert e164_digits("+1234567890123456") is None  # 16 digits
    assert telegram_stars(30, 1000) == 0  # the free 30 of one second
    assert telegram_stars(100_000, 1000) == 9700.0  # 100 s: 3,000 free, 97,000 at 0.1
    assert whatsapp_days(0, "250") == 0
    assert whatsapp_days(251, "250") == 2
    assert whatsapp_days(10**6, "unlimited") == 1


async def test_a_broadcast_typed_in_the_cli_reaches_each_participant_once_in_their_language(
    load_consultation: Loader,
    database_url: str,
    tmp_path: Path,
    fake: FakeTelegram,
    consult: Consult,
) -> None:
    """The README's story, over real HTTP: two participants join on Telegram; a broadcast
    created `--at now` is planned by `consult serve`'s scheduler and sent by its worker; a
    second one, created while no server runs, waits and goes with `consult deliver --once`."""
    quiet_off = {"broadcasts": {"quiet_start": None, "quiet_end": None}}  # tests run at night too
    await load_consultation(settings={"sequence_size": 4, **quiet_off})
    env = {
        **environment(database_url, tmp_path, fake),
        "CONSULT_SCHEDULER_EVERY_SECONDS": "0.2",
        "CONSULT_BROADCASTS_EVERY_SECONDS": "0.2",
    }
    message = _message(tmp_path)
    create = ["broadcast", "create", "elders", "--message", message, "--at", "now"]
    with _serving(env, fake):
        await asyncio.to_thread(join, fake, AMELIE, "fr")
        await asyncio.to_thread(join, fake, BOB, "en")  # their app's language, never chosen
        created = await consult([*create, "--audience", "all"])
        assert created.returncode == 0, created.stderr
        await asyncio.to_thread(
            fake.wait_for,
            lambda: (
                _received(fake, BOB, "Vote before Sunday!")
                and _received(fake, AMELIE, "Votez avant dimanche !")
            ),
            timeout=WAIT,
        )
    later = await consult([*create, "--audience", "locale:en"])
    waiting = json.loads(
        (await consult(["broadcast", "show", later.stdout.strip(), "--json"])).stdout
    )
    assert (waiting["queued"], waiting["sent"]) == (0, 0)  # no scheduler ran yet
    delivered = consult_process(["deliver", "--once"], env)
    assert delivered.returncode == 0, delivered.stderr
    assert _received(fake, BOB, "Vote before Sunday!") == 2
    assert _received(fake, AMELIE, "Votez avant dimanche !") == 1
    assert _received(fake, AMELIE, "Vote before Sunday!") == 0


def _received(fake: FakeTelegram, chat: int, text: str) -> int:
    return sum(text in sent for sent in fake.sent_texts(chat))

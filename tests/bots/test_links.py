"""`consult telegram link` and `consult whatsapp link`: deep links and QR codes to print."""

from __future__ import annotations

from pathlib import Path

from tests.bots.test_cli import run
from tests.conftest import Loader


async def test_links_open_a_consultation_with_its_source(
    database_url: str, tmp_path: Path, load_consultation: Loader
) -> None:
    await load_consultation()
    env = {"CONSULT_TELEGRAM_BOT_USERNAME": "@elders_bot", "CONSULT_SECRET_KEY": "k"}
    telegram = run(
        ["telegram", "link", "elders", "--source", "poster_3"],
        database_url,
        tmp_path,
        extra_env=env,
    )
    assert telegram.returncode == 0, telegram.stderr
    assert telegram.stdout.strip() == "https://t.me/elders_bot?start=elders__poster_3"

    env = {"CONSULT_WHATSAPP_PHONE_NUMBER": "+33 6 12 34 56 78", "CONSULT_SECRET_KEY": "k"}
    qr = tmp_path / "poster.png"
    whatsapp = run(
        ["whatsapp", "link", "elders", "--source", "radio", "--qr", str(qr)],
        database_url,
        tmp_path,
        extra_env=env,
    )
    assert whatsapp.returncode == 0, whatsapp.stderr
    assert whatsapp.stdout.strip() == "https://wa.me/33612345678?text=start%20elders__radio"
    assert qr.read_bytes().startswith(b"\x89PNG")


async def test_bad_links_are_explained_with_exit_code_2(
    database_url: str, tmp_path: Path, load_consultation: Loader
) -> None:
    await load_consultation()
    username = {"CONSULT_TELEGRAM_BOT_USERNAME": "elders_bot", "LANG": "en_US.UTF-8"}
    cases = [
        (["telegram", "link", "nowhere"], username, 'there is no consultation "nowhere"'),
        (["telegram", "link", "elders", "--source", "a b"], username, "cannot be a deep link"),
        (["telegram", "link", "elders", "--source", "a__b"], username, "cannot be a deep link"),
        (["telegram", "link", "elders"], {}, "CONSULT_TELEGRAM_BOT_USERNAME"),
        (["whatsapp", "link", "elders"], {}, "CONSULT_WHATSAPP_PHONE_NUMBER"),
    ]
    for args, env, message in cases:
        result = run(args, database_url, tmp_path, language="en_US.UTF-8", extra_env=env)
        assert (result.returncode, message in result.stderr) == (2, True), (args, result.stderr)

"""A whole consultation through Slack over real HTTP: slash command, App Home, votes with
qualifications, a proposal in a modal (with a validation error), retries, /forget, and what the
database keeps of the people involved."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import MetaData, select

from bench.fakes import slack_api
from bench.fakes.slack_api import TEAM
from bench.processes import serving
from bots.server import create_app
from core.storage import create_engine
from tests.adapters.slack.conftest import Rig, settings_for
from tests.bots.test_cli import run

ALICE = "U0ALICE"
NAMES = (ALICE, f"name-of-{ALICE}")


async def everything_stored(database_url: str) -> list[tuple[str, str, str]]:
    """(table, column, value) for every non-empty value in every table of the database."""
    engine = create_engine(database_url)
    rows: list[tuple[str, str, str]] = []
    try:
        async with engine.connect() as connection:
            metadata = MetaData()
            await connection.run_sync(metadata.reflect)
            for table in metadata.sorted_tables:
                for row in (await connection.execute(select(table))).mappings():
                    rows += [(table.name, k, str(v)) for k, v in row.items() if v is not None]
    finally:
        await engine.dispose()
    return rows


def mentions(rows: list[tuple[str, str, str]], needles: tuple[str, ...]) -> list[Any]:
    return [row for row in rows if any(needle in row[2] for needle in needles)]


async def organiser_views(rig: Rig, tmp_path: Path) -> list[str]:
    """What an organiser can read of the consultation: `consult results elders --json`, the
    same broken down by age, and the organiser API's answer (by age)."""
    views = []
    for by in ([], ["--by", "age"]):
        args = ["results", "elders", "--json", *by]
        result = await asyncio.to_thread(run, args, rig.database_url, tmp_path)
        assert result.returncode == 0, result.stderr
        views.append(result.stdout)
    settings = settings_for(rig.database_url, tmp_path, organiser_token="organiser-token")
    async with (
        serving(create_app(settings, channels=[])) as url,
        httpx.AsyncClient(timeout=10) as http,
    ):
        response = await http.get(
            f"{url}/api/consultations/elders/results",
            params={"by": "age"},
            headers={"Authorization": "Bearer organiser-token"},
        )
    assert response.status_code == 200
    views.append(response.text)
    return views


async def test_a_participant_takes_part_from_slash_command_to_forget(
    rig: Rig, tmp_path: Path
) -> None:
    # /consult elders: acknowledged at once, the conversation goes on in the DM.
    response = await rig.command(ALICE, "elders")
    assert response.status_code == 200
    assert any("How can we better care for our elders?" in t for t in rig.texts(ALICE))
    assert rig.options(ALICE) == ["accept", "decline"]  # Slack locale en-US: no language step

    consent = rig.last_with_actions(ALICE)
    await rig.tap(ALICE, "accept")
    # The tapped message became the next question, its first line recalling the answer.
    updated = rig.fake.messages[(rig.dm(ALICE), consent["ts"])]
    assert updated["blocks"][0]["elements"][0]["text"] == "✓ I agree"
    assert rig.last_with_actions(ALICE)["ts"] == consent["ts"]
    assert rig.options(ALICE) == ["young", "old", "skip"]
    await rig.tap(ALICE, "young")

    assert await rig.vote_sequence(ALICE, "agree", "likeIt") == 4
    assert "propose" in rig.options(ALICE)

    await rig.tap(ALICE, "propose")
    prompt = rig.last_with_actions(ALICE)
    assert "We should" in prompt["blocks"][0]["text"]["text"]  # the prefix, and the limits
    assert rig.elements(prompt)[0]["action_id"] == "proposal:write"

    # "Write your proposal" opens a modal showing the prompt.
    await rig.tap(ALICE, "proposal:write", prompt)
    view = rig.fake.ok_calls("views.open")[-1].answer["view"]
    assert view["blocks"][0]["text"]["text"] == prompt["blocks"][0]["text"]["text"]

    # Too short: the core's reason is shown in the modal, nothing is posted.
    posted = len(rig.messages(ALICE))
    response = await rig.submit_proposal(ALICE, "a")
    assert response.json()["response_action"] == "errors"
    assert "at least 12 characters" in response.json()["errors"]["proposal"]
    assert len(rig.messages(ALICE)) == posted

    # Markup typed by the participant is shown as typed and never pings anyone.
    typed = "ping <!channel> and <@U123>, see <http://x|y>, *bold* _it_ ~s~ & more"
    response = await rig.submit_proposal(ALICE, typed)
    assert response.status_code == 200 and response.text in ("", "null")
    confirm = rig.last_with_actions(ALICE)
    section = confirm["blocks"][0]["text"]
    assert section["type"] == "plain_text" and typed in section["text"]
    assert "<!channel>" not in confirm["text"] and "&lt;!channel&gt;" in confirm["text"]
    assert "<@U123>" not in confirm["text"]
    await rig.tap(ALICE, "confirm")
    assert "Thank you!" in rig.texts(ALICE)[-2]

    # App Home: open consultations, the participant's progress, a Participate button.
    await rig.event({"type": "app_home_opened", "user": ALICE, "tab": "home"}, "EvHOME1")
    home = rig.fake.ok_calls("views.publish")[-1]
    assert home.args["user_id"] == ALICE
    blocks = home.args["view"]["blocks"]
    assert any("You have voted on 4 of 14 proposals." in str(b) for b in blocks)
    assert any(
        e.get("action_id") == "participate:elders" for b in blocks for e in b.get("elements", [])
    )

    # No raw Slack user id or name anywhere in the database; the DM is the delivery address.
    stored = await everything_stored(rig.database_url)
    assert mentions(stored, NAMES) == []
    addresses = [
        v for table, column, v in stored if (table, column) == ("channelidentity", "address")
    ]
    assert addresses == [f"{TEAM}:{rig.dm(ALICE)}"]

    # Nor in what an organiser reads; Alice alone in her age segment: no figure about it.
    views = await organiser_views(rig, tmp_path)
    for view in views:
        assert not any(needle in view for needle in (*NAMES, rig.dm(ALICE)))
    assert json.loads(views[0])["votes"] == 4
    for view in views[1:]:
        young = json.loads(view)["breakdown"]["segments"][0]
        assert young["option"] == "young"
        assert young["suppressed"] is True and young["fewer_than"] == 5
        assert set(young) == {"option", "label", "suppressed", "fewer_than"}

    # /consult forget, confirmed: the identity and its address are gone.
    await rig.command(ALICE, "forget")
    await rig.tap(ALICE, "yes")
    assert "your personal data has been erased" in rig.texts(ALICE)[-1]
    stored = await everything_stored(rig.database_url)
    assert [row for row in stored if row[0] == "channelidentity"] == []
    assert mentions(stored, (*NAMES, rig.dm(ALICE))) == []
    assert rig.fake.errors == []


async def test_a_french_slack_user_gets_french_and_can_switch_language(rig: Rig) -> None:
    await rig.command("U0BRUNO")
    assert any("Comment mieux prendre soin de nos aînés ?" in t for t in rig.texts("U0BRUNO"))
    await rig.command("U0BRUNO", "language")
    assert rig.options("U0BRUNO") == ["fr", "en"]
    await rig.tap("U0BRUNO", "en")
    assert "I agree" in [e["text"]["text"] for e in rig.elements(rig.last_with_actions("U0BRUNO"))]


async def test_retried_and_duplicate_deliveries_are_processed_once(rig: Rig) -> None:
    await rig.command(ALICE, "elders")
    before = len(rig.messages(ALICE))
    message = {
        "type": "message",
        "channel_type": "im",
        "channel": rig.dm(ALICE),
        "user": ALICE,
        "text": "hello",
        "ts": "1700000999.000100",
    }
    await rig.event(message, "EvMSG1")
    after_first = len(rig.messages(ALICE))
    assert after_first > before
    await rig.event(message, "EvMSG1", retry=1)
    await rig.event(message, "EvMSG1", retry=2)
    assert len(rig.messages(ALICE)) == after_first

    # A double tap on one button counts once; the first one already removed the buttons.
    consent = rig.last_with_actions(ALICE)
    await rig.tap(ALICE, "accept", consent)
    posted = len(rig.messages(ALICE))
    await rig.tap(ALICE, "accept", consent)
    assert len(rig.messages(ALICE)) == posted
    # Another button of an already answered message is stale: the core refuses it and says
    # where we are; the message is settled without a choice shown.
    await rig.tap(ALICE, "decline", consent)
    assert "That button is no longer active" in "".join(rig.texts(ALICE))
    settled = rig.fake.messages[(rig.dm(ALICE), consent["ts"])]
    assert [b["type"] for b in settled["blocks"]] == ["section"]
    assert rig.options(ALICE) == ["young", "old", "skip"]
    posted = len(rig.messages(ALICE))
    # Our own messages echoed back by Slack are not a participant speaking.
    await rig.event({**message, "bot_id": "B0CONSULT", "text": "echo"}, "EvMSG2")
    assert len(rig.messages(ALICE)) == posted
    assert rig.fake.errors == []


async def test_an_organiser_posts_a_consultation_and_an_employee_joins_from_it(rig: Rig) -> None:
    ts = await rig.channel.post_consultation("C0GENERAL", "elders")
    post = rig.fake.messages[("C0GENERAL", ts)]
    assert post["blocks"][0]["text"]["text"] == "Comment mieux prendre soin de nos aînés ?"
    body: dict[str, Any] = {
        "type": "button",
        "action_id": "participate:elders",
        "value": "elders",
    }

    payload = slack_api.block_action(ALICE, post, "C0GENERAL", body)
    await rig.post(payload, "application/x-www-form-urlencoded")
    assert rig.options(ALICE) == ["accept", "decline"]
    assert rig.fake.posted("C0GENERAL") == [post]  # the channel post itself is untouched


async def test_a_vote_costs_one_web_api_call(rig: Rig) -> None:
    """Each tap on a card or its qualification edits the tapped message into the next question,
    with one chat.update and nothing else; only the end of the sequence posts (summary, menu)."""
    await rig.command(ALICE, "elders")
    await rig.tap(ALICE, "accept")
    await rig.tap(ALICE, "young")
    card = rig.last_with_actions(ALICE)
    taps, calls, shown = 0, 0, []
    for key in ("agree", "likeIt") * 4:
        assert rig.last_with_actions(ALICE)["ts"] == card["ts"] and key in rig.options(ALICE)
        since = len(rig.fake.calls)
        await rig.tap(ALICE, key)
        taps, calls = taps + 1, calls + len(rig.fake.calls) - since
        now = rig.fake.messages[(rig.dm(ALICE), card["ts"])]
        if "actions" in [block["type"] for block in now["blocks"]]:  # the next question, in place
            assert rig.fake.counts(since) == {"chat.update": 1}
            recall, question = now["blocks"][0], now["blocks"][1]
            shown.append((recall["elements"][0]["text"], question["text"]["text"]))
    assert calls / taps < 1.3  # 7 taps of 8 cost one call; the last settles and posts 2
    assert len(shown) == 7
    for recall, question in shown[0::2]:  # a vote, then its qualification asked
        assert recall.startswith("✓ Agree: We should") and "Want to say more?" in question
    for index, (recall, question) in enumerate(shown[1::2], start=2):  # then the next card
        assert recall.startswith("✓ Agree · I love it: We should")
        assert question.startswith(f"Proposal {index}/4\n\nWe should")
    assert rig.options(ALICE) == ["vote", "propose", "stop"]  # the menu, posted
    assert rig.fake.errors == []

"""The moderation story end to end, over real HTTP (`consult serve` on a local port, our fake
Bot API, the CLI as an administrator runs it), on both databases.

A participant proposes on Telegram; the proposal appears in the moderators' Telegram group and
in the API's queue; moderator A takes it over the API, moderator B cannot decide it (409); A
refuses it as a copy of an accepted proposal, and its author is told in French, with the
existing proposal; another proposal is accepted from the group by a linked member, its post
then says who decided, and it comes up in another participant's sequence.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bench.fakes.telegram_api import FakeTelegram
from bench.processes import consult_server
from core.i18n import Translator
from core.models import Proposal
from tests.adapters.telegram.test_telegram_http import TOKEN, environment, new_text, say, until
from tests.bots.test_cli import consult
from tests.bots.test_notices import join
from tests.conftest import Loader
from tests.support import proposal_id_of

GROUP = -1001234567890
AMELIE, BOB, CAROL = 3301, 4401, 5501
MEMBER = 9001  # a moderator's own Telegram account, in the group
FR = Translator("fr")
SEEDS = [
    {
        "ref": "p1",
        "text": {
            "fr": "Il faut former davantage d'aides-soignants",
            "en": "We should train more care assistants",
        },
    },
    {
        "ref": "p2",
        "text": {"fr": "Il faut mieux payer les infirmières", "en": "We should pay nurses better"},
    },
]


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram(TOKEN, bot_username="elders_bot") as telegram:
        yield telegram


def _ran(args: list[str], env: dict[str, str]) -> str:
    done = consult(args, env)
    assert done.returncode == 0, done.stderr
    return str(done.stdout)


def _post_of(fake: FakeTelegram, fragment: str) -> dict[str, Any] | None:
    """The group's message (as it stands, after edits) that shows `fragment`."""
    return next(
        (m for m in fake.messages.get(GROUP, {}).values() if fragment in m.get("text", "")), None
    )


def _has_post(
    fake: FakeTelegram, fragment: str, *, decided: str | None = None
) -> Callable[[], bool]:
    def seen() -> bool:
        post = _post_of(fake, fragment)
        return post is not None and (decided is None or decided in post["text"])

    return seen


def propose(fake: FakeTelegram, chat: int, typed: str) -> None:
    """`chat`, who joined, proposes `typed` (in French), sending it even if similar ones exist."""
    prompt = FR("propose.prompt", prefix="", minimum=0, maximum=0)[:12]
    say(fake, chat, fake.text_update(chat, "/propose", language_code="fr"), prompt)
    say(fake, chat, fake.text_update(chat, typed, language_code="fr"), typed)
    before = len(fake.shown_texts(chat))
    buttons = dict(fake.last_keyboard(chat))
    send = FR("propose.confirm.yes")
    assert fake.tap(chat, send if send in buttons else "confirm").status_code == 200
    until(fake, new_text(fake, chat, before, FR("propose.thanks.pending")[:20]))


def _sequence_shows(fake: FakeTelegram, chat: int, text: str) -> bool:
    """Play `chat`'s sequence, skipping each card, until `text` is shown or the cards end."""
    skip = FR("vote.skip")

    def seen() -> bool:
        return any(text in shown for shown in fake.shown_texts(chat))

    def next_card(since: int) -> Callable[[], bool]:
        def shown() -> bool:
            grew = len(fake.shown_texts(chat)) > since
            return seen() or (grew and skip in dict(fake.last_keyboard(chat)))

        return shown

    since = len(fake.shown_texts(chat))
    assert fake.tap(chat, FR("profile.skip")).status_code == 200
    for _ in range(len(SEEDS) + 2):
        try:
            fake.wait_for(next_card(since), timeout=15)
        except TimeoutError:  # no card came: the sequence is over
            return seen()
        if seen():
            return True
        since = len(fake.shown_texts(chat))
        assert fake.tap(chat, skip).status_code == 200
    return seen()


async def test_a_proposal_goes_from_a_participant_to_the_moderators_group_and_back(
    database_url: str,
    tmp_path: Path,
    fake: FakeTelegram,
    load_consultation: Loader,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await load_consultation(proposals=SEEDS)
    env = {**environment(database_url, tmp_path, fake), "CONSULT_NOTICES_EVERY_SECONDS": "0.2"}
    connected = _ran(["moderation", "connect", "telegram", str(GROUP), "elders"], env)
    assert "elders" in connected and "fr" in connected
    for email in ("ana@example.org", "ben@example.org"):
        _ran(["organiser", "add", email, "--role", "moderator", "--consultation", "elders"], env)
    tokens = {
        name: _ran(["organiser", "token", f"{name}@example.org"], env).strip()
        for name in ("ana", "ben")
    }
    code = _ran(["organiser", "chat-code", "ben@example.org"], env).split()[-1]
    original = await proposal_id_of(sessions, "former davantage d'aides-soignants")

    with consult_server(env) as url:
        fake.webhook_url = f"{url}/webhooks/telegram"
        fake.webhook_secret = env["CONSULT_TELEGRAM_WEBHOOK_SECRET"]
        api = httpx.Client(base_url=url, timeout=30)

        def as_(name: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens[name]}"}

        # A participant proposes; the proposal is posted in the moderators' group.
        await asyncio.to_thread(join, fake, AMELIE, "fr")
        copy = "Il faut former davantage d'aides-soignants dans nos villes"
        await asyncio.to_thread(propose, fake, AMELIE, copy)
        copied = await proposal_id_of(sessions, "dans nos villes")
        await asyncio.to_thread(until, fake, _has_post(fake, "dans nos villes"))
        post = _post_of(fake, "dans nos villes")
        assert post is not None
        assert FR("chat.post.similar") in post["text"]  # with the accepted one it repeats
        assert str(AMELIE) not in post["text"] and "Someone" not in post["text"]

        # It is in the API's queue: A takes it; B can neither take it nor decide it.
        served = await asyncio.to_thread(
            api.get, "/api/consultations/elders/moderation/next", headers=as_("ana")
        )
        assert served.status_code == 200 and served.json()["proposal"]["id"] == copied
        empty = await asyncio.to_thread(
            api.get, "/api/consultations/elders/moderation/next", headers=as_("ben")
        )
        assert empty.status_code == 204
        taken = await asyncio.to_thread(
            api.post, f"/api/proposals/{copied}/accept", json={}, headers=as_("ben")
        )
        assert taken.status_code == 409, taken.text

        # A refuses it as a copy; its author is told in French, with the existing proposal.
        before = len(fake.shown_texts(AMELIE))
        refusal = {"reason": "already-exists", "duplicate_of": original}
        refused = await asyncio.to_thread(
            api.post, f"/api/proposals/{copied}/refuse", json=refusal, headers=as_("ana")
        )
        assert refused.status_code == 200, refused.text
        await asyncio.to_thread(
            until, fake, new_text(fake, AMELIE, before, "former davantage d'aides-soignants")
        )
        told = fake.shown_texts(AMELIE)[-1]
        assert "dans nos villes" in told and "Il faut former davantage d'aides-soignants" in told
        refused_by = FR(
            "chat.post.decided_because",
            status=FR("chat.status.refused"),
            who="ana@example.org",
            reason="",
        )
        await asyncio.to_thread(
            until, fake, _has_post(fake, "dans nos villes", decided=refused_by.rstrip(" :"))
        )

        # Another proposal is accepted from the group by a linked member.
        await asyncio.to_thread(join, fake, BOB, "fr")
        await asyncio.to_thread(propose, fake, BOB, "Il faut des cafés pour les seniors")
        cafes = await proposal_id_of(sessions, "cafés pour les seniors")
        await asyncio.to_thread(until, fake, _has_post(fake, "cafés pour les seniors"))
        linking = fake.text_update(MEMBER, f"/link@elders_bot {code}", chat_id=GROUP)
        assert fake.deliver(linking).status_code == 200
        linked = FR("chat.link.done", organiser="ben@example.org")
        await asyncio.to_thread(until, fake, lambda: linked in fake.sent_texts(GROUP))
        cafes_post = _post_of(fake, "cafés pour les seniors")
        assert cafes_post is not None
        tap = fake.callback_update(MEMBER, cafes_post["message_id"], f"m:{cafes}:a", chat_id=GROUP)
        answered = fake.deliver(tap)
        assert answered.status_code == 200
        assert answered.json()["text"] == FR("chat.done.accept")
        assert fake.calls("answerCallbackQuery")[-1].ok
        accepted_by = FR(
            "chat.post.decided", status=FR("chat.status.accepted"), who="ben@example.org"
        )
        await asyncio.to_thread(
            until, fake, _has_post(fake, "cafés pour les seniors", decided=accepted_by)
        )

        # It comes up in another participant's sequence.
        await asyncio.to_thread(join, fake, CAROL, "fr")
        shown = await asyncio.to_thread(_sequence_shows, fake, CAROL, "cafés pour les seniors")
        assert shown, "\n----\n".join(fake.shown_texts(CAROL)) + str(fake.last_keyboard(CAROL))
        api.close()

    async with sessions() as session:
        statuses = dict((await session.exec(select(Proposal.id, Proposal.status))).all())
    assert statuses[copied] == "refused" and statuses[cafes] == "accepted"
    posts_in_group = fake.calls("sendMessage", chat_id=GROUP)
    assert len([c for c in posts_in_group if "cafés pour les seniors" in c.params["text"]]) == 1


async def test_connecting_a_chat_and_linking_say_what_to_fix(
    database_url: str, tmp_path: Path, fake: FakeTelegram, load_consultation: Loader
) -> None:
    await load_consultation(proposals=SEEDS)
    env = {**environment(database_url, tmp_path, fake), "LC_ALL": "en_US.UTF-8"}
    en = Translator("en")
    refusals = {
        ("moderation", "connect", "telegram", "mygroup", "elders"): en(
            "cli.chat_bad_telegram_chat", chat="mygroup"
        ),
        ("moderation", "connect", "slack", "general", "elders"): en(
            "cli.chat_bad_slack_channel", chat="general"
        ),
        ("moderation", "connect", "telegram", str(GROUP), "nowhere"): en(
            "chat.error.unknown_consultation", slug="nowhere"
        ),
        ("moderation", "connect", "telegram", str(GROUP), "elders", "--locale", "xx"): en(
            "chat.error.unknown_locale", locale="xx"
        ),
        ("organiser", "chat-code", "nobody@example.org"): en(
            "chat.error.unknown_organiser", email="nobody@example.org"
        ),
    }
    for args, said in refusals.items():
        refused = consult(list(args), env)
        assert refused.returncode == 2 and said in refused.stderr, (args, refused.stderr)
    connected = _ran(
        ["moderation", "connect", "slack", "C0123ABCD", "elders", "--locale", "en"], env
    )
    assert connected.strip() == en(
        "cli.chat_connected", channel="slack", chat="C0123ABCD", slug="elders", locale="en"
    )
    gone = _ran(["moderation", "disconnect", "slack", "C0123ABCD"], env)
    assert gone.strip() == en("cli.chat_disconnected", channel="slack", chat="C0123ABCD")
    again = _ran(["moderation", "disconnect", "slack", "C0123ABCD"], env)
    assert again.strip() == en("cli.chat_not_connected", channel="slack", chat="C0123ABCD")

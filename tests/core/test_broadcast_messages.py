"""A broadcast's message: what is accepted, what falls back to the default language, and each
refusal naming the language and the limit at fault, in both catalogues."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.broadcasts import audience, messages
from core.broadcasts.messages import (
    MAX_TEXT,
    MAX_TEXT_WITH_BUTTON,
    BroadcastContent,
    MessageError,
    load_message_file,
    parse_message,
    text_for,
)
from core.definitions import parse_consultation
from core.i18n import Translator
from core.models import Consultation
from tests.conftest import consultation_data

TEMPLATES = [{"name": "weekly_reminder", "language": "fr"}]


def _consultation() -> Consultation:
    spec = parse_consultation(consultation_data(settings={"broadcasts": {"templates": TEMPLATES}}))
    return Consultation(
        id=1,
        slug=spec.slug,
        default_locale=spec.default_locale,
        locales=spec.locales,
        question=spec.question,
        settings=spec.settings.model_dump(mode="json"),
    )


CONSULTATION = _consultation()


def test_a_message_in_both_languages_with_a_button_and_a_template() -> None:
    content = parse_message(
        {
            "text": {"fr": "  Plus qu'une semaine !\n", "en": "One week left!"},
            "button": True,
            "template": "weekly_reminder",
        },
        CONSULTATION,
    )
    assert content == BroadcastContent(
        texts={"fr": "Plus qu'une semaine !", "en": "One week left!"},
        button=True,
        template="weekly_reminder",
    )


def test_a_language_without_its_text_gets_the_default_ones() -> None:
    content = parse_message({"text": "Plus qu'une semaine !"}, CONSULTATION)
    assert content == BroadcastContent({"fr": "Plus qu'une semaine !"}, False, None)
    assert text_for(content.texts, "en", "fr") == "Plus qu'une semaine !"
    assert text_for({"fr": "a", "en": "b"}, "en", "fr") == "b"
    assert text_for({"en": "b"}, "de", "fr") == "b"


@pytest.mark.parametrize(
    ("data", "msgid", "named"),
    [
        ("hello", "broadcast.message.not_mapping", None),
        ({"txt": {"fr": "a"}}, "broadcast.message.unknown_field", "txt"),
        ({"button": True}, "broadcast.message.no_text", "fr"),
        ({"text": ["a"]}, "broadcast.message.bad_text", "fr"),
        ({"text": {}}, "broadcast.message.bad_text", "fr"),
        ({"text": {"fr": "a", "de": "b"}}, "broadcast.message.unknown_locale", "de"),
        ({"text": {"fr": "a", "en": "  \n"}}, "broadcast.message.empty_text", "en"),
        ({"text": {"fr": "a", "en": 3}}, "broadcast.message.empty_text", "en"),
        ({"text": {"en": "a"}}, "broadcast.message.no_default", "fr"),
        ({"text": {"fr": "a"}, "button": "yes"}, "broadcast.message.bad_button", None),
        ({"text": {"fr": "a"}, "template": "nope"}, "broadcast.message.unknown_template", "nope"),
        (
            {"text": {"fr": "a", "en": "x" * (MAX_TEXT + 1)}},
            "broadcast.message.too_long",
            str(MAX_TEXT),
        ),
        (
            {"text": {"fr": "a" * (MAX_TEXT_WITH_BUTTON + 1)}, "button": True},
            "broadcast.message.too_long",
            str(MAX_TEXT_WITH_BUTTON),
        ),
        # Telegram counts UTF-16 units: an emoji outside the BMP counts two.
        (
            {"text": {"fr": "🎉" * 513}, "button": True},
            "broadcast.message.too_long",
            "1026",
        ),
    ],
)
def test_each_refusal_names_what_to_fix(data: Any, msgid: str, named: str | None) -> None:
    with pytest.raises(MessageError) as caught:
        parse_message(data, CONSULTATION)
    assert caught.value.msgid == msgid
    if named is not None:
        assert named in str(caught.value)
        assert named in Translator("fr")(msgid, **caught.value.values)


def test_the_limits_are_inclusive() -> None:
    parse_message({"text": {"fr": "a" * MAX_TEXT}}, CONSULTATION)
    parse_message({"text": {"fr": "a" * MAX_TEXT_WITH_BUTTON}, "button": True}, CONSULTATION)


def test_a_message_file(tmp_path: Path) -> None:
    path = tmp_path / "reminder.yaml"
    path.write_text('text:\n  fr: "Votez !"\n  en: |\n    Vote!\nbutton: true\n', "utf-8")
    assert load_message_file(path, CONSULTATION) == BroadcastContent(
        {"fr": "Votez !", "en": "Vote!"}, True, None
    )
    path.write_text("text: [unclosed\n", "utf-8")
    with pytest.raises(MessageError) as caught:
        load_message_file(path, CONSULTATION)
    assert caught.value.msgid == "broadcast.message.bad_yaml"
    assert str(path) in str(caught.value)
    with pytest.raises(MessageError) as caught:
        load_message_file(tmp_path / "missing.yaml", CONSULTATION)
    assert caught.value.msgid == "broadcast.message.unreadable"
    path.write_bytes(b"\xff\xfe text")
    with pytest.raises(MessageError) as caught:
        load_message_file(path, CONSULTATION)
    assert caught.value.msgid == "broadcast.message.unreadable"


@pytest.mark.parametrize("locale", ["en", "fr"])
def test_every_refusal_is_said_in_both_languages(locale: str) -> None:
    values = {
        "column": 3,
        "token": "x",
        "limit": 9,
        "channel": "c",
        "locale": "l",
        "valid": "v",
        "question": "q",
        "option": "o",
        "field": "f",
        "length": 10,
        "template": "t",
        "path": "p",
        "line": 2,
    }
    for msgid in (*audience.MSGIDS, *messages.MSGIDS):
        said = Translator(locale)(msgid, **values)
        assert said != msgid and "{" not in said, (locale, msgid)


@pytest.mark.parametrize("locale", ["en", "fr"])
def test_a_text_too_long_names_its_language_its_length_and_the_limit(locale: str) -> None:
    with pytest.raises(MessageError) as caught:
        parse_message({"text": {"fr": "a", "en": "b" * 1100}, "button": True}, CONSULTATION)
    said = Translator(locale)(caught.value.msgid, **caught.value.values)
    assert "'en'" in said or "« en »" in said
    assert "1100" in said and "1024" in said

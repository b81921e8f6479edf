"""What a broadcast says: a text per locale, an optional button, an optional WhatsApp template.

Read from the organiser's YAML message file or an API body::

    text:
      fr: "Il reste une semaine pour voter !"
      en: "One week left to vote!"
    button: true          # opens (or resumes) the consultation where the recipient left it
    template: reminder_1  # a name in settings.broadcasts.templates, for WhatsApp outside 24 h

The default locale's text is required; a locale without a text gets the default's. A text is
at most 4,096 characters (Telegram's and WhatsApp's limit for a text message, the strictest of
the channels), 1,024 with a button (a message with buttons is a caption or an interactive body
there), counted in UTF-16 code units as Telegram counts them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.definitions import settings_of
from core.i18n import Translator
from core.models import Consultation

MAX_TEXT = 4096
MAX_TEXT_WITH_BUTTON = 1024
FIELDS = ("text", "button", "template")

# Every msgid a MessageError can carry (tests check both catalogues hold them).
MSGIDS = (
    "broadcast.message.not_mapping",
    "broadcast.message.unknown_field",
    "broadcast.message.no_text",
    "broadcast.message.bad_text",
    "broadcast.message.unknown_locale",
    "broadcast.message.empty_text",
    "broadcast.message.no_default",
    "broadcast.message.too_long",
    "broadcast.message.bad_button",
    "broadcast.message.unknown_template",
    "broadcast.message.unreadable",
    "broadcast.message.bad_yaml",
)


class MessageError(ValueError):
    """A broadcast's message that cannot be sent as given: `msgid` says what to fix."""

    def __init__(self, msgid: str, **values: Any) -> None:
        self.msgid = msgid
        self.values = values
        super().__init__(Translator("en")(msgid, **values))


@dataclass(frozen=True)
class BroadcastContent:
    """Checked texts by locale (the default locale's among them), whether a button opens the
    consultation, and the WhatsApp template's name (None: no template)."""

    texts: dict[str, str]
    button: bool
    template: str | None


def _length(text: str) -> int:
    """Telegram's count: UTF-16 code units (an emoji outside the BMP counts two)."""
    return len(text.encode("utf-16-le")) // 2


def _texts(given: object, consultation: Consultation, limit: int) -> dict[str, str]:
    if given is None:
        raise MessageError("broadcast.message.no_text", locale=consultation.default_locale)
    if isinstance(given, str):  # one text: the default locale's
        given = {consultation.default_locale: given}
    if not isinstance(given, Mapping) or not given:
        raise MessageError("broadcast.message.bad_text", locale=consultation.default_locale)
    texts: dict[str, str] = {}
    for locale, text in given.items():
        if locale not in consultation.locales:
            raise MessageError(
                "broadcast.message.unknown_locale",
                locale=str(locale),
                valid=", ".join(consultation.locales),
            )
        if not isinstance(text, str) or not text.strip():
            raise MessageError("broadcast.message.empty_text", locale=locale)
        text = text.strip()
        if _length(text) > limit:
            raise MessageError(
                "broadcast.message.too_long", locale=locale, limit=limit, length=_length(text)
            )
        texts[locale] = text
    if consultation.default_locale not in texts:
        raise MessageError("broadcast.message.no_default", locale=consultation.default_locale)
    return texts


def parse_message(data: object, consultation: Consultation) -> BroadcastContent:
    """The checked content of a message file or API body; MessageError naming what to fix."""
    if not isinstance(data, Mapping):
        raise MessageError("broadcast.message.not_mapping")
    for key in data:
        if key not in FIELDS:
            raise MessageError(
                "broadcast.message.unknown_field", field=str(key), valid=", ".join(FIELDS)
            )
    button = data.get("button", False)
    if not isinstance(button, bool):
        raise MessageError("broadcast.message.bad_button")
    texts = _texts(data.get("text"), consultation, MAX_TEXT_WITH_BUTTON if button else MAX_TEXT)
    template = data.get("template")
    if template is not None:
        names = [t.name for t in settings_of(consultation).broadcasts.templates]
        if not isinstance(template, str) or template not in names:
            raise MessageError(
                "broadcast.message.unknown_template",
                template=str(template),
                valid=", ".join(names) or "-",
            )
    return BroadcastContent(texts=texts, button=button, template=template)


def load_message_file(path: Path, consultation: Consultation) -> BroadcastContent:
    """`parse_message` of a YAML file; MessageError if it cannot be read or is not YAML."""
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise MessageError("broadcast.message.unreadable", path=str(path)) from None
    try:
        data = yaml.safe_load(source)
    except yaml.YAMLError as problem:
        mark = getattr(problem, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise MessageError("broadcast.message.bad_yaml", path=str(path), line=line) from None
    return parse_message(data, consultation)


def text_for(texts: Mapping[str, str], locale: str, default_locale: str) -> str:
    """The text in `locale`, else the default locale's (else any, for a reminder's texts)."""
    if locale in texts:
        return texts[locale]
    if default_locale in texts:
        return texts[default_locale]
    return next(iter(texts.values()), "")


def check_reach(content: BroadcastContent, outside_kind: str | None, name: str | None) -> None:
    """MessageError if the message cannot reach the audience at all: a WhatsApp list holds
    people who never wrote to the business, so outside the 24-hour window, where only an
    approved template reaches them: without one, every message would wait for ever."""
    if outside_kind == "whatsapp-list" and content.template is None:
        raise MessageError("broadcast.message.template_needed", list=name or "")

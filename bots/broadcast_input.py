"""What an organiser types to compose a broadcast (texts per locale, button, template, audience,
when), read the same way by the API and the console: each fault becomes one `Invalid` naming
the field to fix, with the core's message id, its values and, for an audience, the position.
The rules themselves are the core's (`core.broadcasts`); this only says which field broke one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from bots.broadcast_preview import rendered
from core.broadcasts.audience import (
    AudienceError,
    AudienceExpr,
    outside_target,
    parse_audience,
    validate_audience,
)
from core.broadcasts.messages import (
    BroadcastContent,
    MessageError,
    check_reach,
    parse_message,
    text_for,
)
from core.definitions import settings_of
from core.i18n import Translator
from core.models import Consultation


class Invalid(ValueError):
    """A field of a broadcast to fix: `field` (text, template, audience, at, every), the
    message id saying what, its values, and where in the field (an audience's position)."""

    def __init__(
        self,
        field: str,
        msgid: str,
        values: dict[str, Any] | None = None,
        position: int | None = None,
    ) -> None:
        super().__init__(f"{field}: {msgid}")
        self.field = field
        self.msgid = msgid
        self.values = values or {}
        self.position = position

    @classmethod
    def of(cls, field: str, error: Exception) -> Invalid:
        """A core error (AudienceError, MessageError, ScheduleError) as a fault of `field`."""
        return cls(
            field,
            str(getattr(error, "msgid", "")),
            dict(getattr(error, "values", None) or {}),
            getattr(error, "position", None),
        )


@dataclass(frozen=True)
class Composed:
    content: BroadcastContent
    audience: str
    expression: AudienceExpr = field(repr=False)


def check_audience(consultation: Consultation, text: str) -> AudienceExpr:
    """The parsed expression, valid for this consultation (its channels, locales, profile)."""
    try:
        expression = parse_audience(text)
        validate_audience(consultation, expression)
    except AudienceError as error:
        raise Invalid.of("audience", error) from None
    return expression


def check_message(
    consultation: Consultation, texts: dict[str, str], button: bool, template: str | None
) -> BroadcastContent:
    """The message as the core reads it; a template fault is the template's field, any other
    the text's."""
    data: dict[str, Any] = {"text": texts, "button": button}
    if template:
        data["template"] = template
    try:
        return parse_message(data, consultation)
    except MessageError as error:
        where = "template" if "template" in error.msgid else "text"
        raise Invalid.of(where, error) from None


def compose(
    consultation: Consultation,
    texts: dict[str, str],
    button: bool,
    template: str | None,
    audience: str,
) -> Composed:
    """Message then audience, each checked by the core; `Invalid` names the first fault."""
    content = check_message(consultation, texts, button, template)
    expression = check_audience(consultation, audience)
    outside = outside_target(expression)
    try:
        check_reach(content, outside.kind if outside else None, outside.name if outside else None)
    except MessageError as error:
        raise Invalid.of("template", error) from None
    return Composed(content, audience.strip(), expression)


def first_moment(
    consultation: Consultation, at: datetime | Literal["now"], now: datetime
) -> datetime:
    """When the broadcast first goes, in UTC: `now`, or a time read in the consultation's zone
    when it has none (a form's date and time are the organiser's wall clock there). Whether
    it is in the past is the core's to say."""
    if at == "now":
        return now
    if at.tzinfo is None:
        zone = ZoneInfo(settings_of(consultation).broadcasts.time_zone)
        at = at.replace(tzinfo=zone)
    return at.astimezone(UTC)


def preview_texts(consultation: Consultation, content: BroadcastContent) -> dict[str, str]:
    """What recipients read in each of the consultation's locales (a locale without its own
    text gets the default locale's)."""
    default = consultation.default_locale
    return {locale: text_for(content.texts, locale, default) for locale in consultation.locales}


@dataclass(frozen=True)
class LocalePreview:
    """What one locale's recipients read: the text, the button's label (in their language),
    and, per channel of the audience that shows it otherwise, that channel's text and buttons."""

    locale: str
    text: str
    button: str | None
    channels: dict[str, tuple[str, list[str]]]


def preview_of(
    consultation: Consultation, content: BroadcastContent, channels: list[str]
) -> list[LocalePreview]:
    """Each of the consultation's locales as the audience's channels render it (the adapters'
    own renderers, as `consult broadcast preview` shows them)."""
    previews = []
    for locale, text in preview_texts(consultation, content).items():
        label = Translator(locale)("broadcast.button")
        shown: dict[str, tuple[str, list[str]]] = {}
        for channel in sorted(channels):
            seen, buttons = rendered(channel, text, content.button, label)
            if seen != text or buttons != ([label] if content.button else []):
                shown[channel] = (seen, buttons)
        previews.append(LocalePreview(locale, text, label if content.button else None, shown))
    return previews

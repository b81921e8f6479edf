"""Message catalogues (Babel/gettext, in `locales/`) and locale-aware formatting.

Code holds message ids only ("card.header"); every sentence a person reads lives in
`locales/<lang>/LC_MESSAGES/messages.po`. Catalogues are compiled in memory when first used, so
there is no build step and no stale `.mo` file.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent
from babel.support import Translations

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "messages"
FALLBACK = "en"


@cache
def available_locales() -> tuple[str, ...]:
    """Locales that have a catalogue, sorted."""
    return tuple(
        sorted(p.parent.parent.name for p in LOCALES_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))
    )


@cache
def _translations(locale: str) -> Translations:
    path = LOCALES_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    with path.open("rb") as source:
        catalog = read_po(source, locale=locale)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    translations = Translations(compiled, domain=DOMAIN)
    if locale != FALLBACK:
        translations.add_fallback(_translations(FALLBACK))
    return translations


def negotiate(hint: str | None, offered: list[str] | tuple[str, ...]) -> str | None:
    """The offered locale matching a channel's hint ("fr-FR", "en_GB", "pt-br"), or None."""
    if not hint or len(hint) > 35:  # longer than any language tag in use
        return None
    wanted = _parsed(hint)
    if wanted is None:
        return None
    for candidate in wanted:
        if candidate in offered:
            return candidate
    return None


@lru_cache(maxsize=1024)
def _parsed(hint: str) -> tuple[str, str] | None:
    """A hint's locale and language, parsed once: Babel reads its locale data from disk, and
    every event carries a hint. Bounded: hints come from the network."""
    try:
        wanted = Locale.parse(hint.replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        return None
    return str(wanted), wanted.language


@dataclass(frozen=True)
class Translator:
    """Sentences and numbers for one locale: `t("msg.id", name=value)`."""

    locale: str

    def __call__(self, msgid: str, **values: Any) -> str:
        return _translations(self.locale).ugettext(msgid).format(**values)

    def plural(self, msgid: str, count: int, **values: Any) -> str:
        """A sentence whose grammar follows `count`; `{count}` is formatted for the locale."""
        text = _translations(self.locale).ungettext(msgid, msgid, count)
        return text.format(count=self.number(count), **values)

    def number(self, value: float) -> str:
        return format_decimal(value, locale=self.locale)

    def percent(self, ratio: float) -> str:
        return format_percent(ratio, locale=self.locale)


def has_message(locale: str, msgid: str) -> bool:
    """Whether `locale`'s own catalogue (not its fallback) translates `msgid`."""
    catalog = _translations(locale)
    return msgid in catalog._catalog or (msgid, 0) in catalog._catalog

"""Invariant 7 for the console's templates: every message id a template gives `t` (which the
catalogue test, reading Python files, does not see) is translated in English and French, and
so is every id a template builds (a status, a flag, a reason)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from bots.console.refusals import REASONS
from bots.refusals import STATUS
from core.definitions import REFUSAL_REASONS
from core.i18n import LOCALES_DIR
from core.moderation.flags import Flag

TEMPLATES = Path(__file__).resolve().parents[3] / "bots" / "console" / "templates"
_LITERAL = re.compile(r"""\bt(?:\.plural)?\(\s*["']([a-z][\w.-]*)["']""")


def _template_ids() -> set[str]:
    ids: set[str] = set()
    for template in TEMPLATES.glob("*.html"):
        found = _LITERAL.findall(template.read_text(encoding="utf-8"))
        ids.update(i for i in found if not i.endswith("."))  # "moderation.flag." ~ flag: built
    return ids


def _translated(locale: str) -> set[str]:
    with (LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = read_po(source, locale=locale)
    return {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id and m.string}


def test_templates_use_message_ids() -> None:
    assert len(_template_ids()) > 50  # the pattern still finds what the templates say


@pytest.mark.parametrize("locale", ["en", "fr"])
def test_every_message_of_the_console_is_translated(locale: str) -> None:
    built = {f"moderation.flag.{flag.value}" for flag in Flag} | set(STATUS.values())
    wanted = _template_ids() | built | set(REASONS.values())
    assert sorted(wanted - _translated(locale)) == []


def test_every_default_refusal_reason_has_a_label() -> None:
    assert set(REASONS) == set(REFUSAL_REASONS)

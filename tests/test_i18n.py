"""Invariant 7: every message id the code uses is translated in every catalogue."""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from core.i18n import LOCALES_DIR, Translator, available_locales, negotiate
from core.models import QualificationKey, VoteKey

ROOT = Path(__file__).resolve().parent.parent


def _catalog(locale: str):
    with (LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as source:
        return read_po(source, locale=locale)


def _used_message_ids() -> set[str]:
    """Literal ids given to a translator (`t("x")`, `self.t("x")`, `t.plural("x", n)`, ...)."""
    ids: set[str] = set()
    for path in [
        p for folder in ("core", "adapters", "bots") for p in (ROOT / folder).rglob("*.py")
    ]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and node.args:
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                first = node.args[0]
                if name in ("t", "plural") and isinstance(first, ast.Constant):
                    ids.add(first.value)
                if isinstance(first, ast.Constant) and name == "TextProblem":
                    ids.add(first.value)
    ids.update(f"vote.{key}" for key in VoteKey)
    ids.add("vote.skip")
    ids.update(f"qualification.{key}" for key in QualificationKey)
    return ids


def test_french_and_english_are_available() -> None:
    assert {"en", "fr"} <= set(available_locales())


@pytest.mark.parametrize("locale", ["en", "fr"])
def test_every_used_message_is_translated(locale: str) -> None:
    catalog = _catalog(locale)
    translated = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id and m.string}
    missing = sorted(_used_message_ids() - translated)
    assert missing == []


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_translations_use_the_same_placeholders() -> None:
    english = {m.id: m.string for m in _catalog("en") if m.id}
    for message in _catalog("fr"):
        if not message.id:
            continue
        ours = message.string if isinstance(message.string, tuple) else (message.string,)
        theirs = english[message.id]
        theirs = theirs if isinstance(theirs, tuple) else (theirs,)
        assert {f for s in ours for f in _fields(s)} == {f for s in theirs for f in _fields(s)}


def test_plurals_numbers_and_percentages_follow_the_locale() -> None:
    fr, en = Translator("fr"), Translator("en")
    assert fr.plural("summary.votes", 1) == "1 vote"
    assert fr.plural("summary.votes", 0) == "0 vote"  # French: 0 is singular
    assert en.plural("summary.votes", 0) == "0 votes"
    assert re.fullmatch(r"1\s234 votes", fr.plural("summary.votes", 1234))
    assert en.plural("summary.votes", 1234) == "1,234 votes"
    assert en.percent(0.625) == "62%"
    assert re.fullmatch(r"62\s%", fr.percent(0.625))


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        ("fr-FR", "fr"),
        ("fr_CA", "fr"),
        ("en-GB", "en"),
        ("de", None),
        ("", None),
        ("??", None),
        ("fr-" + "x" * 5000, None),  # a hint from the network, too long to be one
    ],
)
def test_channel_hints_are_negotiated(hint, expected) -> None:
    assert negotiate(hint, ("fr", "en")) == expected

"""Every refusal the core can raise has its sentence on each organiser surface, in every language;
the surfaces build those msgids from `ModerationError.kind`, where the i18n test can't see them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bots.refusals import HTTP_STATUS, refusal_values
from core.i18n import Translator, has_message
from core.moderation import errors
from core.proposals import TextProblem

SURFACES = ("cli.moderation_", "api.", "console.refusal.")


def _kinds() -> set[str]:
    return {
        error.kind
        for error in vars(errors).values()
        if isinstance(error, type)
        and issubclass(error, errors.ModerationError)
        and error is not errors.ModerationError
    }


def test_every_refusal_has_an_http_status() -> None:
    assert _kinds() == set(HTTP_STATUS)


@pytest.mark.parametrize("locale", ["en", "fr"])
@pytest.mark.parametrize("prefix", SURFACES)
def test_every_refusal_is_said_on_every_surface(locale: str, prefix: str) -> None:
    assert sorted(k for k in _kinds() if not has_message(locale, prefix + k)) == []


def test_the_values_are_said_in_the_organisers_language() -> None:
    fr = Translator("fr")
    at = datetime(2026, 1, 2, 15, 4, tzinfo=UTC)
    locked = refusal_values(fr, errors.Locked("ana@example.org", at), 7)
    assert locked["id"] == 7 and locked["holder"] == "ana@example.org"
    assert "15:04" in locked["until"]
    assert refusal_values(fr, errors.AlreadyDecided("accepted"), 7)["status"] == fr(
        "moderation.status.accepted"
    )
    assert refusal_values(fr, errors.AlreadyDecided("odd"))["status"] == "odd"
    assert refusal_values(fr, errors.UnknownDuplicate(9), 7)["id"] == 9
    problem = TextProblem("propose.error.too_short", {"minimum": 3})
    assert refusal_values(fr, errors.EditRefused(problem))["problem"] == fr(
        "propose.error.too_short", minimum=3
    )

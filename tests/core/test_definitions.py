"""Consultation definitions: errors that name the field, loading twice changes nothing."""

from __future__ import annotations

import pytest
from sqlmodel import func, select

from core.definitions import DefinitionError, parse_consultation, settings_of
from core.models import Consultation, Proposal
from tests.conftest import consultation_data


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"slug": "Bad Slug"}, "slug: String should match pattern"),
        ({"locales": ["fr", "xx"]}, "locales: no catalogue for xx"),
        ({"default_locale": "en", "locales": ["fr"]}, "default_locale: must be one of locales"),
        ({"question": {"fr": "Quoi ?"}}, "question: missing text for en"),
        ({"settings": {"sequence_size": 0}}, "settings.sequence_size: Input should be greater"),
        ({"settings": {"moderation": "later"}}, "settings.moderation: Input should be 'pre' or"),
        ({"settings": {"colour": "red"}}, "settings.colour: Extra inputs are not permitted"),
        ({"status": "paused"}, "status: Input should be"),
        ({"settings": {"zones": {"strong": 1.5}}}, "settings.zones.strong: Input should be less"),
        (
            {"settings": {"zones": {"strong": 0.5}}},
            "settings.zones.strong: Input should be greater",
        ),
        (
            {"settings": {"zones": {"strong": 0.6, "weak": 0.7}}},
            "weak must be smaller than strong",
        ),
        (
            {"proposals": [{"ref": "a", "text": {"fr": "Il faut"}}]},
            "proposals.0.text.fr: 7 characters, outside 12-140",
        ),
        ({"starts_at": "2026-01-02T00:00:00"}, "give a timezone"),
    ],
)
def test_invalid_definitions_name_the_field(overrides, expected) -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_consultation(consultation_data(**overrides))
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


def test_not_a_mapping() -> None:
    with pytest.raises(DefinitionError, match="mapping"):
        parse_consultation(["slug", "x"])


def test_defaults_are_sensible() -> None:
    spec = parse_consultation(
        {
            "slug": "minimal",
            "default_locale": "en",
            "locales": ["en"],
            "question": {"en": "What should we change?"},
        }
    )
    assert spec.status == "draft"
    settings = spec.settings
    assert (settings.proposal_min_length, settings.proposal_max_length) == (12, 140)
    assert settings.moderation == "pre" and settings.sequence_size == 12
    assert settings.qualifications is True
    assert (settings.zones.strong, settings.zones.weak, settings.zones.limbo) == (0.6, 0.15, 0.4)


async def test_loading_twice_is_idempotent_and_updates_in_place(
    load_consultation, sessions
) -> None:
    await load_consultation()
    await load_consultation()
    changed = await load_consultation(settings={"sequence_size": 6})
    async with sessions() as session:
        assert (await session.exec(select(func.count()).select_from(Consultation))).one() == 1
        assert (await session.exec(select(func.count()).select_from(Proposal))).one() == 28
        stored = await session.get(Consultation, changed.id)
        assert settings_of(stored).sequence_size == 6

"""Ids from outside (a form, a query, a button's data) read strictly and bounded to what the
database holds: anything else is None, never an exception and never a number PostgreSQL refuses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.ids import ID_MAX, parse_id


@pytest.mark.parametrize(
    ("typed", "read"),
    [("1", 1), ("0012", 12), (str(ID_MAX), ID_MAX), ("0", None), (str(ID_MAX + 1), None)],
)
def test_an_id_is_ascii_digits_from_one_to_id_max(typed: str, read: int | None) -> None:
    assert parse_id(typed) == read


@pytest.mark.parametrize(
    "typed", ["", "²", "#12", " 12", "12 ", "-1", "+1", "1_000", "١٢", "9" * 11]
)
def test_anything_else_is_no_id(typed: str) -> None:
    assert parse_id(typed) is None


@given(st.text(max_size=30))
def test_any_text_is_an_id_in_range_or_none(typed: str) -> None:
    read = parse_id(typed)
    assert read is None or (1 <= read <= ID_MAX and int(typed) == read and typed.isascii())


@given(st.integers(-(2**70), 2**70))
def test_any_number_is_read_back_only_within_range(number: int) -> None:
    assert parse_id(str(number)) == (number if 1 <= number <= ID_MAX else None)

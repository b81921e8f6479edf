"""Malformed versions of valid webhook payloads, for property-based tests of every channel.

A mutation replaces one to three values at random paths of a valid payload by what a buggy or
hostile sender might put there (null, a value of another type, a list where an object was, a
5,000-digit number, 1e308, a 20,000-character string, 1,000 levels of nesting), or deletes a key;
or the whole body becomes a bare JSON scalar. Numbers too long for Python's `int` and nesting
deeper than `json` recurses are written as raw JSON text (`RawJson`), as a sender would.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import (
    ChannelIdentity,
    Participant,
    ProcessedEvent,
    Proposal,
    Qualification,
    Vote,
)

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class RawJson:
    """A JSON value given as its text (what `json.dumps` refuses to write)."""

    text: str


HUGE_INT = RawJson("9" * 5000)
DEEP = RawJson("[" * 1000 + "]" * 1000)
DEEP_OBJECT = RawJson('{"a":' * 1000 + "0" + "}" * 1000)
LONG_TEXT = "x" * 20_000
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from([HUGE_INT, RawJson("1e308"), LONG_TEXT]),
)


def to_json(value: Any) -> str:
    """`value` as JSON text, `RawJson` parts as they are."""
    if isinstance(value, RawJson):
        return value.text
    if isinstance(value, dict):
        items = (f"{json.dumps(str(key))}:{to_json(item)}" for key, item in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(item) for item in value) + "]"
    return json.dumps(value)


def to_form(fields: Any) -> bytes:
    """A form body (a slash command's) from a possibly mutated dict of its fields: a field
    that is no longer text is sent as its JSON text, as a form can only carry text."""
    if not isinstance(fields, dict):
        return to_json(fields).encode()
    return urlencode(
        {
            key: value if isinstance(value, str) else to_json(value)
            for key, value in fields.items()
            if value is not None
        }
    ).encode()


def paths_in(value: Any, prefix: Path = ()) -> Iterator[Path]:
    """Every path to a value inside `value` (its keys and indexes, depth first)."""
    if isinstance(value, dict):
        children: list[tuple[str | int, Any]] = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    else:
        return
    for key, child in children:
        yield (*prefix, key)
        yield from paths_in(child, (*prefix, key))


def _get(value: Any, path: Path) -> Any:
    for key in path:
        value = value[key]
    return value


def _other_types(value: Any) -> list[Any]:
    """Values of another JSON type than `value`'s."""
    if isinstance(value, bool):
        return ["true", 1]
    if isinstance(value, int | float):
        return [str(value), True, [value]]
    if isinstance(value, str):
        return [7, False, {"text": value}]
    if isinstance(value, dict):
        return ["object", 0, True]
    if isinstance(value, list):
        return [{}, "list", 3]
    return [{}, 0, "null"]


DELETE = object()


@st.composite
def replacement_for(draw: st.DrawFn, value: Any) -> Any:
    """What replaces `value`: null, another type, a list for an object, an extreme value, or
    `DELETE` (the key goes)."""
    choices: list[Any] = [None, DELETE, HUGE_INT, RawJson("1e308"), LONG_TEXT, DEEP, DEEP_OBJECT]
    choices += _other_types(value)
    if isinstance(value, dict):
        choices += [[value], []]
    return draw(st.sampled_from(choices))


def _replaced(payload: Any, path: Path, new: Any) -> Any:
    parent = _get(payload, path[:-1])
    key = path[-1]
    if new is DELETE:
        del parent[key]
    else:
        parent[key] = new
    return payload


@st.composite
def mutated(draw: st.DrawFn, payloads: list[Any]) -> Any:
    """One of `payloads` (valid, JSON-like) with one to three values replaced, or a scalar."""
    if draw(st.integers(0, 11)) == 0:
        return draw(SCALARS)
    payload = copy.deepcopy(draw(st.sampled_from(payloads)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [path for path in paths_in(payload) if not isinstance(_get(payload, path), RawJson)]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        payload = _replaced(payload, path, draw(replacement_for(_get(payload, path))))
    return payload


FUZZ = settings(
    max_examples=150,
    deadline=None,
    # One server per test serves every example: each example measures its own effects.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
COUNTED = (ProcessedEvent, Participant, ChannelIdentity, Vote, Qualification, Proposal)


async def rows(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    """How many rows each table a participant's event can write holds."""
    async with sessions() as session:
        return {
            model.__name__: (await session.exec(select(func.count()).select_from(model))).one()
            for model in COUNTED
        }


def check_logs(records: list[logging.LogRecord], ignored: int, private: list[str]) -> None:
    """No error was logged; each ignored payload was logged once, at warning level, naming
    none of the `private` values (ids, names, what the participant wrote)."""
    errors = [(r.getMessage(), r.exc_info) for r in records if r.levelno >= logging.ERROR]
    assert errors == []
    warnings = [
        r.getMessage()
        for r in records
        if r.levelno == logging.WARNING and "ignored" in r.getMessage()
    ]
    assert len(warnings) == ignored, warnings
    for line in warnings:
        assert not [value for value in private if value in line], line

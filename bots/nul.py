"""A NUL character in what an organiser sends (a path, a query, a form, a JSON body) is refused
before any route reads it, the same way on the API and the console.

PostgreSQL refuses NUL in text (SQLite keeps it), so a search, a sign-in code or a light edit
holding one would fail in the database as a 500 on one backend and be stored on the other.
No one types a NUL: it is a 422 naming the field, or a 404 when it is in a consultation's slug.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError

NUL = "\x00"
REPLACEMENT = "\ufffd"  # how a NUL is shown back, in a slug the console or API names


def _strings(value: Any, name: str) -> Iterator[tuple[str, str]]:
    """(field name, text) of every string in a JSON value, keys included."""
    if isinstance(value, str):
        yield name, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield name, str(key)
            yield from _strings(item, str(key))
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, name)


async def _body_strings(request: Request) -> list[tuple[str, str]]:
    """The body's fields, as FastAPI read them (Starlette keeps the form and body it read)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        return [(key, value) for key, value in form.multi_items() if isinstance(value, str)]
    if kind == "application/json" or kind.endswith("+json"):
        try:
            body = json.loads(await request.body())
        except ValueError:  # FastAPI has refused it already, for routes that read a body
            return []
        return list(_strings(body, "body"))
    return []


async def nul_in(request: Request) -> tuple[str, str] | None:
    """Where the request holds a NUL: ("path" | "query" | "body", the field's name), or None."""
    for name, value in request.path_params.items():
        if NUL in str(value):
            return "path", name
    for name, value in request.query_params.multi_items():
        if NUL in name or NUL in value:
            return "query", name.replace(NUL, REPLACEMENT)
    if request.method in ("POST", "PUT", "PATCH"):
        for name, value in await _body_strings(request):
            if NUL in name or NUL in value:
                return "body", name.replace(NUL, REPLACEMENT)
    return None


def refuse_nul(unknown_slug: Callable[[str], Exception]) -> Callable[[Request], Awaitable[None]]:
    """A dependency for a whole app or router: `unknown_slug(slug)` (the surface's 404, the
    NUL shown as U+FFFD) for a slug holding a NUL, RequestValidationError (422) elsewhere."""

    async def refuse(request: Request) -> None:
        found = await nul_in(request)
        if found is None:
            return
        part, name = found
        if part == "path" and name == "slug":
            raise unknown_slug(str(request.path_params[name]).replace(NUL, REPLACEMENT))
        problem = {
            "type": "string_nul",
            "loc": (part, name),
            "msg": "A NUL character is not allowed",
        }
        raise RequestValidationError([problem])

    return refuse

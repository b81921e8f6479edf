"""Reading a webhook request defensively: a size limit, a depth limit, then JSON, each refused
clearly; and what a channel does with a payload it cannot act on.

Signatures are checked on the raw bytes between the two steps, so nothing is parsed before the
sender is known to be the platform. A payload that passed that check but that we cannot act on
(a wrong shape, nesting too deep to parse, a number too long to read) is answered 200 and
ignored: platforms deliver again whatever got an error, so an error would come back forever.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from fastapi import HTTPException, Request
from pydantic import ValidationError

# Deeper than any platform's payload (Slack's blocks go about 10 levels down), far shallower
# than where `json.loads` and validation recurse out of the stack.
MAX_DEPTH = 64
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = b"[]{}"
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in _BRACKETS)
_STEP = [1 if byte in b"[{" else -1 for byte in range(256)]


@dataclass(frozen=True)
class Ignored:
    """Why an authenticated payload is not acted on: a kind, never its content."""

    kind: str


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, or 413 when it is (or claims to be) larger than `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def nested_deeper_than(body: bytes, limit: int) -> bool:
    """Whether the JSON text `body` opens more than `limit` arrays or objects inside each other,
    brackets inside strings not counted; linear, and without parsing."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > limit


def parse_object(body: bytes, *, max_depth: int = MAX_DEPTH) -> dict[str, Any] | Ignored:
    """The body as a JSON object; 400 saying what is wrong when it is not JSON or not an object;
    `Ignored` for JSON we refuse to read (nested deeper than `max_depth`, or a number with more
    digits than Python converts)."""
    if nested_deeper_than(body, max_depth):
        return Ignored(f"nested deeper than {max_depth} levels")
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HTTPException(400, f"body is not valid JSON: {error}") from None
    except ValueError:  # int() refuses over 4,300 digits (sys.set_int_max_str_digits)
        return Ignored("a number too long to read")
    if not isinstance(parsed, dict):
        raise HTTPException(400, "body must be a JSON object")
    return parsed


def invalid_kind(error: ValidationError) -> str:
    """What a validation error says is wrong, by field path and error type only: its message
    and input could quote what a participant wrote."""
    first = error.errors(include_url=False, include_context=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "payload"
    return f"{where}: {first['type']}"


def note_ignored(counts: Counter[str], log: logging.Logger, channel: str, kind: str) -> None:
    """Count an ignored payload by kind and log it once, at warning level (kind only)."""
    counts[kind] += 1
    log.warning("%s: ignored a payload: %s", channel, kind)

"""Reading a webhook request defensively: a size limit, then JSON, each refused clearly.

Signatures are checked on the raw bytes between the two steps, so nothing is parsed before the
sender is known to be the platform.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException, Request


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


def parse_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or 400 saying what is wrong with it."""
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HTTPException(400, f"body is not valid JSON: {error}") from None
    if not isinstance(parsed, dict):
        raise HTTPException(400, "body must be a JSON object")
    return parsed

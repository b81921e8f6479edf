"""No sign-in code ever reaches the server's access log.

uvicorn's access log (`uvicorn.access`) writes each request's path with its query. Links printed
now carry the code after `#`, which browsers never send; links handed out before carry it as
`?code=`, and still work. This filter writes every sign-in request without its query, whatever
the query holds, before any handler formats the line (defence in depth).
"""

from __future__ import annotations

import logging

ACCESS_LOGGER = "uvicorn.access"
HIDDEN = "sign-in"  # the last segment of the paths whose query is not logged


class HideSignInQueries(logging.Filter):
    """Drops the query of sign-in requests from uvicorn's access records, whose arguments are
    (client, method, path with query, HTTP version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path, mark, _ = args[2].partition("?")
            if mark and path.rstrip("/").rsplit("/", 1)[-1] == HIDDEN:
                record.args = (*args[:2], path, *args[3:])
        return True


def hide_sign_in_codes() -> None:
    """Install the filter on uvicorn's access logger, once per process."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(existing, HideSignInQueries) for existing in logger.filters):
        logger.addFilter(HideSignInQueries())

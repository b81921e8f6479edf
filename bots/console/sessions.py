"""The console's sign-in session: a cookie signed with the server's secret, holding the
organiser's id, their session version and when they signed in; nothing else.

A session ends when its lifetime is over (read from the injected clock, not the cookie), or
when the organiser's session version (in the database) moves on: `consult organiser revoke`
and signing out both move it, which ends every session of that organiser at once, so that a
copied cookie is worth nothing once its owner signed out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

COOKIE = "consult_session"
_SALT = "consult.console.session"


@dataclass(frozen=True)
class SignedIn:
    """What a session cookie says: who, which session version, since when."""

    organiser_id: int
    session_version: int
    issued_at: datetime

    def expired(self, now: datetime, lifetime: timedelta) -> bool:
        # A cookie dated in the future (a clock set back) is no more trusted than an old one.
        return not (self.issued_at <= now < self.issued_at + lifetime)


class SessionSigner:
    """Writes and reads session cookies with a key derived from the server's secret."""

    def __init__(self, secret: bytes) -> None:
        self._serializer = URLSafeSerializer(secret, salt=_SALT)

    def dumps(self, signed_in: SignedIn) -> str:
        return self._serializer.dumps(
            {
                "o": signed_in.organiser_id,
                "v": signed_in.session_version,
                "i": int(signed_in.issued_at.timestamp()),
            }
        )

    def loads(self, cookie: str | None) -> SignedIn | None:
        """The session the cookie holds; None if there is none or its signature is wrong."""
        if not cookie:
            return None
        try:
            data: Any = self._serializer.loads(cookie)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        organiser_id, version, issued = data.get("o"), data.get("v"), data.get("i")
        if not (isinstance(organiser_id, int) and isinstance(version, int)):
            return None
        if not isinstance(issued, int) or not 0 <= issued < 2**37:  # a plausible moment
            return None
        return SignedIn(organiser_id, version, datetime.fromtimestamp(issued, UTC))

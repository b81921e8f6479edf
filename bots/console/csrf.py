"""Cross-site request forgery: every form the console sends carries a token that only a page
of the console could have given, and every POST is refused (403, nothing changed) without it.

A signed double-submit cookie (OWASP's "signed double-submit cookie"): the browser holds a
random nonce in an HttpOnly cookie, and each form holds the nonce signed with the server's
secret. Another site can make the browser send the cookie but can neither read it nor sign it.
The cookie exists before sign-in, so the sign-in form is protected as well.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

COOKIE = "consult_csrf"
FIELD = "csrf"
HEADER = "X-CSRF-Token"
_SALT = "consult.console.csrf"


@dataclass(frozen=True)
class CsrfPair:
    """The browser's nonce and the token its forms carry; `fresh` when the cookie is to be set."""

    nonce: str
    token: str
    fresh: bool


class CsrfSigner:
    def __init__(self, secret: bytes) -> None:
        self._serializer = URLSafeSerializer(secret, salt=_SALT)

    def pair(self, cookie: str | None) -> CsrfPair:
        """The token for the browser's nonce, or for a new nonce when it has none."""
        if cookie and 16 <= len(cookie) <= 64:
            return CsrfPair(cookie, self._serializer.dumps(cookie), fresh=False)
        nonce = secrets.token_urlsafe(24)
        return CsrfPair(nonce, self._serializer.dumps(nonce), fresh=True)

    def valid(self, cookie: str | None, token: str | None) -> bool:
        """Whether `token` is the signed form of the browser's nonce."""
        if not cookie or not token or len(token) > 256:
            return False
        try:
            signed = self._serializer.loads(token)
        except BadSignature:
            return False
        # Bytes: compare_digest refuses str with characters beyond ASCII (a cookie may hold any).
        return isinstance(signed, str) and hmac.compare_digest(signed.encode(), cookie.encode())

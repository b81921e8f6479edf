"""wa.me deep links that open a chat with the consultation's number, the first message typed.

WhatsApp has no /start payload; a wa.me link can only pre-fill the participant's first message.
The link pre-fills "start <payload>", which the inbound parser reads as `Start(payload)`
(the payload rule is Telegram's: 1-64 characters of A-Z a-z 0-9 _ -).
"""

from __future__ import annotations

import re
from urllib.parse import quote

from adapters.links import DEEP_LINK_PAYLOAD


def whatsapp_link(number: str, payload: str = "") -> str:
    """`https://wa.me/<number>?text=start%20<payload>` (no text without a payload).

    `number` is the business number in international format; "+", spaces, dots and dashes are
    dropped. Raises ValueError for a number that is not 6-15 digits or a malformed payload.
    """
    digits = re.sub(r"[\s+().-]", "", number)
    if not re.fullmatch(r"[0-9]{6,15}", digits):
        raise ValueError(f"not a phone number in international format: {number!r}")
    if not payload:
        return f"https://wa.me/{digits}"
    if not DEEP_LINK_PAYLOAD.fullmatch(payload):
        raise ValueError(f"a deep-link payload is 1-64 characters of A-Z a-z 0-9 _ -: {payload!r}")
    return f"https://wa.me/{digits}?text={quote('start ' + payload)}"

"""Who acts on a consultation's moderation, and from where."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Source(StrEnum):
    """The entrypoint an organiser acted from: each is a thin layer over the same core call."""

    CLI = "cli"
    API = "api"
    CONSOLE = "console"
    CHAT = "chat"


@dataclass(frozen=True)
class Actor:
    """An organiser (an e-mail, "cli:<login>", "token": accounts come later) and where from.

    Never a participant: what an actor names is written to the audit log as it is.
    """

    organiser: str
    source: Source

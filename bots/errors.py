"""Errors an organiser can act on: a message id and its values, said in the organiser's
language by the CLI (exit code 2) or the API (a 4xx)."""

from __future__ import annotations

from typing import Any


class OrganiserError(Exception):
    """What went wrong, as a catalogue message id (`msgid`) and its placeholders (`values`)."""

    def __init__(self, msgid: str, **values: Any) -> None:
        super().__init__(msgid)
        self.msgid = msgid
        self.values = values


class ChannelNotConfigured(OrganiserError):
    """A channel's settings are incomplete or wrong."""

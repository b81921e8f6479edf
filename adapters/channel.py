"""The contract between a webhook channel and the server that mounts it.

A channel is built from its own configuration (no global settings), offers a FastAPI router
with its webhook routes, and is opened once the core's flow exists (when the server starts) and
closed when it stops. It holds its SDK client as an attribute; it keeps no conversation state.
"""

from __future__ import annotations

from typing import Protocol

from fastapi import APIRouter

from core.broadcasts.delivery import BroadcastOutgoing
from core.flow import Flow, Outcome
from core.notices import Handover, Outgoing


class WebhookChannel(Protocol):
    """One messaging platform behind the webhook server."""

    name: str
    router: APIRouter

    async def open(self, flow: Flow) -> None:
        """Start the SDK client; events are handed to `flow` from now on."""

    async def close(self) -> None:
        """Release the SDK client's connections (pending sends are finished first)."""

    async def resend(self, outcome: Outcome) -> None:
        """Send the replies of a participant resumed without an event of theirs
        (`Flow.resume`: a worker died before sending what it owed them) to `outcome.address`,
        then settle them with `Flow.sent`."""

    async def notify(self, notice: Outgoing) -> Handover:
        """Send a moderation notice to its author (`core.notices`), paced like the replies, and
        say what became of it; never resend what may have reached the platform."""

    async def broadcast(self, message: BroadcastOutgoing) -> Handover:
        """Send one broadcast message (`core.broadcasts.delivery`), with its button when it
        has one, and say what became of it: a person who blocked the bot or left is
        `UNREACHABLE`; what may have reached the platform is never sent again. The caller
        paces the sends (the rate of the token, number or workspace)."""

"""One participant's conversation in a terminal, interactive or replayed from a script."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

from adapters.terminal.render import render_reply
from core.flow import Flow
from core.messages import Command, Event, Start, Text, parse_command

CHANNEL = "terminal"


class TerminalSession:
    """Feeds typed lines to the core as events and writes its replies.

    Each line becomes a `Command` ("/help") or a `Text`; the core matches a typed number or label
    against the choices it offered. End of input ends the session.
    """

    def __init__(
        self,
        flow: Flow,
        write: Callable[[str], None],
        *,
        user_id: str,
        locale_hint: str | None = None,
        echo: bool = False,
    ) -> None:
        self.flow = flow
        self.write = write
        self.user_id = user_id
        self.locale_hint = locale_hint
        self.echo = echo
        self._session = uuid.uuid4().hex
        self._count = 0

    def _next_key(self) -> str:
        self._count += 1
        return f"{self._session}:{self._count}"

    def event_for(self, line: str) -> Event | None:
        """The event a typed line stands for; None for a blank line."""
        if not line.strip():
            return None
        key, hint = self._next_key(), self.locale_hint
        command = parse_command(line)
        if command is None:
            return Text(channel=CHANNEL, user_id=self.user_id, key=key, locale_hint=hint, text=line)
        name, argument = command
        return Command(
            channel=CHANNEL,
            user_id=self.user_id,
            key=key,
            locale_hint=hint,
            name=name,
            argument=argument,
        )

    async def send(self, event: Event) -> None:
        for reply in await self.flow.receive(event):
            self.write(render_reply(reply) + "\n\n")

    async def run(self, lines: AsyncIterator[str], payload: str = "") -> None:
        """Start (with a deep-link payload, if any), then answer each line until input ends."""
        start = Start(
            channel=CHANNEL,
            user_id=self.user_id,
            key=self._next_key(),
            locale_hint=self.locale_hint,
            payload=payload,
        )
        await self.send(start)
        async for line in lines:
            line = line.rstrip("\r\n")
            if self.echo:
                self.write(f"> {line}\n\n")
            event = self.event_for(line)
            if event is not None:
                await self.send(event)

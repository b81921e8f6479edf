"""The conversation with one participant: a state machine over channel-neutral events.

Its position is `Participant.step` plus a small JSON `Participant.state`, read and written in
the event's transaction, so any worker can take the next message. The steps, each a `Step`
registered by the module that owns it:

    onboarding:  new -> language -> consent -> profile (one question at a time, skippable)
    cards:       card <-> qualify -> menu (vote again, propose, stop) ; idle
    proposing:   propose -> confirm
    commands:    choose_language, forget, stopped (reached through /language, /forget, /stop)

A step that expects a choice stores the options it offered (`state["pick"]`), so a stale button
or an answer that is not one of them gets the question again instead of a guess.
"""

from __future__ import annotations

# Importing the step modules registers their steps (cards is used only through STEPS here).
from core.conversation import cards, commands, onboarding, proposing  # noqa: F401
from core.conversation.turn import STEPS, Turn, recall_line
from core.messages import (
    Choice,
    Command,
    FormSubmit,
    Reply,
    Resume,
    Start,
    Text,
    match_option,
)

__all__ = ["Conversation"]


class Conversation(Turn):
    """One event's turn in a participant's conversation; `run` returns the replies."""

    async def run(self) -> list[Reply]:
        self.choose_locale()
        event = self.event
        if isinstance(event, Start):
            await onboarding.start(self, event.payload)
        elif isinstance(event, Resume):
            await self.reprompt()
        elif isinstance(event, Command):
            await commands.run_command(self, event.name, event.argument)
        elif isinstance(event, Choice | Text) and STEPS.get(self.step, STEPS["new"]).anytime:
            await self.answer(event)
        elif self.consultation is None or self.participation is None or self.step == "new":
            await onboarding.start(self, "")
        elif await onboarding.closed_now(self):
            pass
        elif isinstance(event, FormSubmit):
            if event.form == "proposal":
                await proposing.propose_text(self, event.fields.get("text", ""))
            else:
                await self.reprompt()
        elif isinstance(event, Choice | Text):
            await self.answer(event)
        await self.save()
        return self.replies

    async def answer(self, event: Choice | Text) -> None:
        """A tap or a typed line, taken by the step waiting for it (or the question again)."""
        step = STEPS.get(self.step, STEPS["new"])
        if isinstance(event, Text) and step.on_text is not None:
            await step.on_text(self, event.text)
            return
        if step.on_choice is None:
            await self.reprompt()
            return
        offered = self.offered()
        chosen: str | None
        if isinstance(event, Choice):
            chosen = event.option if event.option in {o.id for o in offered} else None
            if chosen is None:
                self.say(self.t("choice.stale"))
        else:
            option = match_option(offered, event.text)
            chosen = option.id if option else None
            if chosen is None:
                self.say(self.t("choice.invalid", count=len(offered)))
        if chosen is None:
            await self.reprompt()
        else:
            self.chosen = next(o for o in offered if o.id == chosen)
            self.recall = recall_line(self.chosen.label)  # the step may say more (cards do)
            await step.on_choice(self, chosen)

"""Commands a participant can send anywhere in the conversation (/help, /language, ...)."""

from __future__ import annotations

from core.conversation import cards, onboarding, proposing
from core.conversation.turn import STEPS, Step, Turn
from core.identity import forget_participant
from core.messages import Option

# The commands `run_command` understands, which every channel offers its participants.
COMMANDS = frozenset(
    {"start", "help", "language", "forget", "stop", "results", "propose", "cancel"}
)

# Steps that a detour (/language, /forget) comes back to afterwards.
_DETOURS = ("choose_language", "forget")


async def run_command(turn: Turn, name: str, argument: str) -> None:
    if name == "start":
        await onboarding.start(turn, argument)
    elif name == "help":
        turn.say(turn.t("help.text"))
        await turn.reprompt()
    elif name in ("language", "forget"):
        if turn.step not in _DETOURS:
            turn.state["resume"] = turn.step
        await turn.goto("choose_language" if name == "language" else "forget")
    elif turn.consultation is None or turn.participation is None or turn.step == "new":
        await onboarding.start(turn, "")
    elif name == "stop":
        turn.participation.subscribed = False
        turn.state.pop("pick", None)
        turn.step = "stopped"
        turn.say(turn.t("stop.done"))
    elif name == "results":
        await cards.show_results(turn)
        await turn.reprompt()
    elif await onboarding.closed_now(turn):
        pass
    elif name == "propose":
        await proposing.begin_proposal(turn)
    elif name == "cancel":
        if turn.step in ("propose", "confirm"):
            await proposing.cancel(turn)
        else:
            await turn.reprompt()
    else:
        turn.say(turn.t("command.unknown", command=f"/{name}"))
        turn.say(turn.t("help.text"))
        await turn.reprompt()


async def _resume(turn: Turn) -> None:
    await turn.goto(turn.state.pop("resume", "new"))


async def on_choose_language(turn: Turn, chosen: str) -> None:
    turn.participant.locale = chosen
    turn.state["language_asked"] = True
    turn.choose_locale()
    turn.say(turn.t("language.changed"))
    await _resume(turn)


async def prompt_forget(turn: Turn) -> None:
    options = [Option("yes", turn.t("forget.yes")), Option("no", turn.t("forget.no"))]
    turn.ask(turn.t("forget.confirm"), options)


async def on_forget(turn: Turn, chosen: str) -> None:
    if chosen == "no":
        turn.say(turn.t("forget.kept"))
        await _resume(turn)
        return
    turn.say(turn.t("forget.done"))
    await forget_participant(turn.session, turn.participant, turn.now)
    turn.forgotten = True


async def prompt_stopped(turn: Turn) -> None:
    turn.say(turn.t("stop.restart_hint"))


STEPS["choose_language"] = Step(onboarding.prompt_language, on_choose_language, anytime=True)
STEPS["forget"] = Step(prompt_forget, on_forget, anytime=True)
STEPS["stopped"] = Step(prompt_stopped)

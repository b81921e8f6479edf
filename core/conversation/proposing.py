"""Writing a proposal: the prompt with its prefix, checks, confirmation, storage."""

from __future__ import annotations

from core.conversation.turn import STEPS, Step, Turn, availability
from core.messages import Option, Reply
from core.proposals import check_proposal, compose_proposal, proposals_today, submit_proposal


def _prefix(turn: Turn) -> str:
    return turn.settings.prefix.get(turn.locale) or turn.t("proposal.prefix")


async def _may_propose(turn: Turn) -> bool:
    """Whether the participant may propose now; if not, say why."""
    assert turn.consultation is not None and turn.consultation.id is not None
    if availability(turn.consultation, turn.now) != "open":
        turn.say(turn.t("propose.vote_only"))
        return False
    limit = turn.settings.max_proposals_per_day
    made = await proposals_today(turn.session, turn.participant_id, turn.consultation.id, turn.now)
    if made >= limit:
        turn.say(turn.t.plural("propose.limit", limit))
        return False
    return True


async def begin_proposal(turn: Turn) -> None:
    """/propose or "Make a proposal": ask for the text, unless proposing is not possible now."""
    assert turn.participation is not None
    if turn.participation.consented_at is not None and await _may_propose(turn):
        await turn.goto("propose")
    else:
        await turn.reprompt()  # consent first, or back to where they were


async def prompt_propose(turn: Turn) -> None:
    turn.state.pop("pick", None)
    settings = turn.settings
    prompt = turn.t(
        "propose.prompt",
        prefix=_prefix(turn),
        minimum=settings.proposal_min_length,
        maximum=settings.proposal_max_length,
    )
    turn.replies.append(Reply(prompt, form="proposal"))


async def propose_text(turn: Turn, typed: str) -> None:
    """The proposal's text, typed in a chat or submitted in a form: checked, then confirmed."""
    if turn.step not in ("propose", "confirm"):
        await begin_proposal(turn)
        if turn.step != "propose":
            return
    text = compose_proposal(typed, _prefix(turn))
    problem = check_proposal(text, _prefix(turn), turn.settings)
    if problem is not None:
        turn.refuse(turn.t(problem.msgid, **problem.values))
        return
    turn.state["draft"] = text
    await turn.goto("confirm")


async def prompt_confirm(turn: Turn) -> None:
    options = [
        Option("confirm", turn.t("propose.confirm.yes")),
        Option("edit", turn.t("propose.confirm.edit")),
        Option("cancel", turn.t("propose.confirm.cancel")),
    ]
    turn.ask(turn.t("propose.confirm", text=turn.state["draft"]), options)


async def on_confirm(turn: Turn, chosen: str) -> None:
    assert turn.consultation is not None and turn.consultation.id is not None
    if chosen == "edit":
        await turn.goto("propose")
    elif chosen == "cancel":
        await cancel(turn)
    elif await _may_propose(turn):
        settings = turn.settings
        await submit_proposal(
            turn.session,
            turn.participant_id,
            turn.consultation.id,
            turn.state.pop("draft"),
            turn.locale,
            settings,
            turn.now,
        )
        pending = settings.moderation == "pre"
        turn.say(turn.t("propose.thanks.pending" if pending else "propose.thanks.published"))
        await turn.goto("menu")
    else:
        await turn.goto("menu")


async def cancel(turn: Turn) -> None:
    turn.state.pop("draft", None)
    turn.say(turn.t("propose.cancelled"))
    await turn.goto("menu")


STEPS["propose"] = Step(prompt_propose, on_text=propose_text)
STEPS["confirm"] = Step(prompt_confirm, on_confirm)

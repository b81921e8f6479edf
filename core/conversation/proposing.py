"""Writing a proposal: the prompt with its prefix, checks, confirmation, storage.

Before the confirmation, the participant sees up to three accepted proposals that say nearly
the same (`core.moderation.similarity`) and may vote for one of them instead.
"""

from __future__ import annotations

from core.conversation.turn import STEPS, Step, Turn, availability
from core.messages import Option, Reply
from core.models import Proposal, ProposalStatus, VoteKey
from core.moderation.similarity import similar_proposals
from core.proposals import check_proposal, compose_proposal, proposals_today, submit_proposal
from core.voting import record_vote

SIMILAR = "similar"  # an option "similar.<proposal id>": vote for it instead
SIMILAR_SHOWN = 3


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
    assert turn.consultation is not None and turn.consultation.id is not None
    similar = await similar_proposals(
        turn.session,
        turn.consultation.id,
        text,
        turn.locale,
        limit=SIMILAR_SHOWN,
        similarity=turn.similarity,
    )
    turn.state[SIMILAR] = [[found.proposal_id, found.text] for found in similar]
    await turn.goto("confirm")


async def prompt_confirm(turn: Turn) -> None:
    similar = turn.state.get(SIMILAR) or []
    edit = Option("edit", turn.t("propose.confirm.edit"))
    cancel_ = Option("cancel", turn.t("propose.confirm.cancel"))
    if not similar:
        options = [Option("confirm", turn.t("propose.confirm.yes")), edit, cancel_]
        turn.ask(turn.t("propose.confirm", text=turn.state["draft"]), options)
        return
    listing = "\n".join(
        turn.t("propose.similar.item", number=number, text=text)
        for number, (_, text) in enumerate(similar, start=1)
    )
    options = [
        Option(f"{SIMILAR}.{proposal_id}", turn.t("propose.similar.vote", number=number))
        for number, (proposal_id, _) in enumerate(similar, start=1)
    ]
    options += [Option("confirm", turn.t("propose.similar.send")), edit, cancel_]
    turn.ask(turn.t("propose.similar", text=turn.state["draft"], similar=listing), options)


async def _vote_instead(turn: Turn, proposal_id: int) -> None:
    """Agree with an accepted proposal that says the same instead of sending one's own.

    Recorded as an untrusted vote: the proposal was not drawn by a sequence but shown because
    it resembles what this participant wrote, so the vote counts (and the proposal leaves
    their sequences) without moving the scores sequencing ranks by, as Make.org keeps votes
    cast outside its sequences apart.
    """
    assert turn.consultation is not None
    similar = turn.state.get(SIMILAR) or []
    proposal = await turn.session.get(Proposal, proposal_id)
    if (
        proposal is None
        or proposal.consultation_id != turn.consultation.id
        or proposal.status != ProposalStatus.ACCEPTED
    ):
        turn.state[SIMILAR] = [entry for entry in similar if entry[0] != proposal_id]
        turn.say(turn.t("propose.similar.gone"))
        await turn.reprompt()
        return
    await record_vote(
        turn.session, turn.participant_id, proposal_id, VoteKey.AGREE, trusted=False, now=turn.now
    )
    turn.state.pop("draft", None)
    turn.state.pop(SIMILAR, None)
    turn.say(turn.t("propose.similar.voted", text=proposal.text))
    await turn.goto("menu")


async def on_confirm(turn: Turn, chosen: str) -> None:
    assert turn.consultation is not None and turn.consultation.id is not None
    kind, _, proposal_id = chosen.partition(".")
    if kind == SIMILAR and proposal_id.isdigit():
        await _vote_instead(turn, int(proposal_id))
    elif chosen == "edit":
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
        turn.state.pop(SIMILAR, None)
        pending = settings.moderation == "pre"
        turn.say(turn.t("propose.thanks.pending" if pending else "propose.thanks.published"))
        await turn.goto("menu")
    else:
        await turn.goto("menu")


async def cancel(turn: Turn) -> None:
    turn.state.pop("draft", None)
    turn.state.pop(SIMILAR, None)
    turn.say(turn.t("propose.cancelled"))
    await turn.goto("menu")


STEPS["propose"] = Step(prompt_propose, on_text=propose_text)
STEPS["confirm"] = Step(prompt_confirm, on_confirm)

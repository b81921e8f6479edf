"""Vote cards, one at a time, with qualifications; the summary after a sequence; the menu."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import bindparam, exists, or_
from sqlalchemy import select as rows_of
from sqlmodel import SQLModel, col, select

from core.conversation import proposing
from core.conversation.turn import SKIP, STEPS, Step, Turn, availability, recall_line
from core.messages import Option
from core.models import (
    QUALIFICATIONS,
    Proposal,
    ProposalStatus,
    QualificationKey,
    VoteKey,
)
from core.report import idea_refs
from core.results import Split, splits, top_agreed
from core.results.placement import place, published_results
from core.sequencing import next_proposals_for
from core.voting import InvalidQualification, record_qualification, record_vote, tallies_of

RESULTS_SHOWN = 5
RESULTS_LISTED = 3  # proposals per section of /results once a snapshot is stored
RESULTS_TEXT = 280  # characters of a proposal's text in /results: three sections of three fit
# in one message on every channel (Telegram's 4096 characters) whatever the proposals' length


async def start_sequence(turn: Turn) -> None:
    turn.state["seq"] = {"shown": 0, "seen": [], "voted": [], "planned": []}
    await next_card(turn)


async def next_card(turn: Turn) -> None:
    """The next card of the sequence, or its end (sequence size reached, nothing left).

    The sequencer plans the rest of the sequence at once; a planned card that was voted on
    meanwhile (on another channel) or withdrawn is passed over.
    """
    assert turn.consultation is not None
    seq = turn.state["seq"]
    size = turn.settings.sequence_size
    while seq["shown"] < size:
        just_chosen = None  # eligible and with its text: chosen by this transaction
        if not seq["planned"]:
            found = await next_proposals_for(
                turn.session,
                turn.participant_id,
                turn.consultation,
                turn.locale,
                size - seq["shown"],
                shown=seq["seen"],
                rng=turn.rng,
            )
            if not found:
                break
            seq["planned"] = [p.id for p in found]
            just_chosen = found[0]
        proposal_id = seq["planned"].pop(0)
        if just_chosen is not None and just_chosen.text is not None:
            turn.card_texts[proposal_id] = just_chosen.text  # for the card's prompt, next
            eligible = True
        else:
            eligible = await _still_eligible(turn, proposal_id)
        if eligible:
            turn.state["card"] = proposal_id
            await turn.goto("card")
            return
        seq["seen"].append(proposal_id)
    if seq["voted"]:
        await end_sequence(turn)
    else:
        turn.say(turn.t("sequence.nothing_left"))
        await turn.goto("menu")


# A card needs its proposal's text, and only while the proposal is accepted. Read as a plain
# row by statements built once: every vote reads the card it answers and the next one.
_PROPOSAL, _VOTE = (SQLModel.metadata.tables[name].c for name in ("proposal", "vote"))
_ACCEPTED = rows_of(_PROPOSAL.text).where(
    _PROPOSAL.id == bindparam("b_proposal"), _PROPOSAL.status == ProposalStatus.ACCEPTED
)
_ELIGIBLE = _ACCEPTED.where(
    ~exists().where(
        _VOTE.participant_id == bindparam("b_participant"),
        _VOTE.proposal_id == bindparam("b_proposal"),
    )
)


async def _accepted_text(turn: Turn, proposal_id: int) -> str | None:
    """The proposal's text if it is accepted, else None."""
    if proposal_id in turn.card_texts:
        return turn.card_texts[proposal_id]
    text: str | None = await turn.scalar(_ACCEPTED, {"b_proposal": proposal_id})
    return text


async def _still_eligible(turn: Turn, proposal_id: int) -> bool:
    """Whether the proposal is still accepted and this participant has not voted on it."""
    parameters = {"b_proposal": proposal_id, "b_participant": turn.participant_id}
    text = await turn.scalar(_ELIGIBLE, parameters)
    if text is None:
        return False
    turn.card_texts[proposal_id] = text  # for the card's prompt, next
    return True


def _for_card(key: str, proposal_id: int) -> str:
    """A card's option id names its proposal: a tap on an older card's button is refused as
    stale instead of being counted on the card shown now."""
    return f"{key}.{proposal_id}"


def _key(chosen: str) -> str:
    return chosen.partition(".")[0]


async def prompt_card(turn: Turn) -> None:
    card = turn.state.get("card")
    text = None if card is None else await _accepted_text(turn, card)
    if card is None or text is None:
        await next_card(turn)
        return
    index = turn.state["seq"]["shown"] + 1
    header = turn.t("card.header", index=index, total=turn.settings.sequence_size)
    keys = [key.value for key in VoteKey]
    options = [Option(_for_card(key, card), turn.t(f"vote.{key}")) for key in keys]
    options.append(Option(_for_card(SKIP, card), turn.t("vote.skip")))
    turn.ask(f"{header}\n\n{text}", options, card=card)


async def on_card(turn: Turn, chosen: str) -> None:
    chosen = _key(chosen)
    seq = turn.state["seq"]
    proposal_id = turn.state["card"]
    seq["seen"].append(proposal_id)
    text = await _accepted_text(turn, proposal_id)
    if text is None:
        turn.say(turn.t("card.withdrawn"))
        await next_card(turn)
        return
    seq["shown"] += 1
    assert turn.chosen is not None
    turn.recall = recall_line(turn.chosen.label, text)
    if chosen == SKIP:
        await next_card(turn)
        return
    await record_vote(
        turn.session, turn.participant_id, proposal_id, VoteKey(chosen), trusted=True, now=turn.now
    )
    seq["voted"].append(proposal_id)
    if turn.settings.qualifications:
        turn.state["vote"] = chosen
        turn.state["recall"] = turn.recall  # what the qualification answers, in its recall
        await turn.goto("qualify")
    else:
        await next_card(turn)


async def prompt_qualify(turn: Turn) -> None:
    card = turn.state["card"]
    keys = [key.value for key in QUALIFICATIONS[VoteKey(turn.state["vote"])]]
    options = [Option(_for_card(key, card), turn.t(f"qualification.{key}")) for key in keys]
    options.append(Option(_for_card(SKIP, card), turn.t("qualification.skip")))
    turn.ask(turn.t("qualification.prompt"), options)


async def on_qualify(turn: Turn, chosen: str) -> None:
    chosen = _key(chosen)
    voted = turn.state.pop("recall", None)
    if voted and chosen == SKIP:  # the vote alone: "✓ Agree: We should…"
        turn.recall = voted
    elif voted and turn.chosen is not None:  # "✓ Agree · Realistic: We should…"
        answered, _, subject = voted.partition(": ")
        turn.recall = f"{answered} · {turn.chosen.label}" + (f": {subject}" if subject else "")
    if chosen != SKIP:
        try:
            await record_qualification(
                turn.session,
                turn.participant_id,
                turn.state["card"],
                QualificationKey(chosen),
                now=turn.now,
            )
        except InvalidQualification:
            turn.say(turn.t("qualification.invalid"))
    await next_card(turn)


async def end_sequence(turn: Turn) -> None:
    """How others voted on this sequence's well-voted proposals, then the menu."""
    voted = turn.state["seq"]["voted"]
    if voted:
        found = await turn.session.exec(
            select(Proposal).where(
                col(Proposal.id).in_(voted),
                col(Proposal.vote_count) >= turn.settings.summary_min_votes,
            )
        )
        order = {proposal_id: index for index, proposal_id in enumerate(voted)}
        shown = sorted(found, key=lambda p: order[p.id])
        lines = [split_line(turn, split) for split in await splits(turn.session, shown)]
        if lines:
            turn.say("\n\n".join([turn.t("summary.title"), *lines]))
        else:
            turn.say(turn.t("summary.too_early"))
    await turn.goto("menu")


def split_line(turn: Turn, split: Split, *, shorten: int | None = None) -> str:
    """A proposal's line with its split; `shorten`: its text on one line, cut to that many
    characters (in /results, whose lists must fit one message)."""
    text = split.proposal.text
    if shorten is not None:
        text = " ".join(text.split())
        text = text if len(text) <= shorten else text[: shorten - 1].rstrip() + "…"
    return turn.t(
        "summary.line",
        text=text,
        agree=turn.t.percent(split.agree),
        disagree=turn.t.percent(split.disagree),
        neutral=turn.t.percent(split.neutral),
        votes=turn.t.plural("summary.votes", split.votes),
    )


async def show_results(turn: Turn) -> None:
    """Once the organiser published results, from the latest snapshot: the proposals most
    agreed on and the most divisive, then what the participant's opinion group agrees with
    more than the others do (or disagrees with, when it agrees with nothing in particular), or
    how many more proposals to vote on to be placed in a group. Before the first snapshot,
    the most agreed-upon proposals from the counters. A few proposals per section, texts
    shortened: the reply stays within one message."""
    consultation = turn.consultation
    assert consultation is not None and consultation.id is not None
    settings = turn.settings
    if not settings.results_published:
        turn.say(turn.t("results.unpublished"))
        return
    results = await published_results(turn.session, consultation)
    sections = []
    votes_needed = 0
    if results is not None:
        placement = await place(turn.session, turn.participant_id, consultation, results)
        votes_needed = placement.votes_needed
        group = placement.group
        lists = [
            (turn.t("results.consensus"), results.consensus),
            (turn.t("results.controversies"), results.controversies),
        ]
        if group is not None:
            people = turn.t.plural("results.group_people", group.size)
            if group.agrees:
                lists.append((turn.t("results.group_agrees", people=people), group.agrees))
            else:
                lists.append((turn.t("results.group_disagrees", people=people), group.disagrees))
        shown = await _idea_splits(turn, [ref for _, refs in lists for ref in refs])
        for title, refs in lists:
            lines = [
                split_line(turn, shown[ref], shorten=RESULTS_TEXT) for ref in refs if ref in shown
            ]
            if lines:
                sections.append("\n\n".join([title, *lines[:RESULTS_LISTED]]))
    if not sections:  # no snapshot yet, or nothing listed in it yet
        top = await top_agreed(
            turn.session, consultation.id, turn.locale, settings.summary_min_votes, RESULTS_SHOWN
        )
        if top:
            sections.append(
                "\n\n".join(
                    [
                        turn.t("results.title"),
                        *(split_line(turn, s, shorten=RESULTS_TEXT) for s in top),
                    ]
                )
            )
    if votes_needed:
        sections.append(turn.t.plural("results.votes_to_be_placed", votes_needed))
    turn.say("\n\n".join(sections) if sections else turn.t("results.none_yet"))


async def _idea_splits(turn: Turn, refs: list[str]) -> dict[str, Split]:
    """The vote split of each idea named by a snapshot's ref that is still accepted: its
    translations' counters added up, its text in the participant's language where it has
    one (a participant's proposal has only its author's)."""
    consultation = turn.consultation
    assert consultation is not None
    ids = [int(ref[1:]) for ref in refs if ref.startswith("#") and ref[1:].isdigit()]
    named = [ref for ref in refs if not ref.startswith("#")]
    named += [f"{ref}.{locale}" for ref in named for locale in consultation.locales]
    found = list(
        await turn.session.exec(
            select(Proposal).where(
                Proposal.consultation_id == consultation.id,
                Proposal.status == ProposalStatus.ACCEPTED,
                or_(col(Proposal.id).in_(ids), col(Proposal.ref).in_(named)),
            )
        )
    )
    idea_of = idea_refs(found, consultation.locales)
    ideas: dict[str, list[Proposal]] = defaultdict(list)
    for proposal in sorted(found, key=lambda p: (p.locale != turn.locale, p.id or 0)):
        ideas[idea_of[proposal.id or 0]].append(proposal)
    counts = await tallies_of(turn.session, list(idea_of))
    shown = {}
    for ref, proposals in ideas.items():
        tally = {key: sum(counts[p.id or 0][key] for p in proposals) for key in VoteKey}
        votes = sum(tally.values())
        if votes:
            shares = {key: tally[key] / votes for key in VoteKey}
            shown[ref] = Split(
                proposal=proposals[0],  # in the participant's language when it has one
                votes=votes,
                agree=shares[VoteKey.AGREE],
                disagree=shares[VoteKey.DISAGREE],
                neutral=shares[VoteKey.NEUTRAL],
            )
    return shown


async def menu(turn: Turn) -> None:
    assert turn.consultation is not None
    turn.step = "menu"
    options = [Option("vote", turn.t("menu.vote"))]
    if availability(turn.consultation, turn.now) == "open":
        options.append(Option("propose", turn.t("menu.propose")))
    options.append(Option("stop", turn.t("menu.stop")))
    turn.ask(turn.t("menu.prompt"), options)


async def on_menu(turn: Turn, chosen: str) -> None:
    if chosen == "vote":
        await start_sequence(turn)
    elif chosen == "propose":
        await proposing.begin_proposal(turn)
    else:
        turn.step = "idle"
        turn.state.pop("pick", None)
        turn.say(turn.t("menu.goodbye"))


STEPS["card"] = Step(prompt_card, on_card)
STEPS["qualify"] = Step(prompt_qualify, on_qualify)
STEPS["menu"] = Step(menu, on_menu)
STEPS["idle"] = Step(menu)  # after "stop for now": any message brings the menu back

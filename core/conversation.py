"""The conversation with one participant: a state machine over channel-neutral events.

Its position is `Participant.step` plus a small JSON `Participant.state`, read and written in
the event's transaction, so any worker can take the next message. Steps:

    language -> consent -> profile (one question at a time, skippable) -> card <-> qualify
    -> menu (vote again, propose, stop) ; propose -> confirm ; and, from anywhere through
    commands, choose_language, forget ; choose_consultation when no consultation is chosen yet.

Every step that expects a choice stores the options it offered (`state["pick"]`), so a stale
button or an answer that is not one of them gets the question again instead of a guess.
"""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, ClassVar

from babel import Locale
from sqlalchemy.orm.attributes import flag_modified
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.definitions import profile_questions_of, settings_of
from core.i18n import FALLBACK, Translator, available_locales, negotiate
from core.identity import forget_participant
from core.messages import (
    Choice,
    Command,
    Event,
    FormSubmit,
    Option,
    Pick,
    Reply,
    Start,
    Text,
    match_option,
)
from core.models import (
    QUALIFICATIONS,
    Consultation,
    Participant,
    Participation,
    Proposal,
    ProposalStatus,
    QualificationKey,
    Status,
    VoteKey,
)
from core.proposals import check_proposal, compose_proposal, proposals_today, submit_proposal
from core.results import splits, top_agreed
from core.sequencing import next_proposals_for
from core.voting import InvalidQualification, record_qualification, record_vote

PAYLOAD = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SKIP = "skip"
RESULTS_SHOWN = 5


def parse_payload(payload: str) -> tuple[str, str | None] | None:
    """Split a deep-link payload "slug" or "slug__source"; None if it is not well formed."""
    if not PAYLOAD.match(payload):
        return None
    slug, _, source = payload.partition("__")
    return (slug.lower(), source or None) if slug else None


def _native_name(locale: str) -> str:
    """A language's own name for itself, from CLDR ("Français", "English")."""
    return (Locale.parse(locale).get_display_name(locale) or locale).capitalize()


def availability(consultation: Consultation, now: datetime) -> str:
    """ "open", "vote-only", "closed", "not-started" or "draft", with the schedule applied."""
    if consultation.status in (Status.DRAFT, Status.CLOSED):
        return str(consultation.status)
    if consultation.ends_at is not None and now >= consultation.ends_at:
        return "closed"
    if consultation.starts_at is not None and now < consultation.starts_at:
        return "not-started"
    return str(consultation.status)


class Conversation:
    """One event's turn in a participant's conversation; `run` returns the replies."""

    def __init__(
        self,
        session: AsyncSession,
        participant: Participant,
        event: Event,
        *,
        now: datetime,
        rng: random.Random,
    ) -> None:
        self.session = session
        self.participant = participant
        self.event = event
        self.now = now
        self.rng = rng
        self.state: dict[str, Any] = dict(participant.state)
        self.consultation: Consultation | None = None
        self.participation: Participation | None = None
        self.replies: list[Reply] = []
        self.t = Translator(FALLBACK)
        self.forgotten = False

    # -- plumbing ------------------------------------------------------------------------

    @property
    def step(self) -> str:
        return self.participant.step

    @step.setter
    def step(self, value: str) -> None:
        self.participant.step = value

    def say(self, text: str) -> None:
        self.replies.append(Reply(text))

    def ask(self, text: str, options: list[Option], card: int | None = None) -> None:
        self.state["pick"] = [[o.id, o.label] for o in options]
        self.replies.append(Reply(text, Pick(tuple(options)), card))

    def _offered(self) -> tuple[Option, ...]:
        return tuple(Option(id, label) for id, label in self.state.get("pick", []))

    def _choose_locale(self) -> None:
        offered = self.consultation.locales if self.consultation else list(available_locales())
        hint = negotiate(self.event.locale_hint, offered)
        if self.participant.locale in offered:
            locale = self.participant.locale
        elif hint:
            locale = hint
        elif self.consultation:
            locale = self.consultation.default_locale
        else:
            locale = negotiate(self.event.locale_hint, available_locales()) or FALLBACK
        self.t = Translator(locale)

    @property
    def locale(self) -> str:
        return self.t.locale

    async def _load(self) -> None:
        consultation_id = self.participant.current_consultation_id
        if consultation_id is not None:
            self.consultation = await self.session.get(Consultation, consultation_id)
            if self.consultation is not None:
                self.participation = await self._participation(self.consultation)
        self._choose_locale()

    async def _participation(self, consultation: Consultation) -> Participation | None:
        found = await self.session.exec(
            select(Participation).where(
                Participation.participant_id == self.participant.id,
                Participation.consultation_id == consultation.id,
            )
        )
        return found.first()

    def _save(self) -> None:
        if self.forgotten:
            return
        self.participant.state = self.state
        flag_modified(self.participant, "state")
        self.session.add(self.participant)
        if self.participation is not None:
            self.participation.updated_at = self.now
            self.session.add(self.participation)

    @property
    def _pid(self) -> int:
        assert self.participant.id is not None
        return self.participant.id

    # -- entry point ---------------------------------------------------------------------

    async def run(self) -> list[Reply]:
        await self._load()
        event = self.event
        if isinstance(event, Start):
            await self.start(event.payload)
        elif isinstance(event, Command):
            await self.command(event.name, event.argument)
        elif isinstance(event, Choice | Text) and self.step in self._ANYTIME_STEPS:
            await self.answer(event)
        elif self.consultation is None or self.participation is None or self.step == "new":
            await self.start("")
        elif await self._closed_now():
            pass
        elif isinstance(event, FormSubmit):
            if event.form == "proposal":
                await self.propose_text(event.fields.get("text", ""))
            else:
                await self.reprompt()
        elif isinstance(event, Choice | Text):
            await self.answer(event)
        self._save()
        return self.replies

    async def answer(self, event: Choice | Text) -> None:
        """A tap or typed line: routed to the step that is waiting for it."""
        if self.step == "propose" and isinstance(event, Text):
            await self.propose_text(event.text)
            return
        handler = self._CHOICE_STEPS.get(self.step)
        if handler is None:
            if self.step == "stopped":
                self.say(self.t("stop.restart_hint"))
            else:
                await self.reprompt()
            return
        offered = self._offered()
        chosen: str | None = None
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
            return
        await handler(self, chosen)

    async def reprompt(self) -> None:
        """Ask again whatever the current step is waiting for."""
        prompt = self._PROMPTS.get(self.step)
        if prompt is not None:
            await prompt(self)
        elif self.step == "stopped":
            self.say(self.t("stop.restart_hint"))
        elif self.consultation is not None and self.participation is not None:
            await self.menu()
        else:
            await self.start("")

    async def _closed_now(self) -> bool:
        assert self.consultation is not None
        state = availability(self.consultation, self.now)
        if state in ("open", "vote-only"):
            return False
        await self._say_unavailable(self.consultation, state)
        return True

    async def _say_unavailable(self, consultation: Consultation, state: str) -> None:
        question = consultation.question.get(self.locale, "")
        if state == "not-started":
            self.say(self.t("consultation.not_started", question=question))
            return
        self.say(self.t("consultation.closed", question=question))
        if settings_of(consultation).results_published:
            await self.show_results()
        self.step = "idle"

    # -- starting and onboarding ---------------------------------------------------------

    async def start(self, payload: str) -> None:
        payload = payload.strip()
        source: str | None = None
        consultation: Consultation | None = None
        if payload:
            parsed = parse_payload(payload)
            if parsed is not None:
                slug, source = parsed
                consultation = await self._by_slug(slug)
            if consultation is None or consultation.status == Status.DRAFT:
                self.say(self.t("start.unknown"))
                await self.offer_consultations()
                return
        else:
            consultation = self.consultation
            finished = consultation is not None and availability(consultation, self.now) in (
                "closed",
                "draft",
            )
            if consultation is None or (finished and await self._open_consultations()):
                open_ones = await self._open_consultations()
                if len(open_ones) != 1:
                    await self.offer_consultations()
                    return
                consultation = open_ones[0]
        await self.enter(consultation, source)

    async def _by_slug(self, slug: str) -> Consultation | None:
        found = await self.session.exec(select(Consultation).where(Consultation.slug == slug))
        return found.first()

    async def _open_consultations(self) -> list[Consultation]:
        found = await self.session.exec(
            select(Consultation)
            .where(col(Consultation.status).in_([Status.OPEN, Status.VOTE_ONLY]))
            .order_by(col(Consultation.id))
        )
        return [c for c in found if availability(c, self.now) in ("open", "vote-only")]

    async def offer_consultations(self) -> None:
        open_ones = await self._open_consultations()
        if not open_ones:
            self.say(self.t("start.none_open"))
            self.step = "new"
            return
        options = []
        for consultation in open_ones:
            locale = negotiate(self.locale, consultation.locales) or consultation.default_locale
            options.append(Option(f"c{consultation.id}", consultation.question[locale]))
        self.step = "choose_consultation"
        self.ask(self.t("start.choose"), options)

    async def on_choose_consultation(self, chosen: str) -> None:
        consultation = await self.session.get(Consultation, int(chosen[1:]))
        if consultation is None:
            await self.offer_consultations()
            return
        await self.enter(consultation, None)

    async def enter(self, consultation: Consultation, source: str | None) -> None:
        """Take the participant into `consultation` (again), remembering where they came from."""
        switching = consultation.id != self.participant.current_consultation_id
        self.consultation = consultation
        self.participant.current_consultation_id = consultation.id
        self.participation = await self._participation(consultation)
        self._choose_locale()
        state = availability(consultation, self.now)
        if state not in ("open", "vote-only"):
            await self._say_unavailable(consultation, state)
            return
        if self.participation is None:
            assert consultation.id is not None
            self.participation = Participation(
                participant_id=self._pid,
                consultation_id=consultation.id,
                source=source,
                created_at=self.now,
                updated_at=self.now,
            )
            self.session.add(self.participation)
            await self.session.flush()
        elif source and not self.participation.source:
            self.participation.source = source
        resuming = not switching and self.step in self._CONSULTATION_STEPS
        if not self.participation.subscribed:
            self.participation.subscribed = True
            self.say(self.t("stop.resubscribed"))
        if resuming:
            self.say(self.t("start.welcome_back"))
            await self.reprompt()
            return
        self.state = {}
        self.say(self.t("start.welcome", question=consultation.question[self.locale]))
        await self.onboard()

    async def onboard(self) -> None:
        """The next thing to settle before voting: language, consent, profile; then cards."""
        assert self.consultation is not None and self.participation is not None
        consultation, participation = self.consultation, self.participation
        if (
            self.participant.locale not in consultation.locales
            and negotiate(self.event.locale_hint, consultation.locales) is None
            and len(consultation.locales) > 1
            and not self.state.get("language_asked")
        ):
            self.step = "language"
            await self.prompt_language()
            return
        if participation.consented_at is None:
            self.step = "consent"
            await self.prompt_consent()
            return
        if self._next_profile_question() is not None:
            self.step = "profile"
            await self.prompt_profile()
            return
        self.say(self.t("question.intro", question=consultation.question[self.locale]))
        await self.start_sequence()

    async def prompt_language(self) -> None:
        offered = self.consultation.locales if self.consultation else list(available_locales())
        options = [Option(lang, _native_name(lang)) for lang in offered]
        self.ask(self.t("language.prompt"), options)

    async def on_language(self, chosen: str) -> None:
        self.participant.locale = chosen
        self.state["language_asked"] = True
        self._choose_locale()
        await self.onboard()

    async def prompt_consent(self) -> None:
        assert self.consultation is not None
        notice = self.consultation.privacy_notice.get(self.locale) or self.t("consent.notice")
        options = [
            Option("accept", self.t("consent.accept")),
            Option("decline", self.t("consent.decline")),
        ]
        self.ask(f"{notice}\n\n{self.t('consent.prompt')}", options)

    async def on_consent(self, chosen: str) -> None:
        assert self.participation is not None
        if chosen == "decline":
            self.say(self.t("consent.declined"))
            await self.prompt_consent()
            return
        self.participation.consented_at = self.now
        await self.onboard()

    def _next_profile_question(self) -> Any:
        assert self.consultation is not None and self.participation is not None
        for question in profile_questions_of(self.consultation):
            if question.id not in self.participation.profile:
                return question
        return None

    async def prompt_profile(self) -> None:
        question = self._next_profile_question()
        if question is None:
            await self.onboard()
            return
        options = [Option(o.id, o.label[self.locale]) for o in question.options]
        options.append(Option(SKIP, self.t("profile.skip")))
        self.ask(f"{question.label[self.locale]}\n{self.t('profile.why')}", options)

    async def on_profile(self, chosen: str) -> None:
        assert self.participation is not None
        question = self._next_profile_question()
        if question is not None:
            answers = dict(self.participation.profile)
            answers[question.id] = "" if chosen == SKIP else chosen
            self.participation.profile = answers
        await self.onboard()

    # -- voting --------------------------------------------------------------------------

    @property
    def _settings(self) -> Any:
        assert self.consultation is not None
        return settings_of(self.consultation)

    async def start_sequence(self) -> None:
        self.state["seq"] = {"shown": 0, "seen": [], "voted": []}
        await self.next_card()

    async def next_card(self) -> None:
        assert self.consultation is not None
        seq = self.state["seq"]
        size = self._settings.sequence_size
        if seq["shown"] >= size:
            await self.end_sequence()
            return
        found = await next_proposals_for(
            self.session,
            self._pid,
            self.consultation,
            self.locale,
            1,
            exclude=frozenset(seq["seen"]),
            rng=self.rng,
        )
        if not found:
            if seq["voted"]:
                await self.end_sequence()
            else:
                self.say(self.t("sequence.nothing_left"))
                await self.menu()
            return
        self.state["card"] = found[0].id
        self.step = "card"
        await self.prompt_card()

    async def prompt_card(self) -> None:
        proposal = await self.session.get(Proposal, self.state.get("card"))
        if proposal is None or proposal.status != ProposalStatus.ACCEPTED:
            await self.next_card()
            return
        seq = self.state["seq"]
        header = self.t("card.header", index=seq["shown"] + 1, total=self._settings.sequence_size)
        options = [Option(key.value, self.t(f"vote.{key.value}")) for key in VoteKey]
        options.append(Option(SKIP, self.t("vote.skip")))
        self.ask(f"{header}\n\n{proposal.text}", options, card=proposal.id)

    async def on_card(self, chosen: str) -> None:
        seq = self.state["seq"]
        proposal_id = self.state["card"]
        proposal = await self.session.get(Proposal, proposal_id)
        seq["seen"].append(proposal_id)
        if proposal is None or proposal.status != ProposalStatus.ACCEPTED:
            self.say(self.t("card.withdrawn"))
            await self.next_card()
            return
        seq["shown"] += 1
        if chosen == SKIP:
            await self.next_card()
            return
        await record_vote(
            self.session, self._pid, proposal_id, VoteKey(chosen), trusted=True, now=self.now
        )
        seq["voted"].append(proposal_id)
        if not self._settings.qualifications:
            await self.next_card()
            return
        self.state["vote"] = chosen
        self.step = "qualify"
        await self.prompt_qualify()

    async def prompt_qualify(self) -> None:
        keys = QUALIFICATIONS[VoteKey(self.state["vote"])]
        options = [Option(key.value, self.t(f"qualification.{key.value}")) for key in keys]
        options.append(Option(SKIP, self.t("qualification.skip")))
        self.ask(self.t("qualification.prompt"), options)

    async def on_qualify(self, chosen: str) -> None:
        if chosen != SKIP:
            try:
                await record_qualification(
                    self.session,
                    self._pid,
                    self.state["card"],
                    QualificationKey(chosen),
                    now=self.now,
                )
            except InvalidQualification:
                self.say(self.t("qualification.invalid"))
        await self.next_card()

    async def end_sequence(self) -> None:
        """How others voted on this sequence's well-voted proposals, then the menu."""
        voted = self.state["seq"]["voted"]
        if voted:
            found = await self.session.exec(
                select(Proposal).where(
                    col(Proposal.id).in_(voted),
                    col(Proposal.vote_count) >= self._settings.summary_min_votes,
                )
            )
            order = {proposal_id: index for index, proposal_id in enumerate(voted)}
            shown = sorted(found, key=lambda p: order[p.id])
            lines = [self._split_line(split) for split in await splits(self.session, shown)]
            if lines:
                self.say("\n\n".join([self.t("summary.title"), *lines]))
            else:
                self.say(self.t("summary.too_early"))
        await self.menu()

    def _split_line(self, split: Any) -> str:
        return self.t(
            "summary.line",
            text=split.proposal.text,
            agree=self.t.percent(split.agree),
            disagree=self.t.percent(split.disagree),
            neutral=self.t.percent(split.neutral),
            votes=self.t.plural("summary.votes", split.votes),
        )

    async def menu(self) -> None:
        assert self.consultation is not None
        self.step = "menu"
        options = [Option("vote", self.t("menu.vote"))]
        if availability(self.consultation, self.now) == "open":
            options.append(Option("propose", self.t("menu.propose")))
        options.append(Option("stop", self.t("menu.stop")))
        self.ask(self.t("menu.prompt"), options)

    async def on_menu(self, chosen: str) -> None:
        if chosen == "vote":
            await self.start_sequence()
        elif chosen == "propose":
            await self.begin_proposal()
        else:
            self.step = "idle"
            self.state.pop("pick", None)
            self.say(self.t("menu.goodbye"))

    # -- proposing -----------------------------------------------------------------------

    def _prefix(self) -> str:
        prefix: str = self._settings.prefix.get(self.locale) or self.t("proposal.prefix")
        return prefix

    async def _may_propose(self) -> bool:
        """Whether the participant may propose now; if not, say why."""
        assert self.consultation is not None and self.consultation.id is not None
        if availability(self.consultation, self.now) != "open":
            self.say(self.t("propose.vote_only"))
            return False
        limit = self._settings.max_proposals_per_day
        made = await proposals_today(self.session, self._pid, self.consultation.id, self.now)
        if made >= limit:
            self.say(self.t.plural("propose.limit", limit))
            return False
        return True

    async def begin_proposal(self) -> None:
        assert self.participation is not None
        if self.participation.consented_at is None:
            await self.onboard()
            return
        if not await self._may_propose():
            await self.reprompt()
            return
        self.step = "propose"
        await self.prompt_propose()

    async def prompt_propose(self) -> None:
        self.state.pop("pick", None)
        settings = self._settings
        self.say(
            self.t(
                "propose.prompt",
                prefix=self._prefix(),
                minimum=settings.proposal_min_length,
                maximum=settings.proposal_max_length,
            )
        )

    async def propose_text(self, typed: str) -> None:
        if self.step not in ("propose", "confirm"):
            await self.begin_proposal()
            if self.step != "propose":
                return
        text = compose_proposal(typed, self._prefix())
        problem = check_proposal(text, self._prefix(), self._settings)
        if problem is not None:
            self.say(self.t(problem.msgid, **problem.values))
            return
        self.state["draft"] = text
        self.step = "confirm"
        await self.prompt_confirm()

    async def prompt_confirm(self) -> None:
        options = [
            Option("confirm", self.t("propose.confirm.yes")),
            Option("edit", self.t("propose.confirm.edit")),
            Option("cancel", self.t("propose.confirm.cancel")),
        ]
        self.ask(self.t("propose.confirm", text=self.state["draft"]), options)

    async def on_confirm(self, chosen: str) -> None:
        assert self.consultation is not None and self.consultation.id is not None
        if chosen == "edit":
            self.step = "propose"
            await self.prompt_propose()
            return
        if chosen == "cancel":
            self.say(self.t("propose.cancelled"))
            await self.menu()
            return
        if not await self._may_propose():
            await self.menu()
            return
        settings = self._settings
        await submit_proposal(
            self.session,
            self._pid,
            self.consultation.id,
            self.state.pop("draft"),
            self.locale,
            settings,
            self.now,
        )
        pending = settings.moderation == "pre"
        self.say(self.t("propose.thanks.pending" if pending else "propose.thanks.published"))
        await self.menu()

    # -- commands ------------------------------------------------------------------------

    async def command(self, name: str, argument: str) -> None:
        if name == "start":
            await self.start(argument)
        elif name == "help":
            self.say(self.t("help.text"))
            await self.reprompt()
        elif name == "language":
            if self.step not in ("choose_language", "forget"):
                self.state["resume"] = self.step
            self.step = "choose_language"
            await self.prompt_language()
        elif name == "forget":
            if self.step not in ("choose_language", "forget"):
                self.state["resume"] = self.step
            self.step = "forget"
            await self.prompt_forget()
        elif self.consultation is None or self.participation is None or self.step == "new":
            await self.start("")
        elif name == "stop":
            self.participation.subscribed = False
            self.step = "stopped"
            self.state.pop("pick", None)
            self.say(self.t("stop.done"))
        elif name == "results":
            await self.show_results()
            await self.reprompt()
        elif await self._closed_now():
            pass
        elif name == "propose":
            await self.begin_proposal()
        elif name == "cancel" and self.step in ("propose", "confirm"):
            self.say(self.t("propose.cancelled"))
            await self.menu()
        else:
            self.say(self.t("command.unknown", command=f"/{name}"))
            self.say(self.t("help.text"))
            await self.reprompt()

    async def on_choose_language(self, chosen: str) -> None:
        self.participant.locale = chosen
        self.state["language_asked"] = True
        self._choose_locale()
        self.say(self.t("language.changed"))
        self.step = self.state.pop("resume", "new")
        await self.reprompt()

    async def prompt_forget(self) -> None:
        options = [Option("yes", self.t("forget.yes")), Option("no", self.t("forget.no"))]
        self.ask(self.t("forget.confirm"), options)

    async def on_forget(self, chosen: str) -> None:
        if chosen == "no":
            self.say(self.t("forget.kept"))
            self.step = self.state.pop("resume", "new")
            await self.reprompt()
            return
        self.say(self.t("forget.done"))
        await forget_participant(self.session, self.participant, self.now)
        self.forgotten = True

    async def show_results(self) -> None:
        consultation = self.consultation
        assert consultation is not None and consultation.id is not None
        settings = settings_of(consultation)
        if not settings.results_published:
            self.say(self.t("results.unpublished"))
            return
        top = await top_agreed(
            self.session, consultation.id, self.locale, settings.summary_min_votes, RESULTS_SHOWN
        )
        if not top:
            self.say(self.t("results.none_yet"))
            return
        self.say("\n\n".join([self.t("results.title"), *(self._split_line(s) for s in top)]))

    _Handler = Callable[["Conversation", str], Awaitable[None]]
    _Prompt = Callable[["Conversation"], Awaitable[None]]
    _CHOICE_STEPS: ClassVar[dict[str, _Handler]] = {
        "choose_consultation": on_choose_consultation,
        "language": on_language,
        "consent": on_consent,
        "profile": on_profile,
        "card": on_card,
        "qualify": on_qualify,
        "menu": on_menu,
        "confirm": on_confirm,
        "choose_language": on_choose_language,
        "forget": on_forget,
    }
    _PROMPTS: ClassVar[dict[str, _Prompt]] = {
        "choose_consultation": offer_consultations,
        "language": prompt_language,
        "consent": prompt_consent,
        "profile": prompt_profile,
        "card": prompt_card,
        "qualify": prompt_qualify,
        "menu": menu,
        "propose": prompt_propose,
        "confirm": prompt_confirm,
        "choose_language": prompt_language,
        "forget": prompt_forget,
    }
    # Steps that do not need an open consultation to answer.
    _ANYTIME_STEPS = frozenset({"choose_consultation", "choose_language", "forget"})
    _CONSULTATION_STEPS = frozenset(
        {"consent", "profile", "card", "qualify", "menu", "propose", "confirm", "idle"}
    )

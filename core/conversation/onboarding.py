"""Getting a participant into a consultation: deep links, language, consent, profile."""

from __future__ import annotations

import re

from babel import Locale
from sqlmodel import col, select

from core.conversation import cards
from core.conversation.turn import OPEN, SKIP, STEPS, Step, Turn, availability
from core.definitions import (
    ProfileQuestion,
    consultation_by_slug,
    profile_questions_of,
)
from core.i18n import available_locales, negotiate
from core.messages import Option
from core.models import Consultation, Participation, Status

PAYLOAD = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Steps after which coming back resumes where the participant was rather than starting over.
RESUMABLE = frozenset(
    {"consent", "profile", "card", "qualify", "menu", "propose", "confirm", "idle"}
)


def parse_payload(payload: str) -> tuple[str, str | None] | None:
    """Split a deep-link payload "slug" or "slug__source"; None if it is not well formed."""
    if not PAYLOAD.match(payload):
        return None
    slug, _, source = payload.partition("__")
    return (slug.lower(), source or None) if slug else None


def native_name(locale: str) -> str:
    """A language's own name for itself, from CLDR ("Français", "English")."""
    return (Locale.parse(locale).get_display_name(locale) or locale).capitalize()


async def start(turn: Turn, payload: str) -> None:
    """/start, with or without a deep-link payload naming the consultation and a source."""
    payload = payload.strip()
    source: str | None = None
    consultation: Consultation | None = None
    if payload:
        parsed = parse_payload(payload)
        if parsed is not None:
            slug, source = parsed
            consultation = await consultation_by_slug(turn.session, slug)
        if consultation is None or consultation.status == Status.DRAFT:
            turn.say(turn.t("start.unknown"))
            await offer_consultations(turn)
            return
    else:
        consultation = turn.consultation
        finished = consultation is not None and availability(consultation, turn.now) in (
            "closed",
            "draft",
        )
        if consultation is None or (finished and await _open_consultations(turn)):
            open_ones = await _open_consultations(turn)
            if len(open_ones) != 1:
                await offer_consultations(turn)
                return
            consultation = open_ones[0]
    await enter(turn, consultation, source)


async def _open_consultations(turn: Turn) -> list[Consultation]:
    found = await turn.session.exec(
        select(Consultation)
        .where(col(Consultation.status).in_([Status.OPEN, Status.VOTE_ONLY]))
        .order_by(col(Consultation.id))
    )
    return [c for c in found if availability(c, turn.now) in OPEN]


async def offer_consultations(turn: Turn) -> None:
    open_ones = await _open_consultations(turn)
    if not open_ones:
        turn.say(turn.t("start.none_open"))
        turn.step = "new"
        return
    options = []
    for consultation in open_ones:
        locale = negotiate(turn.locale, consultation.locales) or consultation.default_locale
        options.append(Option(f"c{consultation.id}", consultation.question[locale]))
    turn.step = "choose_consultation"
    turn.ask(turn.t("start.choose"), options)


async def on_choose_consultation(turn: Turn, chosen: str) -> None:
    consultation = await turn.session.get(Consultation, int(chosen[1:]))
    if consultation is None:
        await offer_consultations(turn)
        return
    await enter(turn, consultation, None)


async def enter(turn: Turn, consultation: Consultation, source: str | None) -> None:
    """Take the participant into `consultation` (again), remembering where they came from."""
    switching = consultation.id != turn.participant.current_consultation_id
    turn.consultation = consultation
    turn.participant.current_consultation_id = consultation.id
    turn.participation = await turn.participation_in(consultation)
    turn.choose_locale()
    state = availability(consultation, turn.now)
    if state not in OPEN:
        await say_unavailable(turn, state)
        return
    if turn.participation is None:
        assert consultation.id is not None
        turn.participation = Participation(
            participant_id=turn.participant_id,
            consultation_id=consultation.id,
            source=source,
            created_at=turn.now,
            updated_at=turn.now,
        )
        turn.session.add(turn.participation)
        await turn.session.flush()
    elif source and not turn.participation.source:
        turn.participation.source = source
    if not turn.participation.subscribed:
        turn.participation.subscribed = True
        turn.say(turn.t("stop.resubscribed"))
    if not switching and turn.step in RESUMABLE:
        turn.say(turn.t("start.welcome_back"))
        await turn.reprompt()
        return
    turn.state = {}
    turn.say(turn.t("start.welcome", question=consultation.question[turn.locale]))
    await onboard(turn)


async def closed_now(turn: Turn) -> bool:
    """Whether the current consultation stopped taking part (then say so)."""
    assert turn.consultation is not None
    state = availability(turn.consultation, turn.now)
    if state in OPEN:
        return False
    await say_unavailable(turn, state)
    return True


async def say_unavailable(turn: Turn, state: str) -> None:
    consultation = turn.consultation
    assert consultation is not None
    question = consultation.question.get(turn.locale, "")
    if state == "not-started":
        turn.say(turn.t("consultation.not_started", question=question))
        return
    turn.say(turn.t("consultation.closed", question=question))
    if turn.settings.results_published:
        await cards.show_results(turn)
    turn.step = "idle"
    turn.state.pop("pick", None)


async def onboard(turn: Turn) -> None:
    """The next thing to settle before voting: language, consent, profile; then the cards."""
    consultation, participation = turn.consultation, turn.participation
    assert consultation is not None and participation is not None
    if (
        turn.participant.locale not in consultation.locales
        and negotiate(turn.event.locale_hint, consultation.locales) is None
        and len(consultation.locales) > 1
        and not turn.state.get("language_asked")
    ):
        await turn.goto("language")
    elif participation.consented_at is None:
        await turn.goto("consent")
    elif _next_profile_question(turn) is not None:
        await turn.goto("profile")
    else:
        turn.say(turn.t("question.intro", question=consultation.question[turn.locale]))
        await cards.start_sequence(turn)


async def prompt_language(turn: Turn) -> None:
    offered = turn.consultation.locales if turn.consultation else list(available_locales())
    options = [Option(lang, native_name(lang)) for lang in offered]
    turn.ask(turn.t("language.prompt"), options)


async def on_language(turn: Turn, chosen: str) -> None:
    turn.participant.locale = chosen
    turn.state["language_asked"] = True
    turn.choose_locale()
    await onboard(turn)


async def prompt_consent(turn: Turn) -> None:
    assert turn.consultation is not None
    notice = turn.consultation.privacy_notice.get(turn.locale) or turn.t("consent.notice")
    options = [
        Option("accept", turn.t("consent.accept")),
        Option("decline", turn.t("consent.decline")),
    ]
    turn.ask(f"{notice}\n\n{turn.t('consent.prompt')}", options)


async def on_consent(turn: Turn, chosen: str) -> None:
    assert turn.participation is not None
    if chosen == "decline":
        turn.say(turn.t("consent.declined"))
        await prompt_consent(turn)
        return
    turn.participation.consented_at = turn.now
    await onboard(turn)


def _next_profile_question(turn: Turn) -> ProfileQuestion | None:
    assert turn.consultation is not None and turn.participation is not None
    for question in profile_questions_of(turn.consultation):
        if question.id not in turn.participation.profile:
            return question
    return None


async def prompt_profile(turn: Turn) -> None:
    question = _next_profile_question(turn)
    if question is None:
        await onboard(turn)
        return
    options = [Option(o.id, o.label[turn.locale]) for o in question.options]
    options.append(Option(SKIP, turn.t("profile.skip")))
    turn.ask(f"{question.label[turn.locale]}\n{turn.t('profile.why')}", options)


async def on_profile(turn: Turn, chosen: str) -> None:
    assert turn.participation is not None
    question = _next_profile_question(turn)
    if question is not None:
        answers = dict(turn.participation.profile)
        answers[question.id] = "" if chosen == SKIP else chosen
        turn.participation.profile = answers
    await onboard(turn)


async def _start_without_payload(turn: Turn) -> None:
    await start(turn, "")


STEPS["new"] = Step(_start_without_payload)
STEPS["choose_consultation"] = Step(offer_consultations, on_choose_consultation, anytime=True)
STEPS["language"] = Step(prompt_language, on_language)
STEPS["consent"] = Step(prompt_consent, on_consent)
STEPS["profile"] = Step(prompt_profile, on_profile)

"""What every step of the conversation works with: one event's turn, and the step registry."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.definitions import ConsultationSettings, settings_of
from core.i18n import FALLBACK, Translator, available_locales, negotiate
from core.identity import Enrolment, outdated
from core.messages import Event, Option, Pick, Reply
from core.models import Consultation, Participation, Status
from core.moderation.similarity import DEFAULT as DEFAULT_SIMILARITY
from core.moderation.similarity import Similarity

SKIP = "skip"

Prompt = Callable[["Turn"], Awaitable[None]]
Handler = Callable[["Turn", str], Awaitable[None]]


@dataclass(frozen=True)
class Step:
    """A place in the conversation: how to (re)ask its question and how to take the answer.

    `on_choice` receives the id of one of the options the prompt offered; `on_text` receives
    free text (for steps that wait for it). `anytime` steps can be answered even when no open
    consultation is selected (choosing one, the language, erasing one's data).
    """

    prompt: Prompt
    on_choice: Handler | None = None
    on_text: Handler | None = None
    anytime: bool = False


STEPS: dict[str, Step] = {}


# The availabilities in which a consultation takes part: participants can join it and vote.
OPEN = frozenset({str(Status.OPEN), str(Status.VOTE_ONLY)})


def availability(consultation: Consultation, now: datetime) -> str:
    """ "open", "vote-only", "closed", "not-started" or "draft", with the schedule applied."""
    if consultation.status in (Status.DRAFT, Status.CLOSED):
        return str(consultation.status)
    if consultation.ends_at is not None and now >= consultation.ends_at:
        return "closed"
    if consultation.starts_at is not None and now < consultation.starts_at:
        return "not-started"
    return str(consultation.status)


RECALL_SUBJECT = 60  # characters of what was answered that a recall line quotes


def recall_line(label: str, subject: str | None = None) -> str:
    """ "✓ Agree: We should fund weekly home visits": the answer just given and, shortened,
    what it answered; the first line of a message that goes on to the next question."""
    if not subject:
        return f"✓ {label}"
    subject = " ".join(subject.split())
    if len(subject) > RECALL_SUBJECT:
        subject = subject[: RECALL_SUBJECT - 1].rstrip() + "…"
    return f"✓ {label}: {subject}"


# Every event ends with this write. A Core statement built once: the ORM's unit of work spent
# more on finding what changed (a JSON column always looks changed) than SQLite on the write.
_PARTICIPANTS = SQLModel.metadata.tables["participant"]
_SAVE_POSITION = (
    update(_PARTICIPANTS)
    .where(_PARTICIPANTS.c.id == bindparam("b_participant"))
    .values(step=bindparam("b_step"), state=bindparam("b_state", type_=_PARTICIPANTS.c.state.type))
)


class Turn:
    """One event's turn in a participant's conversation: what is known, and the replies so far."""

    def __init__(
        self,
        session: AsyncSession,
        enrolment: Enrolment,
        event: Event,
        *,
        now: datetime,
        rng: random.Random,
        similarity: Similarity = DEFAULT_SIMILARITY,
    ) -> None:
        self.session = session
        self.similarity = similarity
        self.participant = participant = enrolment.participant
        self.event = event
        self.now = now
        self.rng = rng
        # The position is kept here and written by `save`, not through the participant object.
        self._step = participant.step
        self.state: dict[str, Any] = dict(participant.state)
        # Read with the participant: the current consultation and the participation in it.
        self.consultation = enrolment.consultation
        self.participation = enrolment.participation
        self.replies: list[Reply] = []
        self._settings: tuple[Consultation, ConsultationSettings] | None = None
        self.card_texts: dict[int, str] = {}  # accepted proposals' texts read in this turn
        self.chosen: Option | None = None
        self.refusal: str | None = None
        self.recall: str | None = None
        self.t = Translator(FALLBACK)
        self.forgotten = False

    @property
    def step(self) -> str:
        return self._step

    @step.setter
    def step(self, value: str) -> None:
        self._step = value

    @property
    def participant_id(self) -> int:
        assert self.participant.id is not None
        return self.participant.id

    @property
    def locale(self) -> str:
        return self.t.locale

    @property
    def settings(self) -> ConsultationSettings:
        """The current consultation's settings, validated once per turn."""
        consultation = self.consultation
        assert consultation is not None
        if self._settings is None or self._settings[0] is not consultation:
            self._settings = (consultation, settings_of(consultation))
        return self._settings[1]

    def say(self, text: str) -> None:
        self.replies.append(Reply(text))

    def refuse(self, text: str) -> None:
        """Say why what the participant typed or submitted is refused; they are asked again."""
        self.refusal = text
        self.say(text)

    def ask(self, text: str, options: list[Option], card: int | None = None) -> None:
        """Reply with a pick, and remember its options to check the answer against."""
        self.state["pick"] = [[o.id, o.label] for o in options]
        self.replies.append(Reply(text, Pick(tuple(options)), card))

    def offered(self) -> tuple[Option, ...]:
        """The options of the last pick asked (none once a step waits for free text)."""
        return tuple(Option(id, label) for id, label in self.state.get("pick", []))

    async def goto(self, step: str) -> None:
        """Move to `step` and ask its question."""
        self.step = step
        await self.reprompt()

    async def reprompt(self) -> None:
        """Ask again whatever the current step is waiting for."""
        await STEPS.get(self.step, STEPS["new"]).prompt(self)

    def choose_locale(self) -> None:
        """The locale of this event: the participant's choice, else the hint, else a default."""
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

    async def participation_in(self, consultation: Consultation) -> Participation | None:
        found = await self.session.exec(
            select(Participation).where(
                Participation.participant_id == self.participant.id,
                Participation.consultation_id == consultation.id,
            )
        )
        return found.first()

    async def scalar(self, statement: Select[Any], params: dict[str, Any]) -> Any:
        """The first column of a Core query's first row (None without rows), read past the ORM
        once what the session holds is flushed."""
        await self.session.flush()
        connection = await self.session.connection()
        return (await connection.execute(statement, params)).scalar()

    @property
    def number(self) -> int:
        """How many turns the participant has had, this one included once saved: a reply owed
        for an earlier turn is overtaken by this one's (`core.outbox`)."""
        return int(self.state.get("turn", 0))

    async def save(self) -> None:
        if self.forgotten:
            return
        self.state["turn"] = self.number + 1
        position = {
            "b_participant": self.participant_id,
            "b_step": self._step,
            "b_state": self.state,
        }
        await self.session.exec(_SAVE_POSITION, params=position)
        # The statement changed the row, not the object: keep the object the session holds
        # in step, as written (not as a change to flush).
        set_committed_value(self.participant, "step", self._step)
        set_committed_value(self.participant, "state", self.state)
        participation = self.participation
        if participation is None:
            return
        # Broadcasts and reminders write to a participant later, without an event of theirs to
        # read a language from: they read the one this turn spoke (written only when it changes).
        spoken = self.t.locale
        if (
            participation.locale != spoken
            and self.consultation
            and spoken in self.consultation.locales
        ):
            participation.locale = spoken
            self.session.add(participation)
        if outdated(participation.updated_at, self.now):
            participation.updated_at = self.now
            self.session.add(participation)

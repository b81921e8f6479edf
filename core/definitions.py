"""Consultations defined as data (YAML files): validation with errors that name the field,
and an idempotent create-or-update into the database."""

from __future__ import annotations

from datetime import datetime
from datetime import time as clock_time
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.i18n import available_locales
from core.models import Audience, Consultation, Proposal, ProposalStatus, Status
from core.voting import add_proposal

SLUG = r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$"  # no "__": it separates slug and source in deep links
# Why a moderator may refuse a proposal, as in Make.org's back office; `already-exists` names
# the accepted proposal it repeats.
REFUSAL_REASONS = (
    "incomprehensible",
    "off-topic",
    "partisan",
    "illegal",
    "advertising",
    "several-ideas",
    "wrong-language",
    "rudeness",
    "out-of-scope",
    "already-exists",
    "other",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ZoneSettings(_Strict):
    """Where the results put a proposal (`core.scoring.zone_of`), by its smoothed rates:
    consensus if agree >= `strong`, or neutral < `limbo` and disagree < `weak`; rejection the
    same with agree and disagree swapped; limbo if neutral >= `limbo`; else controversy."""

    strong: float = Field(default=0.6, gt=0.5, le=1)  # above half: agree and disagree can't both be
    weak: float = Field(default=0.15, gt=0, le=1)
    limbo: float = Field(default=0.4, gt=0, le=1)

    @model_validator(mode="after")
    def _weak_below_strong(self) -> Self:
        if self.weak >= self.strong:
            raise ValueError("zones: weak must be smaller than strong")
        return self


class FlagSettings(_Strict):
    """When moderation flags a burst (`core.moderation.flags`): `author` proposals or more from
    one participant, or `source` or more from participants recruited by one source, within
    `minutes`. A flag only informs a moderator; it holds nothing back."""

    minutes: int = Field(default=10, ge=1, le=24 * 60)
    author: int = Field(default=3, ge=2)
    source: int = Field(default=20, ge=2)


class NoticeTemplate(_Strict):
    """A WhatsApp message template, approved in Meta's WhatsApp Manager, that tells an author of
    a decision outside WhatsApp's 24-hour window (`core.notices`): its body has one parameter,
    the notice's text. `languages` maps a consultation language to the template's language code
    (`fr` -> `fr`, `en` -> `en_US`); a language not listed is used as the code itself."""

    name: str = Field(pattern=r"^[a-z0-9_]+$", max_length=512)
    languages: dict[str, str] = Field(default_factory=dict)


class WhatsAppTemplate(_Strict):
    """A WhatsApp template approved in Meta's WhatsApp Manager, as the consultation's registry
    lists it: the only way to write outside the 24-hour window. `category` marketing may only
    reach opted-in numbers; `parameters` names the body's variables in order (`text`: the
    broadcast's text, `link`: the consultation's deep link, `name`: the consultation's question)."""

    name: str = Field(pattern=r"^[a-z0-9_]+$", max_length=512)
    language: str = Field(pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$")
    category: Literal["marketing", "utility"] = "marketing"
    parameters: tuple[Literal["text", "link", "name"], ...] = ("text",)


class ReminderSettings(_Strict):
    """The automatic reminders (`core.broadcasts.reminders`), each with its off switch:
    `stalled_after_hours` after a participant stopped mid-sequence (once); a `digest` of new
    proposals since the last visit (at most every `digest_days`); `closing_before_hours` before
    the consultation ends; `results` when they are published."""

    stalled: bool = False
    stalled_after_hours: int = Field(default=24, ge=1, le=24 * 30)
    digest: bool = False
    digest_days: int = Field(default=7, ge=7, le=90)
    closing: bool = False
    closing_before_hours: int = Field(default=48, ge=1, le=24 * 30)
    results: bool = False


class BroadcastSettings(_Strict):
    """How broadcasts reach people (`core.broadcasts`): nothing is sent between `quiet_start`
    and `quiet_end` in `time_zone` (an IANA name; a broadcast waits for the morning); no
    participant gets more than `max_per_week` broadcast messages in seven days, reminders
    included; `templates` is the WhatsApp template registry."""

    time_zone: str = "UTC"
    quiet_start: clock_time | None = clock_time(21, 0)
    quiet_end: clock_time | None = clock_time(9, 0)
    max_per_week: int = Field(default=3, ge=1, le=100)
    templates: tuple[WhatsAppTemplate, ...] = ()
    reminders: ReminderSettings = Field(default_factory=ReminderSettings)

    @model_validator(mode="after")
    def _known_zone(self) -> Self:
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"time_zone: {self.time_zone!r} is not a known time zone") from None
        if (self.quiet_start is None) != (self.quiet_end is None):
            raise ValueError("quiet_start and quiet_end: give both, or neither")
        return self


class WeightingSettings(_Strict):
    """How participants are weighted to the population's margins (`core.results.weighting`):
    a weight is trimmed at `trim` times the mean weight, then the weights are raked again."""

    trim: float = Field(default=5.0, ge=1, le=1000)


SHARE_TOLERANCE = 1e-6  # how far a question's shares may sum from one (rounding in a file)


class ConsultationSettings(_Strict):
    """Per-consultation settings, each with a sensible default.

    `min_segment_size`: an organiser's results breakdown never shows a segment (or a proposal
    within a segment) backed by fewer participants than this.
    `refusal_reasons`: the reasons a moderator may refuse a proposal with (ids, see
    `core.moderation`); `moderation_lock_seconds`: how long the queue keeps a proposal it
    served to one moderator from the others.
    """

    proposal_min_length: int = Field(default=12, ge=1, le=1000)
    proposal_max_length: int = Field(default=140, ge=1, le=1000)
    prefix: dict[str, str] = Field(default_factory=dict)
    moderation: Literal["pre", "post"] = "pre"
    sequence_size: int = Field(default=12, ge=1, le=100)
    qualifications: bool = True
    max_proposals_per_day: int = Field(default=5, ge=0)
    results_published: bool = False
    summary_min_votes: int = Field(default=10, ge=1)
    sequencing: Literal["uniform", "polis", "makeorg", "adaptive"] = "adaptive"
    other_vote_weight: float = Field(default=0.5, ge=0, le=1)
    zones: ZoneSettings = Field(default_factory=ZoneSettings)
    min_segment_size: int = Field(default=5, ge=1)
    refusal_reasons: tuple[Annotated[str, Field(pattern=SLUG, max_length=64)], ...] = Field(
        default=REFUSAL_REASONS
    )
    moderation_lock_seconds: int = Field(default=30, ge=5, le=3600)
    whatsapp_notice_template: NoticeTemplate | None = None
    flags: FlagSettings = Field(default_factory=FlagSettings)
    broadcasts: BroadcastSettings = Field(default_factory=BroadcastSettings)
    # The population's margins, per profile question and option (shares summing to one), that
    # the results weight participants to; no margins, no weighting.
    population: dict[str, dict[str, Annotated[float, Field(ge=0, le=1)]]] = Field(
        default_factory=dict
    )
    weighting: WeightingSettings = Field(default_factory=WeightingSettings)
    # Whether the votes of participants whose behaviour makes them untrusted
    # (`core.results.trust`) are left out of the results' scores; they are counted either way.
    exclude_untrusted: bool = False

    @model_validator(mode="after")
    def _lengths_ordered(self) -> Self:
        if self.proposal_min_length > self.proposal_max_length:
            raise ValueError("proposal_min_length is greater than proposal_max_length")
        if not self.refusal_reasons:
            raise ValueError("refusal_reasons: list at least one reason")
        if len(set(self.refusal_reasons)) < len(self.refusal_reasons):
            raise ValueError("refusal_reasons: a reason is listed twice")
        for question, shares in self.population.items():
            total = sum(shares.values())
            if abs(total - 1) > SHARE_TOLERANCE:
                raise ValueError(
                    f"population.{question}: the shares sum to {total:g}, not 1 "
                    "(give each option its share of the population, all of them adding up to 1)"
                )
        return self


class ProfileOption(_Strict):
    id: str = Field(pattern=SLUG, max_length=32)
    label: dict[str, str]


class ProfileQuestion(_Strict):
    id: str = Field(pattern=SLUG, max_length=32)
    label: dict[str, str]
    options: list[ProfileOption] = Field(min_length=2, max_length=20)


class SeedProposal(_Strict):
    ref: str = Field(pattern=SLUG, max_length=40)
    text: dict[str, str]


class ConsultationSpec(_Strict):
    slug: str = Field(pattern=SLUG, max_length=48)
    status: Status = Status.DRAFT
    audience: Audience = Audience.CITIZENS
    default_locale: str
    locales: list[str] = Field(min_length=1)
    question: dict[str, str]
    privacy_notice: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    settings: ConsultationSettings = Field(default_factory=ConsultationSettings)
    profile_questions: list[ProfileQuestion] = Field(default_factory=list)
    proposals: list[SeedProposal] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        unknown = [lang for lang in self.locales if lang not in available_locales()]
        if unknown:
            raise ValueError(
                f"locales: no catalogue for {', '.join(unknown)} "
                f"(available: {', '.join(available_locales())})"
            )
        if self.default_locale not in self.locales:
            raise ValueError("default_locale: must be one of locales")
        _require_locales("question", self.question, self.locales)
        for i, question in enumerate(self.profile_questions):
            _require_locales(f"profile_questions.{i}.label", question.label, self.locales)
            for j, option in enumerate(question.options):
                where = f"profile_questions.{i}.options.{j}.label"
                _require_locales(where, option.label, self.locales)
        settings = self.settings
        _check_population(settings.population, self.profile_questions)
        refs = set()
        for i, seed in enumerate(self.proposals):
            if seed.ref in refs:
                raise ValueError(f"proposals.{i}.ref: {seed.ref!r} is used twice")
            refs.add(seed.ref)
            for lang, text in seed.text.items():
                where = f"proposals.{i}.text.{lang}"
                if lang not in self.locales:
                    raise ValueError(f"{where}: {lang!r} is not one of locales")
                if not settings.proposal_min_length <= len(text) <= settings.proposal_max_length:
                    raise ValueError(
                        f"{where}: {len(text)} characters, outside "
                        f"{settings.proposal_min_length}-{settings.proposal_max_length}"
                    )
        for time in (self.starts_at, self.ends_at):
            if time is not None and time.tzinfo is None:
                raise ValueError("starts_at/ends_at: give a timezone, e.g. 2026-01-31T18:00:00Z")
        if self.starts_at and self.ends_at and self.starts_at >= self.ends_at:
            raise ValueError("ends_at: must be after starts_at")
        return self


def _check_population(
    population: dict[str, dict[str, float]], questions: list[ProfileQuestion]
) -> None:
    """Margins name profile questions and their options, nothing else."""
    options = {q.id: [o.id for o in q.options] for q in questions}
    for question, shares in population.items():
        if question not in options:
            raise ValueError(
                f"settings.population.{question}: not a profile question "
                f"(valid: {', '.join(options) or 'none'})"
            )
        for option in shares:
            if option not in options[question]:
                raise ValueError(
                    f"settings.population.{question}.{option}: not an option of {question} "
                    f"(valid: {', '.join(options[question])})"
                )


def _require_locales(where: str, texts: dict[str, str], locales: list[str]) -> None:
    missing = [lang for lang in locales if not texts.get(lang, "").strip()]
    if missing:
        raise ValueError(f"{where}: missing text for {', '.join(missing)}")


class DefinitionError(ValueError):
    """A consultation definition that cannot be loaded; `problems` name the fields to fix."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def parse_consultation(data: Any) -> ConsultationSpec:
    """Validate a consultation definition (as parsed from YAML); raises DefinitionError."""
    if not isinstance(data, dict):
        raise DefinitionError(["the file must hold a mapping of fields (slug, question, ...)"])
    try:
        return ConsultationSpec.model_validate(data)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            where = ".".join(str(part) for part in item["loc"])
            message = item["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
        raise DefinitionError(problems) from None


def settings_of(consultation: Consultation) -> ConsultationSettings:
    return ConsultationSettings.model_validate(consultation.settings)


def profile_questions_of(consultation: Consultation) -> list[ProfileQuestion]:
    return [ProfileQuestion.model_validate(q) for q in consultation.profile_questions]


async def consultation_by_slug(session: AsyncSession, slug: str) -> Consultation | None:
    """The consultation named `slug`, if there is one."""
    found = await session.exec(select(Consultation).where(Consultation.slug == slug))
    return found.first()


async def upsert_consultation(
    session: AsyncSession, spec: ConsultationSpec, now: datetime
) -> tuple[Consultation, bool]:
    """Create or update the consultation `spec` describes; returns it and whether it is new.

    Seed proposals are matched by `ref` (one proposal per ref and locale), so loading the same
    file twice changes nothing.
    """
    consultation = await consultation_by_slug(session, spec.slug)
    created = consultation is None
    fields: dict[str, Any] = {
        "status": spec.status.value,
        "audience": spec.audience.value,
        "default_locale": spec.default_locale,
        "locales": list(spec.locales),
        "question": dict(spec.question),
        "privacy_notice": dict(spec.privacy_notice),
        "settings": spec.settings.model_dump(mode="json"),
        "profile_questions": [q.model_dump(mode="json") for q in spec.profile_questions],
        "starts_at": spec.starts_at,
        "ends_at": spec.ends_at,
    }
    if consultation is None:
        consultation = Consultation(slug=spec.slug, created_at=now, updated_at=now, **fields)
        session.add(consultation)
        await session.flush()
    else:
        changed = {k: v for k, v in fields.items() if getattr(consultation, k) != v}
        for name, value in changed.items():
            setattr(consultation, name, value)
        if changed:
            consultation.updated_at = now
    assert consultation.id is not None
    await _upsert_seed_proposals(session, consultation.id, spec.proposals, now)
    return consultation, created


async def _upsert_seed_proposals(
    session: AsyncSession, consultation_id: int, seeds: list[SeedProposal], now: datetime
) -> None:
    found = await session.exec(
        select(Proposal).where(
            Proposal.consultation_id == consultation_id, col(Proposal.ref).is_not(None)
        )
    )
    existing = {p.ref: p for p in found}
    for seed in seeds:
        for lang, text in seed.text.items():
            ref = f"{seed.ref}.{lang}"
            proposal = existing.get(ref)
            if proposal is None:
                seeded = Proposal(
                    consultation_id=consultation_id,
                    ref=ref,
                    locale=lang,
                    text=text,
                    status=ProposalStatus.ACCEPTED,
                    created_at=now,
                    updated_at=now,
                )
                await add_proposal(session, seeded)
            elif proposal.text != text:
                proposal.text = text
                proposal.updated_at = now

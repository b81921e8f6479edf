"""The broadcasts API: a consultation's broadcasts, composing one (its texts per locale, its
audience, when), its stats, pausing, resuming and cancelling it, and the audience's size as the
console's live count asks for it. Each route is one `core.broadcasts` call; administrators
write, moderators and analysts read (moderators may also send a test message to their own
address). Nothing here names a recipient: counts and our ids only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from bots.api.deps import (
    ApiProblem,
    NowDep,
    OrganiserDep,
    RuntimeDep,
    TranslatorDep,
    consultation_for,
    require,
)
from bots.api.schemas import refusals
from bots.bootstrap import Runtime
from bots.broadcast_input import (
    Composed,
    Invalid,
    check_audience,
    check_message,
    compose,
    first_moment,
    preview_of,
)
from bots.broadcast_preview import telegram_stars
from bots.broadcast_test import check_locale, parse_to, send_test
from bots.scheduler import next_fire
from core.broadcasts.audience import AudienceExpr, audience_size
from core.broadcasts.control import BroadcastStateError, cancel, pause, resume
from core.broadcasts.planning import ScheduleError, create_broadcast
from core.broadcasts.stats import broadcast_stats, list_broadcasts
from core.i18n import Translator
from core.ids import ID_MAX
from core.models import Broadcast, Consultation
from core.moderation import Actor, Source
from core.organisers import OrganiserView, Permission

TEXT_MAX = 4096  # the strictest channel's limit; the core says which locale is too long
AUDIENCE_MAX = 2000  # the column's size

_REFUSALS: dict[int, str] = {
    401: "No token, or an unknown or revoked one",
    403: "The token's organiser has no such role on this consultation",
    404: "Unknown consultation or broadcast",
    409: "A change the broadcast's state does not allow (resume a running one, cancel twice)",
    422: "A field to fix: `field` names it, `position` (audience) where its fault is",
}
BroadcastPath = Path(ge=1, le=ID_MAX)


def _responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return refusals(_REFUSALS, *statuses)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is said, not ignored


class MessageBody(_Body):
    text: dict[str, Annotated[str, Field(max_length=TEXT_MAX)]] = Field(
        description="the text per locale; the consultation's default locale is required, "
        "others fall back to it"
    )
    button: bool = Field(default=False, description="a button opening the consultation")
    template: str | None = Field(
        default=None,
        max_length=512,
        description="a WhatsApp template of the consultation's registry, for recipients "
        "outside the 24-hour window",
    )
    audience: str = Field(default="all", max_length=AUDIENCE_MAX, description="see the README")


class BroadcastCreate(MessageBody):
    at: datetime | Literal["now"] = Field(
        default="now",
        description="the first (or only) sending; a time without a zone is in the "
        "consultation's time zone",
    )
    every: str | None = Field(
        default=None, max_length=120, description="a cron expression in the consultation's zone"
    )
    paid: bool = Field(default=False, description="Telegram's paid broadcasts (faster, in Stars)")


class AudienceBody(_Body):
    audience: str = Field(max_length=AUDIENCE_MAX)


class OutsidePublic(BaseModel):
    kind: str = Field(description="slack-members, whatsapp-list or telegram-post")
    name: str | None


class AudiencePublic(BaseModel):
    """How many an expression reaches now; people outside the consultation (a Slack
    workspace, a Telegram channel's post) are counted when it is sent."""

    total: int
    by_channel: dict[str, int]
    by_locale: dict[str, int]
    outside: OutsidePublic | None


class PreviewBody(MessageBody):
    paid: bool = Field(default=False, description="say what a paid Telegram broadcast costs")


class RenderedPublic(BaseModel):
    text: str
    buttons: list[str]


class PreviewPublic(BaseModel):
    texts: dict[str, str] = Field(description="what each locale's recipients read")
    button: bool
    template: str | None
    audience: AudiencePublic
    channels: dict[str, dict[str, RenderedPublic]] = Field(
        description="locale -> channel -> what that channel shows, where it differs"
    )
    telegram_stars: float | None = Field(
        description="with `paid`: what a paid Telegram broadcast to this audience costs at most"
    )


class TestBody(_Body):
    text: dict[str, Annotated[str, Field(max_length=TEXT_MAX)]] = Field(
        description="the text per locale, as for a broadcast"
    )
    button: bool = Field(default=False, description="a button opening the consultation")
    template: str | None = Field(default=None, max_length=512, description="a WhatsApp template")
    # Any, read by `parse_to`: pydantic's own 422 would quote a malformed address back.
    to: Any = Field(
        json_schema_extra={"type": "string"},
        description="your own address: telegram:CHAT_ID, whatsapp:+33..., slack:U0... "
        "(never stored, logged or answered back)",
    )
    locale: str | None = Field(
        default=None, max_length=35, description="read as recipients in this locale read it"
    )


class TestPublic(BaseModel):
    """What became of a test message (its address is never said back)."""

    outcome: str = Field(description="sent, refused, unreachable, retry, unknown, needs-template")
    sent: bool
    said: str = Field(description="what became of it, in words")
    channel: str
    locale: str


class BroadcastPublic(BaseModel):
    id: int
    consultation: str
    kind: str
    state: str
    audience: str
    texts: dict[str, str]
    button: bool
    first_at: datetime
    every: str | None
    next_run_at: datetime | None
    counts: dict[str, int] = Field(description="messages by state, over every occurrence")


class StatsPublic(BaseModel):
    queued: int
    claimed: int
    sent: int
    failed: int
    blocked: int = Field(description="recipients who blocked the bot or left")
    unknown: int = Field(description="may have reached the platform before a crash; not resent")
    waiting: int
    cancelled: int
    skipped: dict[str, int] = Field(description="why -> how many were not written to")
    came_back: int = Field(description="recipients who voted or proposed within 24 h")
    by_channel: dict[str, dict[str, int]]


class BroadcastDetail(BroadcastPublic):
    stats: StatsPublic


def _field_problem(t: Translator, field: str, error: Invalid) -> ApiProblem:
    """A 422 naming the field and saying what to fix, with the core's message id for scripts."""
    extra: dict[str, Any] = {"field": field, "problem": error.msgid}
    if error.position is not None:
        extra["position"] = error.position
    said = t(error.msgid, **error.values)
    return ApiProblem(422, "api.broadcast.invalid", extra, field=field, problem=said)


def _public(view: Any, slug: str) -> BroadcastPublic:
    return BroadcastPublic(
        id=view.id,
        consultation=slug,
        kind=view.kind,
        state=view.state,
        audience=view.audience,
        texts=dict(view.texts),
        button=bool(getattr(view, "button", False)),
        first_at=view.first_at,
        every=view.every,
        next_run_at=view.next_run_at,
        counts=dict(view.counts),
    )


def _stats(stats: Any) -> StatsPublic:
    return StatsPublic.model_validate(stats, from_attributes=True)


async def _broadcast_of(
    rt: Runtime, organiser: OrganiserView, broadcast_id: int, permission: Permission
) -> tuple[Broadcast, Consultation]:
    """The broadcast and its consultation, if the organiser has `permission` on it (404, 403)."""
    async with rt.sessions() as session:
        broadcast = await session.get(Broadcast, broadcast_id)
        consultation = (
            await session.get(Consultation, broadcast.consultation_id) if broadcast else None
        )
    if broadcast is None or consultation is None:
        raise ApiProblem(404, "api.unknown_broadcast", id=broadcast_id)
    require(organiser, permission, broadcast.consultation_id)
    return broadcast, consultation


async def _size(
    rt: Runtime, consultation: Consultation, expression: AudienceExpr, now: datetime
) -> Any:
    async with rt.sessions() as session:
        return await audience_size(session, consultation, expression, now)


def audience_public(size: Any) -> AudiencePublic:
    outside = size.outside
    return AudiencePublic(
        total=size.total,
        by_channel=dict(size.by_channel),
        by_locale=dict(size.by_locale),
        outside=OutsidePublic(kind=outside.kind, name=outside.name) if outside else None,
    )


def broadcasts_router() -> APIRouter:
    """`/api/consultations/{slug}/broadcasts`, `.../audience`, `/api/broadcasts/{id}/...`."""
    router = APIRouter(prefix="/api", tags=["broadcasts"])

    @router.get(
        "/consultations/{slug}/broadcasts",
        response_model=list[BroadcastPublic],
        responses=_responses(401, 403, 404),
    )
    async def broadcasts(slug: str, rt: RuntimeDep, organiser: OrganiserDep) -> Any:
        """The consultation's broadcasts, with their state and messages by state."""
        consultation = await consultation_for(rt, organiser, slug, Permission.READ)
        assert consultation.id is not None
        async with rt.sessions() as session:
            views = await list_broadcasts(session, consultation.id)
        return [_public(view, consultation.slug) for view in views]

    @router.post(
        "/consultations/{slug}/broadcasts",
        status_code=201,
        response_model=BroadcastPublic,
        responses=_responses(401, 403, 404, 422),
    )
    async def create(
        slug: str,
        body: BroadcastCreate,
        rt: RuntimeDep,
        t: TranslatorDep,
        now: NowDep,
        organiser: OrganiserDep,
    ) -> Any:
        """Schedule a broadcast: at once (`at: "now"`), at a time, or every time a cron
        expression fires from then on. 422 names the field to fix."""
        consultation = await consultation_for(rt, organiser, slug, Permission.ADMINISTER)
        try:
            composed = compose(consultation, body.text, body.button, body.template, body.audience)
            first_at = first_moment(consultation, body.at, now)
        except Invalid as error:
            raise _field_problem(t, error.field, error) from None
        broadcast = await _create(rt, t, consultation, composed, first_at, body, organiser, now)
        async with rt.sessions() as session:
            views = await list_broadcasts(session, broadcast.consultation_id)
        view = next(v for v in views if v.id == broadcast.id)
        return _public(view, consultation.slug)

    @router.get(
        "/broadcasts/{broadcast_id}",
        response_model=BroadcastDetail,
        responses=_responses(401, 403, 404, 422),
    )
    async def show(
        broadcast_id: Annotated[int, BroadcastPath],
        rt: RuntimeDep,
        now: NowDep,
        organiser: OrganiserDep,
    ) -> Any:
        """A broadcast and its stats: messages by state and channel, skipped recipients by
        reason, and how many came back within 24 h. Counts only."""
        broadcast, consultation = await _broadcast_of(rt, organiser, broadcast_id, Permission.READ)
        async with rt.sessions() as session:
            views = await list_broadcasts(session, broadcast.consultation_id)
            stats = await broadcast_stats(session, broadcast_id, now)
        view = next(v for v in views if v.id == broadcast_id)
        public = _public(view, consultation.slug)
        return BroadcastDetail(**public.model_dump(), stats=_stats(stats))

    for name, change, summary in (
        ("pause", pause, "Send nothing more until resumed."),
        ("resume", resume, "Send again what a pause held back."),
        ("cancel", cancel, "Stop for good: its queued messages are never sent."),
    ):
        _add_change(router, name, change, summary)

    @router.post(
        "/consultations/{slug}/audience",
        response_model=AudiencePublic,
        responses=_responses(401, 403, 404, 422),
    )
    async def audience(
        slug: str,
        body: AudienceBody,
        rt: RuntimeDep,
        t: TranslatorDep,
        now: NowDep,
        organiser: OrganiserDep,
    ) -> Any:
        """How many an audience expression reaches now, by channel and locale."""
        consultation = await consultation_for(rt, organiser, slug, Permission.READ)
        try:
            expression = check_audience(consultation, body.audience)
        except Invalid as error:
            raise _field_problem(t, error.field, error) from None
        return audience_public(await _size(rt, consultation, expression, now))

    @router.post(
        "/consultations/{slug}/broadcasts/preview",
        response_model=PreviewPublic,
        responses=_responses(401, 403, 404, 422),
    )
    async def preview(
        slug: str,
        body: PreviewBody,
        request: Request,
        rt: RuntimeDep,
        t: TranslatorDep,
        now: NowDep,
        organiser: OrganiserDep,
    ) -> Any:
        """What each locale's recipients would read, as their channels show it, how many
        there are, and what a paid Telegram broadcast costs; nothing is written."""
        consultation = await consultation_for(rt, organiser, slug, Permission.READ)
        try:
            composed = compose(consultation, body.text, body.button, body.template, body.audience)
        except Invalid as error:
            raise _field_problem(t, error.field, error) from None
        size = await _size(rt, consultation, composed.expression, now)
        content = composed.content
        previews = preview_of(consultation, content, list(size.by_channel))
        telegram = size.by_channel.get("telegram", 0)
        per_second = request.app.state.api_settings.telegram_paid_broadcast_per_second
        return PreviewPublic(
            texts={shown.locale: shown.text for shown in previews},
            button=content.button,
            template=content.template,
            audience=audience_public(size),
            channels={
                shown.locale: {
                    channel: RenderedPublic(text=seen, buttons=buttons)
                    for channel, (seen, buttons) in shown.channels.items()
                }
                for shown in previews
            },
            telegram_stars=telegram_stars(telegram, per_second) if body.paid else None,
        )

    @router.post(
        "/consultations/{slug}/broadcasts/test",
        response_model=TestPublic,
        responses=_responses(401, 403, 404, 422),
    )
    async def send_test_message(
        slug: str,
        body: TestBody,
        request: Request,
        rt: RuntimeDep,
        t: TranslatorDep,
        organiser: OrganiserDep,
    ) -> Any:
        """Send the message being composed, at once, to the organiser's own address on one
        channel, as recipients in `locale` get it; what became of it. Nothing is queued."""
        consultation = await consultation_for(rt, organiser, slug, Permission.MODERATE)
        try:
            to = parse_to(body.to)
            content = check_message(consultation, body.text, body.button, body.template)
            locale = check_locale(consultation, body.locale)
            settings = request.app.state.api_settings
            actor = Actor(organiser.email, Source.API)
            outcome = await send_test(rt, settings, consultation, content, to, locale, actor)
        except Invalid as error:
            raise _field_problem(t, error.field, error) from None
        return TestPublic(
            outcome=outcome.handover.value,
            sent=outcome.sent,
            said=t(outcome.msgid, **outcome.values),
            channel=outcome.channel,
            locale=outcome.locale,
        )

    return router


async def _create(
    rt: Runtime,
    t: Translator,
    consultation: Consultation,
    composed: Composed,
    first_at: datetime,
    body: BroadcastCreate,
    organiser: OrganiserView,
    now: datetime,
) -> Broadcast:
    try:
        async with rt.sessions() as session, session.begin():
            return await create_broadcast(
                session,
                consultation,
                composed.content,
                composed.audience,
                first_at,
                body.every,
                next_fire,
                Actor(organiser.email, Source.API),
                now,
                paid=body.paid,
            )
    except ScheduleError as error:
        # a cron that does not parse or never fires is `every`'s fault; the past is `at`'s
        field = "every" if "every" in error.msgid else "at"
        raise _field_problem(t, field, Invalid.of(field, error)) from None


def _add_change(router: APIRouter, name: str, change: Any, summary: str) -> None:
    async def route(
        broadcast_id: Annotated[int, BroadcastPath],
        rt: RuntimeDep,
        t: TranslatorDep,
        now: NowDep,
        organiser: OrganiserDep,
    ) -> Any:
        _, consultation = await _broadcast_of(rt, organiser, broadcast_id, Permission.ADMINISTER)
        try:
            async with rt.sessions() as session, session.begin():
                await change(session, broadcast_id, Actor(organiser.email, Source.API), now)
        except BroadcastStateError as error:
            values = dict(getattr(error, "values", None) or {})
            raise ApiProblem(409, error.msgid, {"problem": error.msgid}, **values) from None
        async with rt.sessions() as session:
            views = await list_broadcasts(session, consultation.id or 0)
        return _public(next(v for v in views if v.id == broadcast_id), consultation.slug)

    router.add_api_route(
        f"/broadcasts/{{broadcast_id}}/{name}",
        route,
        methods=["POST"],
        name=name,
        summary=summary,
        response_model=BroadcastPublic,
        responses=_responses(401, 403, 404, 409, 422),
    )

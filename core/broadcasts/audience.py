"""Who a broadcast reaches: an audience expression, parsed, checked and compiled to one SELECT.

Grammar (keywords in any case; a term is written without spaces)::

    expression := either ("or" either)*
    either     := unary ("and" unary)*
    unary      := "not" unary | "(" expression ")" | term
    term       := all | channel:NAME | locale:CODE | source:NAME | profile.QUESTION:OPTION
                | votes<N | votes<=N | votes>N | votes>=N | votes=N
                | proposed | accepted | top | unfinished
                | inactive-since:YYYY-MM-DD | joined-since:YYYY-MM-DD | joined-within:Nd (h, w)
                | slack:members | slack:channel:ID | whatsapp:list:NAME | telegram:post:@NAME

An expression is either filters on the consultation's participants, or one outside target
alone (people the bot has not met: it cannot be combined with anything). Dates are days in the
consultation's time zone (`settings.broadcasts.time_zone`); `joined-within` counts back from
the occurrence's time. The participants' terms compile to a WHERE over `Participation`
(`participant_recipients`): one statement whatever the audience's size, fit for
`INSERT ... FROM SELECT`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, case, exists, false, func, not_, or_, true
from sqlalchemy import select as rows_of
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from core.definitions import profile_questions_of, settings_of
from core.i18n import Translator
from core.models import (
    ChannelIdentity,
    Consultation,
    Contact,
    Participant,
    Participation,
    Proposal,
    ProposalStatus,
    Vote,
)

MAX_LENGTH = 2000  # Broadcast.audience's column
MAX_DEPTH = 40  # parentheses and "not"s nested: deeper is surely a mistake (and would recurse)
TOP_SIZE = 10  # `top`: the authors of the consultation's first ten consensus proposals
CHANNELS = ("telegram", "whatsapp", "slack", "terminal")
# A participant in the middle of a sequence of cards (core.conversation.cards) is on one of
# these steps: `unfinished` is one who left it there.
SEQUENCE_STEPS = ("card", "qualify")

# Every msgid an AudienceError can carry (tests check both catalogues hold them).
MSGIDS = (
    "broadcast.audience.empty",
    "broadcast.audience.too_long",
    "broadcast.audience.too_deep",
    "broadcast.audience.unexpected",
    "broadcast.audience.missing_term",
    "broadcast.audience.unclosed",
    "broadcast.audience.unopened",
    "broadcast.audience.trailing",
    "broadcast.audience.unknown_term",
    "broadcast.audience.bad_value",
    "broadcast.audience.bad_count",
    "broadcast.audience.bad_date",
    "broadcast.audience.bad_duration",
    "broadcast.audience.outside_alone",
    "broadcast.audience.unknown_channel",
    "broadcast.audience.unknown_locale",
    "broadcast.audience.unknown_question",
    "broadcast.audience.unknown_option",
)


class AudienceError(ValueError):
    """An audience expression that cannot be used: `msgid` says what to fix (with `values`),
    `position` is the 1-based column of the fault in the text (None: the whole expression)."""

    def __init__(self, msgid: str, position: int | None = None, **values: Any) -> None:
        self.msgid = msgid
        self.position = position
        self.values: dict[str, Any] = {"column": position or 0, **values}
        super().__init__(Translator("en")(msgid, **self.values))


# -- the expression's tree ---------------------------------------------------------------------


@dataclass(frozen=True)
class All:
    """Every participant who consented and did not unsubscribe."""


@dataclass(frozen=True)
class ChannelIs:
    channel: str


@dataclass(frozen=True)
class LocaleIs:
    locale: str


@dataclass(frozen=True)
class SourceIs:
    source: str


@dataclass(frozen=True)
class ProfileIs:
    question: str
    option: str


COMPARISONS = ("<=", ">=", "<", ">", "=")


@dataclass(frozen=True)
class Votes:
    """How many votes the participant cast in the consultation, compared with `count`."""

    op: Literal["<", "<=", ">", ">=", "="]
    count: int


@dataclass(frozen=True)
class Proposed:
    """Wrote at least one proposal (whatever became of it)."""


@dataclass(frozen=True)
class Accepted:
    """Wrote a proposal that moderation accepted."""


@dataclass(frozen=True)
class Top:
    """Wrote one of the consultation's top consensus proposals (`resolve_audience` fills
    `proposals` with their ids from the report's scoring; not part of the expression's text)."""

    proposals: tuple[int, ...] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Unfinished:
    """Left a sequence of cards before its end (their conversation is still on a card)."""


@dataclass(frozen=True)
class InactiveSince:
    """No vote and no proposal in the consultation since the start of `day`."""

    day: date


@dataclass(frozen=True)
class JoinedSince:
    day: date


@dataclass(frozen=True)
class JoinedWithin:
    """Joined within `span` before the occurrence's time; `text` is how it was written."""

    span: timedelta
    text: str = field(compare=False)


@dataclass(frozen=True)
class Outside:
    """People the bot has not met: a Slack workspace (`name` None) or channel (its id), a
    WhatsApp list of imported contacts, or a post in a Telegram channel ("@name" or an id)."""

    kind: Literal["slack-members", "whatsapp-list", "telegram-post"]
    name: str | None


@dataclass(frozen=True)
class Not:
    item: AudienceExpr


@dataclass(frozen=True)
class And:
    items: tuple[AudienceExpr, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[AudienceExpr, ...]


Term = (
    All
    | ChannelIs
    | LocaleIs
    | SourceIs
    | ProfileIs
    | Votes
    | Proposed
    | Accepted
    | Top
    | Unfinished
    | InactiveSince
    | JoinedSince
    | JoinedWithin
    | Outside
)
AudienceExpr = Term | Not | And | Or


# -- text -> tree --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    text: str
    column: int  # 1-based


_TOKEN = re.compile(r"[()]|[^\s()]+")


def _tokens(text: str) -> list[_Token]:
    return [_Token(m.group(), m.start() + 1) for m in _TOKEN.finditer(text)]


_KEYWORDS = {"and", "or", "not"}
_BARE: dict[str, Term] = {
    "all": All(),
    "proposed": Proposed(),
    "accepted": Accepted(),
    "top": Top(),
    "unfinished": Unfinished(),
}
_VOTES = re.compile(r"votes(<=|>=|<|>|=)(.*)", re.IGNORECASE)
_DAYS = re.compile(r"([0-9]{1,4})([dhw])")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_CHANNEL_ID = re.compile(r"[A-Z0-9]{2,32}")
_POST = re.compile(r"@[A-Za-z0-9_]{4,64}|-100[0-9]{1,20}")


def _day(token: _Token, value: str) -> date:
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise AudienceError("broadcast.audience.bad_date", token.column, token=token.text) from None


def _named(token: _Token, value: str, pattern: re.Pattern[str] = _NAME) -> str:
    if not pattern.fullmatch(value):
        raise AudienceError("broadcast.audience.bad_value", token.column, token=token.text)
    return value


def _term(token: _Token) -> Term:
    """One term from its token (AudienceError naming it if it is none)."""
    text = token.text
    lower = text.lower()
    if lower in _BARE:
        return _BARE[lower]
    if lower == "slack:members":
        return Outside("slack-members", None)
    votes = _VOTES.fullmatch(text)
    if votes:
        if not re.fullmatch(r"[0-9]{1,9}", votes.group(2)):
            raise AudienceError("broadcast.audience.bad_count", token.column, token=text)
        op: Any = votes.group(1)
        return Votes(op, int(votes.group(2)))
    head, colon, value = text.partition(":")
    head = head.lower()
    if colon and head.startswith("profile.") and len(head) > len("profile."):
        question = text[len("profile.") : len(head)]
        return ProfileIs(_named(token, question), _named(token, value))
    if colon:
        if head == "channel":
            return ChannelIs(_named(token, value.lower()))
        if head == "locale":
            return LocaleIs(_named(token, value))
        if head == "source":
            return SourceIs(_named(token, value))
        if head in ("inactive-since", "joined-since"):
            day = _day(token, value)
            return InactiveSince(day) if head == "inactive-since" else JoinedSince(day)
        if head == "joined-within":
            found = _DAYS.fullmatch(value.lower())
            if not found or int(found.group(1)) == 0:
                raise AudienceError("broadcast.audience.bad_duration", token.column, token=text)
            unit = {"h": "hours", "d": "days", "w": "weeks"}[found.group(2)]
            return JoinedWithin(timedelta(**{unit: int(found.group(1))}), value.lower())
        kind, _, name = value.partition(":")
        if head == "slack" and kind.lower() == "channel":
            return Outside("slack-members", _named(token, name, _CHANNEL_ID))
        if head == "whatsapp" and kind.lower() == "list":
            return Outside("whatsapp-list", _named(token, name))
        if head == "telegram" and kind.lower() == "post":
            return Outside("telegram-post", _named(token, name, _POST))
    raise AudienceError("broadcast.audience.unknown_term", token.column, token=text)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0
        self.depth = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token.text.lower() == word:
            self.at += 1
            return True
        return False

    def end_column(self) -> int:
        return len(self.text.rstrip()) + 1

    def expression(self) -> AudienceExpr:
        items = [self.either()]
        while self.keyword("or"):
            items.append(self.either())
        return _joined(Or, items)

    def either(self) -> AudienceExpr:
        items = [self.unary()]
        while self.keyword("and"):
            items.append(self.unary())
        return _joined(And, items)

    def unary(self) -> AudienceExpr:
        token = self.peek()
        if token is None:
            raise AudienceError("broadcast.audience.missing_term", self.end_column())
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise AudienceError("broadcast.audience.too_deep", token.column, limit=MAX_DEPTH)
        try:
            return self._unary(token)
        finally:
            self.depth -= 1

    def _unary(self, token: _Token) -> AudienceExpr:
        if self.keyword("not"):
            return Not(self.unary())
        if token.text == "(":
            self.at += 1
            inner = self.expression()
            if not self.keyword(")"):
                raise AudienceError("broadcast.audience.unclosed", token.column)
            return inner
        if token.text == ")" or token.text.lower() in _KEYWORDS:
            raise AudienceError("broadcast.audience.unexpected", token.column, token=token.text)
        self.at += 1
        return _term(token)


def _joined(kind: type[And] | type[Or], items: list[AudienceExpr]) -> AudienceExpr:
    """One item alone, else the n-ary node, nested nodes of the same kind flattened (so that
    `a and (b and c)` and `a and b and c` are one tree)."""
    if len(items) == 1:
        return items[0]
    flat: list[AudienceExpr] = []
    for item in items:
        flat.extend(item.items if isinstance(item, kind) else (item,))
    return kind(tuple(flat))


def parse_audience(text: str) -> AudienceExpr:
    """The expression's tree; AudienceError naming the fault, its column and token otherwise.

    An outside target must stand alone (`outside_target` then gives it)."""
    if len(text) > MAX_LENGTH:
        raise AudienceError("broadcast.audience.too_long", None, limit=MAX_LENGTH)
    parser = _Parser(text)
    if not parser.tokens:
        raise AudienceError("broadcast.audience.empty")
    expr = parser.expression()
    left = parser.peek()
    if left is not None:
        if left.text == ")":
            raise AudienceError("broadcast.audience.unopened", left.column)
        raise AudienceError("broadcast.audience.trailing", left.column, token=left.text)
    if not isinstance(expr, Outside) and any(isinstance(t, Outside) for t in _terms(expr)):
        column = next(
            t.column for t in parser.tokens if ":" in t.text and isinstance(_safe(t), Outside)
        )
        raise AudienceError("broadcast.audience.outside_alone", column)
    return expr


def _safe(token: _Token) -> Term | None:
    try:
        return _term(token)
    except AudienceError:
        return None


def _terms(expr: AudienceExpr) -> Iterator[Term]:
    if isinstance(expr, And | Or):
        for item in expr.items:
            yield from _terms(item)
    elif isinstance(expr, Not):
        yield from _terms(expr.item)
    else:
        yield expr


def outside_target(expr: AudienceExpr) -> Outside | None:
    """The outside target the expression names (it then names nothing else), else None."""
    return expr if isinstance(expr, Outside) else None


# -- tree -> text --------------------------------------------------------------------------------


def format_audience(expr: AudienceExpr) -> str:
    """The expression's text, with no more parentheses than needed: parse_audience gives the
    same tree back."""
    if isinstance(expr, Or):
        return " or ".join(format_audience(item) for item in expr.items)
    if isinstance(expr, And):
        return " and ".join(_wrapped(item, Or) for item in expr.items)
    if isinstance(expr, Not):
        return "not " + _wrapped(expr.item, And | Or)
    return _term_text(expr)


def _wrapped(expr: AudienceExpr, kinds: Any) -> str:
    text = format_audience(expr)
    return f"({text})" if isinstance(expr, kinds) else text


def _term_text(term: Term) -> str:
    match term:
        case All():
            return "all"
        case ChannelIs(channel):
            return f"channel:{channel}"
        case LocaleIs(locale):
            return f"locale:{locale}"
        case SourceIs(source):
            return f"source:{source}"
        case ProfileIs(question, option):
            return f"profile.{question}:{option}"
        case Votes(op, count):
            return f"votes{op}{count}"
        case Proposed():
            return "proposed"
        case Accepted():
            return "accepted"
        case Top():
            return "top"
        case Unfinished():
            return "unfinished"
        case InactiveSince(day):
            return f"inactive-since:{day.isoformat()}"
        case JoinedSince(day):
            return f"joined-since:{day.isoformat()}"
        case JoinedWithin(_, text):
            return f"joined-within:{text}"
        case Outside("slack-members", None):
            return "slack:members"
        case Outside("slack-members", name):
            return f"slack:channel:{name}"
        case Outside("whatsapp-list", name):
            return f"whatsapp:list:{name}"
        case Outside(_, name):
            return f"telegram:post:{name}"
    raise AssertionError(term)  # pragma: no cover


# -- checked against the consultation ------------------------------------------------------------


def validate_audience(consultation: Consultation, expr: AudienceExpr) -> None:
    """AudienceError for a channel, locale, profile question or option the consultation does
    not have (each names the valid ones)."""
    questions = {q.id: q for q in profile_questions_of(consultation)}
    for term in _terms(expr):
        if isinstance(term, ChannelIs) and term.channel not in CHANNELS:
            raise AudienceError(
                "broadcast.audience.unknown_channel",
                channel=term.channel,
                valid=", ".join(CHANNELS),
            )
        if isinstance(term, LocaleIs) and term.locale not in consultation.locales:
            raise AudienceError(
                "broadcast.audience.unknown_locale",
                locale=term.locale,
                valid=", ".join(consultation.locales),
            )
        if isinstance(term, ProfileIs):
            question = questions.get(term.question)
            if question is None:
                raise AudienceError(
                    "broadcast.audience.unknown_question",
                    question=term.question,
                    valid=", ".join(questions) or "-",
                )
            options = [option.id for option in question.options]
            if term.option not in options:
                raise AudienceError(
                    "broadcast.audience.unknown_option",
                    question=term.question,
                    option=term.option,
                    valid=", ".join(options),
                )


async def resolve_audience(
    session: AsyncSession, consultation: Consultation, expr: AudienceExpr, now: datetime
) -> AudienceExpr:
    """The expression with `top` bound to the ids of the consultation's top consensus
    proposals as the report ranks them (`core.report`, at most TOP_SIZE ideas, each with its
    translations). Call it before `participant_recipients` when the expression has `top`."""
    if not any(isinstance(term, Top) for term in _terms(expr)):
        return expr
    from core.report import consultation_report  # the report reads the whole consultation

    report = await consultation_report(
        session, consultation, locale=consultation.default_locale, now=now
    )
    chosen = set(report.consensus[:TOP_SIZE])
    connection = await session.connection()
    found = await connection.execute(
        rows_of(col(Proposal.id), col(Proposal.ref)).where(
            col(Proposal.consultation_id) == consultation.id
        )
    )
    ids = tuple(
        sorted(
            int(pid)
            for pid, ref in found
            if pid is not None
            and (f"#{pid}" in chosen or (ref is not None and _idea(ref, consultation) in chosen))
        )
    )
    return _with_top(expr, ids)


def _idea(ref: str, consultation: Consultation) -> str:
    stem, dot, lang = ref.rpartition(".")
    return stem if dot and lang in consultation.locales else ref


def _with_top(expr: AudienceExpr, ids: tuple[int, ...]) -> AudienceExpr:
    if isinstance(expr, Top):
        return replace(expr, proposals=ids)
    if isinstance(expr, Not):
        return Not(_with_top(expr.item, ids))
    if isinstance(expr, And | Or):
        return type(expr)(tuple(_with_top(item, ids) for item in expr.items))
    return expr


# -- tree -> SQL ---------------------------------------------------------------------------------


def _day_start(day: date, consultation: Consultation) -> datetime:
    zone = ZoneInfo(settings_of(consultation).broadcasts.time_zone)
    return datetime.combine(day, time(0, 0), tzinfo=zone)


def _locale_of(consultation: Consultation) -> ColumnElement[str]:
    """The participant's locale if the consultation speaks it, else its default."""
    return case(
        (col(Participant.locale).in_(consultation.locales), col(Participant.locale)),
        else_=consultation.default_locale,
    )


def _authored(consultation_id: int, *where: ColumnElement[bool]) -> ColumnElement[bool]:
    return exists().where(
        col(Proposal.author_id) == col(Participation.participant_id),
        col(Proposal.consultation_id) == consultation_id,
        *where,
    )


def _votes(consultation_id: int, *where: ColumnElement[bool]) -> list[ColumnElement[bool]]:
    # Vote has no consultation: its proposal says which one.
    return [
        col(Vote.participant_id) == col(Participation.participant_id),
        col(Proposal.id) == col(Vote.proposal_id),
        col(Proposal.consultation_id) == consultation_id,
        *where,
    ]


def _condition(
    expr: AudienceExpr, consultation: Consultation, now: datetime
) -> ColumnElement[bool]:
    cid = consultation.id
    assert cid is not None
    match expr:
        case Or(items):
            return or_(*(_condition(item, consultation, now) for item in items))
        case And(items):
            return and_(*(_condition(item, consultation, now) for item in items))
        case Not(item):
            return not_(_condition(item, consultation, now))
        case All():
            return true()
        case ChannelIs(channel):
            return col(ChannelIdentity.channel) == channel
        case LocaleIs(locale):
            return _locale_of(consultation) == locale
        case SourceIs(source):
            # coalesce: a NULL would make `not source:x` leave out those without a source
            return func.coalesce(col(Participation.source), "") == source
        case ProfileIs(question, option):
            answer: ColumnElement[str] = col(Participation.profile)[question].as_string()
            return func.coalesce(answer, "") == option
        case Votes(op, count):
            cast = rows_of(func.count(col(Vote.id))).where(*_votes(cid)).scalar_subquery()
            return {
                "<": cast < count,
                "<=": cast <= count,
                ">": cast > count,
                ">=": cast >= count,
                "=": cast == count,
            }[op]
        case Proposed():
            return _authored(cid)
        case Accepted():
            return _authored(cid, col(Proposal.status) == ProposalStatus.ACCEPTED)
        case Top(proposals):
            return _top(cid, consultation, proposals)
        case Unfinished():
            return and_(
                col(Participant.current_consultation_id) == cid,
                col(Participant.step).in_(SEQUENCE_STEPS),
            )
        case InactiveSince(day):
            since = _day_start(day, consultation)
            voted = exists().where(*_votes(cid, col(Vote.updated_at) >= since))
            return and_(not_(voted), not_(_authored(cid, col(Proposal.created_at) >= since)))
        case JoinedSince(day):
            return col(Participation.created_at) >= _day_start(day, consultation)
        case JoinedWithin(span, _):
            return col(Participation.created_at) >= now - span
        case Outside():
            return false()
    raise AssertionError(expr)  # pragma: no cover


def _top(
    cid: int, consultation: Consultation, proposals: tuple[int, ...] | None
) -> ColumnElement[bool]:
    if proposals is not None:
        if not proposals:
            return false()
        return _authored(cid, col(Proposal.id).in_(proposals))
    # Not resolved (see resolve_audience): the consensus ranking sequencing keeps on each
    # proposal (`agree_score`, core.scoring.contender_scores), among those above the
    # consultation's consensus threshold.
    strong = settings_of(consultation).zones.strong
    leaders = (
        rows_of(col(Proposal.id))
        .where(
            col(Proposal.consultation_id) == cid,
            col(Proposal.status) == ProposalStatus.ACCEPTED,
            col(Proposal.agree_score) >= strong,
        )
        .order_by(col(Proposal.agree_score).desc(), col(Proposal.id))
        .limit(TOP_SIZE)
    )
    return _authored(cid, col(Proposal.id).in_(leaders.scalar_subquery()))


def participant_recipients(
    consultation: Consultation, expr: AudienceExpr, now: datetime
) -> Select[Any, Any, Any]:
    """SELECT (participant_id, channel, locale), one row per participant of the consultation
    the expression selects, among those who consented, are subscribed and were not forgotten,
    written to on their first reachable channel identity (lowest id with an address, not
    unreachable); `locale` is theirs if the consultation speaks it, else its default.

    One statement, usable in INSERT ... FROM SELECT. An outside target selects nobody here.
    """
    assert consultation.id is not None
    first_identity = (
        rows_of(func.min(col(ChannelIdentity.id)))
        .where(
            col(ChannelIdentity.participant_id) == col(Participation.participant_id),
            col(ChannelIdentity.address).is_not(None),
            col(ChannelIdentity.unreachable_at).is_(None),
        )
        .correlate(Participation)
        .scalar_subquery()
    )
    return (
        rows_of(
            col(Participation.participant_id).label("participant_id"),
            col(ChannelIdentity.channel).label("channel"),
            _locale_of(consultation).label("locale"),
        )
        .select_from(Participation)
        .join(Participant, col(Participant.id) == col(Participation.participant_id))
        .join(ChannelIdentity, col(ChannelIdentity.id) == first_identity)
        .where(
            col(Participation.consultation_id) == consultation.id,
            col(Participation.consented_at).is_not(None),
            col(Participation.subscribed).is_(True),
            col(Participant.forgotten_at).is_(None),
            _condition(expr, consultation, now),
        )
    )


@dataclass(frozen=True)
class AudienceSize:
    """How many an expression reaches now, by channel and locale; for an outside target,
    `outside` says which (Slack and Telegram posts: the platform knows, total 0 here)."""

    total: int
    by_channel: dict[str, int]
    by_locale: dict[str, int]
    outside: Outside | None


async def audience_size(
    session: AsyncSession, consultation: Consultation, expr: AudienceExpr, now: datetime
) -> AudienceSize:
    """The audience's size (one grouped count, never a row per person)."""
    outside = outside_target(expr)
    if outside is not None:
        if outside.kind != "whatsapp-list":
            return AudienceSize(0, {}, {}, outside)
        locale = case(
            (col(Contact.locale).in_(consultation.locales), col(Contact.locale)),
            else_=consultation.default_locale,
        )
        query: Select[Any] = (
            rows_of(col(Contact.channel), locale, func.count())
            .where(
                col(Contact.consultation_id) == consultation.id,
                col(Contact.list_name) == outside.name,
                col(Contact.opted_in_at).is_not(None),
                col(Contact.unsubscribed_at).is_(None),
            )
            .group_by(col(Contact.channel), locale)
        )
    else:
        expr = await resolve_audience(session, consultation, expr, now)
        chosen = participant_recipients(consultation, expr, now).subquery()
        query = rows_of(chosen.c.channel, chosen.c.locale, func.count()).group_by(
            chosen.c.channel, chosen.c.locale
        )
    by_channel: dict[str, int] = {}
    by_locale: dict[str, int] = {}
    await session.flush()
    connection = await session.connection()
    for channel, locale_, count in (await connection.execute(query)).all():
        by_channel[channel] = by_channel.get(channel, 0) + int(count)
        by_locale[locale_] = by_locale.get(locale_, 0) + int(count)
    return AudienceSize(sum(by_channel.values()), by_channel, by_locale, outside)


__all__: Sequence[str] = (
    "AudienceError",
    "AudienceExpr",
    "AudienceSize",
    "Outside",
    "audience_size",
    "format_audience",
    "outside_target",
    "parse_audience",
    "participant_recipients",
    "resolve_audience",
    "validate_audience",
)

"""An audience expression's text and tree: tokens, a recursive-descent parser, a formatter.

Grammar (keywords in any case; a term is written without spaces)::

    expression := either ("or" either)*
    either     := unary ("and" unary)*
    unary      := "not" unary | "(" expression ")" | term
    term       := all | channel:NAME | locale:CODE | source:NAME | profile.QUESTION:OPTION
                | votes<N | votes<=N | votes>N | votes>=N | votes=N
                | proposed | accepted | top | unfinished
                | inactive-since:YYYY-MM-DD | joined-since:YYYY-MM-DD | joined-within:Nd (h, w)
                | slack:members | slack:channel:ID | whatsapp:list:NAME | telegram:post:@NAME

`and` binds tighter than `or`; nodes of one kind are flattened (`a and (b and c)` is
`a and b and c`), so that `parse_audience(format_audience(e)) == e`. An outside target
(people the bot has not met) must stand alone. Errors carry a msgid, the 1-based column and
the token at fault. What the terms mean, and their checks against a consultation, are in
`core.broadcasts.audience`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

from core.i18n import Translator

MAX_LENGTH = 2000  # Broadcast.audience's column
MAX_DEPTH = 40  # parentheses and "not"s nested: deeper is surely a mistake (and would recurse)

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
    if not isinstance(expr, Outside) and any(isinstance(t, Outside) for t in terms_of(expr)):
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


def terms_of(expr: AudienceExpr) -> Iterator[Term]:
    if isinstance(expr, And | Or):
        for item in expr.items:
            yield from terms_of(item)
    elif isinstance(expr, Not):
        yield from terms_of(expr.item)
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

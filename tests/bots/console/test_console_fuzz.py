"""What the console reads from the network before anything else, fuzzed: the session cookie,
the CSRF token and its cookie, the Accept-Language header. Whatever a browser (or an attacker)
sends, they answer "no session", "invalid" or a language, and never raise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from itsdangerous import URLSafeSerializer

from bots.console.csrf import CsrfSigner
from bots.console.deps import accepted_languages
from bots.console.sessions import SessionSigner, SignedIn

SECRET = b"fuzz-secret"
sessions = SessionSigner(SECRET)
tokens = CsrfSigner(SECRET)
anything = st.one_of(
    st.none(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=50),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
)


@given(st.text(max_size=300))
def test_any_cookie_text_is_no_session_or_a_signed_one(cookie: str) -> None:
    assert sessions.loads(cookie) is None  # nobody can sign without the secret


@given(st.dictionaries(st.sampled_from(["o", "v", "i", "x"]), anything, max_size=4))
def test_a_signed_cookie_of_any_shape_is_read_or_refused(data: dict[str, object]) -> None:
    # As if the secret had leaked, or a former version wrote another shape: never a crash.
    cookie = URLSafeSerializer(SECRET, salt="consult.console.session").dumps(data)
    read = sessions.loads(cookie)
    assert read is None or isinstance(read.organiser_id, int)


@given(st.integers(1, 2**31), st.integers(0, 2**31), st.integers(0, 4_000_000_000))
def test_a_session_cookie_reads_back_what_was_written(
    organiser: int, version: int, at: int
) -> None:
    issued = datetime.fromtimestamp(at, UTC)
    read = sessions.loads(sessions.dumps(SignedIn(organiser, version, issued)))
    assert read == SignedIn(organiser, version, issued)
    assert not read.expired(issued, timedelta(hours=1))
    assert read.expired(issued + timedelta(hours=1), timedelta(hours=1))
    assert read.expired(issued - timedelta(seconds=1), timedelta(hours=1))


@given(st.one_of(st.none(), st.text(max_size=100)), st.one_of(st.none(), st.text(max_size=400)))
def test_a_csrf_token_is_valid_only_for_its_own_cookie(
    cookie: str | None, token: str | None
) -> None:
    assert not tokens.valid(cookie, token)
    pair = tokens.pair(cookie)
    assert tokens.valid(pair.nonce, pair.token)
    assert not tokens.valid(pair.nonce + "x", pair.token)


@given(st.text(max_size=1000))
def test_any_accept_language_header_gives_languages(header: str) -> None:
    ranked = accepted_languages(header)
    assert all(isinstance(tag, str) and tag for tag in ranked)


def test_accept_language_is_ranked_by_weight_then_order() -> None:
    assert accepted_languages("de;q=0.5, fr-CH, en;q=0.9, it;q=0, es;q=x") == [
        "fr-CH",
        "en",
        "de",
    ]

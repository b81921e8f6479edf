"""A fake Telegram Bot API server that the real SDKs (python-telegram-bot, aiogram) can talk to.

`FakeTelegram` serves `/bot<token>/<method>` on 127.0.0.1 (uvicorn in a background thread),
answers in the Bot API's JSON shapes, enforces the limits that bite bots (text length after
HTML parsing, callback_data bytes, stale callback queries, "message is not modified", rate
limits answered with 429 + retry_after), records every call, and plays the user's side:
it builds realistic Update JSON and posts it to the webhook registered with setWebhook.

Usable from pytest and from benchmark processes alike, so it imports no pytest.

    with FakeTelegram(webhook_url=...) as telegram:
        bot = Bot(telegram.token, base_url=telegram.base_url, base_file_url=telegram.base_file_url)
        telegram.deliver(telegram.start_update(42, "elders"))
        telegram.wait_for(lambda: telegram.sent_texts(42))
        telegram.tap(42, "👍 D'accord")

Form bodies are decoded the way python-telegram-bot 22 encodes them (its transports post
`application/x-www-form-urlencoded`, or `multipart/form-data` when a file is uploaded, with every
non-string value JSON-encoded: ints as "42", booleans as "true", reply_markup as a JSON object).
"""

from __future__ import annotations

import itertools
import json
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message as MimeMessage
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import httpx
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from bench.processes import tcp_listener

PAYLOADS = Path(__file__).parent / "telegram_payloads"
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_BYTES = 64
CALLBACK_ANSWER_LIMIT = 200
SENDING_METHODS = frozenset({"sendmessage", "sendphoto"})
EDITING_METHODS = frozenset({"editmessagetext", "editmessagereplymarkup"})
_JSON_FIELDS = frozenset(
    {"reply_markup", "entities", "caption_entities", "link_preview_options", "reply_parameters"}
    | {"allowed_updates", "media", "commands", "scope"}
)
_INT_FIELDS = frozenset({"chat_id", "message_id", "reply_to_message_id", "message_thread_id"})
_INT_FIELDS |= {"max_connections", "cache_time"}
_BOOL_FIELDS = frozenset({"show_alert", "disable_notification", "protect_content"})
_BOOL_FIELDS |= {"drop_pending_updates", "disable_web_page_preview", "has_spoiler"}
_BOOL_FIELDS |= {"allow_paid_broadcast"}
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
T = TypeVar("T")


def load_payload(name: str) -> dict[str, Any]:
    """A recorded Update from `telegram_payloads/<name>.json` (e.g. "private_text")."""
    data: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))
    return data


class ApiError(Exception):
    """An error answer of the Bot API: HTTP status = error_code, Telegram's description."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.code}
        body["description"] = self.description
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


# --- HTML parse mode -------------------------------------------------------------------------

_TAG = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)"
    r"((?:\s+[a-zA-Z_:][-a-zA-Z0-9_:.]*(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'=<>`]+))?)*)\s*/?>"
)
_ATTRIBUTE = re.compile(r"([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|(\S+)))?")
_CHARREF = re.compile(r"&(?:#([0-9]+)|#[xX]([0-9a-fA-F]+)|(lt|gt|amp|quot));")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY_OF_TAG = {
    **dict.fromkeys(("b", "strong"), "bold"),
    **dict.fromkeys(("i", "em"), "italic"),
    **dict.fromkeys(("u", "ins"), "underline"),
    **dict.fromkeys(("s", "strike", "del"), "strikethrough"),
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
}


@dataclass
class _Open:
    name: str
    entity: dict[str, Any] | None
    start: int


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """The text a person sees and its MessageEntity list (UTF-16 offsets), as Telegram parses
    `parse_mode=HTML`. Raises ApiError 400 "can't parse entities: ..." for an unsupported tag,
    unbalanced tags, or a `<`/`&` that starts no tag or supported character reference.
    """
    out: list[str] = []
    units = 0  # UTF-16 code units so far: entity offsets are counted in them
    stack: list[_Open] = []
    entities: list[dict[str, Any]] = []

    def fail(reason: str, at: int) -> ApiError:
        offset = len(source[:at].encode())
        return bad_request(f"can't parse entities: {reason} at byte offset {offset}")

    i = 0
    while i < len(source):
        char = source[i]
        if char == "<":
            tag = _TAG.match(source, i)
            if tag is None:
                raise fail("Unexpected end of name token" if i + 1 < len(source) else "EOF", i)
            name = tag.group(2).lower()
            if tag.group(1):
                if not stack or stack[-1].name != name:
                    expected = f'expected "</{stack[-1].name}>"' if stack else "no tag is open"
                    raise fail(f'Unmatched end tag, {expected}, found "</{name}>"', i)
                closed = stack.pop()
                if closed.entity is not None and units > closed.start:
                    closed.entity.update(offset=closed.start, length=units - closed.start)
                    entities.append(closed.entity)
            else:
                if name not in _ENTITY_OF_TAG:
                    raise fail(f'Unsupported start tag "{name}"', i)
                attributes = {
                    match[0].lower(): match[1] or match[2] or match[3]
                    for match in _ATTRIBUTE.findall(tag.group(3))
                }
                stack.append(_Open(name, _entity_for(name, attributes, stack, fail, i), units))
            i = tag.end()
            continue
        if char == "&":
            ref = _CHARREF.match(source, i)
            if ref is None:
                raise fail("Character entity expected", i)
            number = ref.group(1) or ref.group(2)
            char = (
                _NAMED[ref.group(3)]
                if number is None
                else chr(int(number, 10 if ref.group(1) else 16))
            )
            i = ref.end()
        else:
            i += 1
        out.append(char)
        units += 2 if ord(char) > 0xFFFF else 1
    if stack:
        raise bad_request(
            "can't parse entities: Can't find end tag corresponding to start tag "
            f'"{stack[-1].name}"'
        )
    entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
    return "".join(out), entities


def _entity_for(
    name: str,
    attributes: dict[str, str],
    stack: list[_Open],
    fail: Callable[[str, int], ApiError],
    at: int,
) -> dict[str, Any] | None:
    kind = _ENTITY_OF_TAG[name]
    if name == "span" and attributes.get("class") != "tg-spoiler":
        raise fail('Tag "span" must have class "tg-spoiler"', at)
    if name == "a":
        return {"type": kind, "url": attributes["href"]} if attributes.get("href") else None
    if name == "blockquote" and "expandable" in attributes:
        return {"type": "expandable_blockquote"}
    language = attributes.get("class", "")
    if name == "code" and stack and stack[-1].name == "pre" and stack[-1].entity is not None:
        # <pre><code class="language-x"> is one pre entity with a language, as in Telegram
        if language.startswith("language-"):
            stack[-1].entity["language"] = language.removeprefix("language-")
        return None
    return {"type": kind}


# --- rate limits -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateLimits:
    """Telegram's documented send limits: ~1 message/s per chat (burst 3 here), 20 per minute in
    a group, 30 per second overall (1000 for paid broadcasts). Only sendMessage/sendPhoto count
    unless `limit_edits`."""

    per_chat_per_second: float = 1.0
    per_chat_burst: float = 3.0
    group_per_minute: float = 20.0
    group_burst: float = 20.0
    overall_per_second: float = 30.0
    overall_burst: float = 30.0
    # Messages sent with allow_paid_broadcast (charged in Stars) count against this instead.
    paid_per_second: float = 1000.0
    paid_burst: float = 1000.0
    limit_edits: bool = False


TELEGRAM_LIMITS = RateLimits()


@dataclass
class _Bucket:
    rate: float  # tokens per second
    burst: float
    tokens: float
    updated: float

    def wait(self, now: float) -> float:
        """Seconds until one token is available (0 if now), refilling first."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate


# --- recording -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadedFile:
    """A file posted as multipart/form-data (sendPhoto with an InputFile)."""

    filename: str | None
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Call:
    """One request the fake received: `params` decoded (nested JSON as dicts/lists), `time` by
    the fake's clock, `error` Telegram's description when the call was refused."""

    method: str
    params: dict[str, Any]
    time: float
    status: int = 200
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class _Chat:
    message_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    sent_texts: list[str] = field(default_factory=list)
    shown_texts: list[str] = field(default_factory=list)  # sent, and edited into


# --- the server --------------------------------------------------------------------------------


class ThreadedServer:
    """An ASGI app under uvicorn on 127.0.0.1 and a free port, in a thread with its own loop."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> str:
        """Serve until `stop()`; returns the base URL once the server accepts connections."""
        sock = tcp_listener()
        config = uvicorn.Config(
            self.app,
            loop="asyncio",
            http="httptools",
            ws="none",
            lifespan="off",
            interface="asgi3",
            proxy_headers=False,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.005)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        return self.url

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None


class FakeTelegram:
    """The Bot API of one bot, on a local port, with the user's side scripted by the test.

    `limits=None` disables rate limiting (benchmarks); `clock` (seconds, monotonic) drives rate
    limits and call times so tests can be deterministic.
    """

    def __init__(
        self,
        token: str = "123456789:TEST-token_for-the-fake",
        *,
        webhook_url: str | None = None,
        limits: RateLimits | None = TELEGRAM_LIMITS,
        clock: Callable[[], float] = time.monotonic,
        bot_username: str = "consult_test_bot",
    ) -> None:
        self.token = token
        self.limits = limits
        self.clock = clock
        self.bot = {
            "id": int(token.split(":")[0]) if token.split(":")[0].isdigit() else 123456789,
            "is_bot": True,
            "first_name": "Consult",
            "username": bot_username,
        }
        self.webhook_url = webhook_url
        self.webhook_secret: str | None = None
        self.messages: dict[int, dict[int, dict[str, Any]]] = {}  # chat -> message id -> Message
        self.blocked: set[int] = set()  # chats whose user blocked the bot: sends get 403
        # Channels the bot administers, by @username -> chat id (a post may name either).
        self.channels: dict[str, int] = {}
        # Requests `hold(method, params)` picks are never answered, until the bot goes away (a
        # test kills it mid-request); `held` records them, `held_listeners` hear of them.
        self.hold: Callable[[str, dict[str, Any]], bool] | None = None
        self.held: list[tuple[str, dict[str, Any]]] = []
        self.held_listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self._calls: list[Call] = []
        # Called with each accepted call, on the server's thread (benchmarks wait on these).
        self.listeners: list[Callable[[Call], None]] = []
        self._chats: dict[int, _Chat] = {}
        self._users: dict[int, dict[str, Any]] = {}
        self._open_queries: set[str] = set()
        self._buckets: dict[tuple[str, int], _Bucket] = {}
        self._update_ids = itertools.count(700_000_001)
        self._query_ids = itertools.count(4_400_000_000_000_001)
        self._lock = threading.Lock()
        self._server = ThreadedServer(self._asgi)
        self._client: httpx.Client | None = None
        self.url = ""

    # lifecycle

    def start(self) -> FakeTelegram:
        self.url = self._server.start()
        self._client = httpx.Client(timeout=30)
        return self

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._server.stop()

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def asgi(self) -> ASGIApp:
        """The fake as an ASGI app, to serve it in a loop of one's own instead of `start()`."""
        return self._asgi

    @property
    def base_url(self) -> str:
        """For `Bot(token, base_url=...)`: PTB appends the token and `/<method>`."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self.url}/file/bot"

    # reading what the bot did

    def calls(self, method: str | None = None, chat_id: int | str | None = None) -> list[Call]:
        """Calls in arrival order, refused ones included (see `Call.ok`); method is case-blind."""
        with self._lock:
            calls = list(self._calls)
        return [
            call
            for call in calls
            if (method is None or call.method.lower() == method.lower())
            and (chat_id is None or call.params.get("chat_id") == chat_id)
        ]

    def count(self, method: str | None = None, *, ok: bool | None = None) -> int:
        return sum(1 for call in self.calls(method) if ok is None or call.ok == ok)

    def sent_texts(self, chat_id: int) -> list[str]:
        """Texts sent with sendMessage to the chat, as the person sees them (HTML tags parsed)."""
        with self._lock:
            return list(self._chats[chat_id].sent_texts) if chat_id in self._chats else []

    def shown_texts(self, chat_id: int) -> list[str]:
        """Texts that appeared in the chat, in order: each message sent (as `sent_texts`) and each
        text a message was edited into (a bot that turns a tapped card into the next one)."""
        with self._lock:
            return list(self._chats[chat_id].shown_texts) if chat_id in self._chats else []

    def last_keyboard(self, chat_id: int) -> list[tuple[str, str | None]]:
        """(text, callback_data) of the buttons of the latest message in the chat that currently
        has an inline keyboard (after edits), row by row; [] if none."""
        message = self._latest_with_keyboard(chat_id)
        if message is None:
            return []
        rows = message["reply_markup"]["inline_keyboard"]
        return [(button["text"], button.get("callback_data")) for row in rows for button in row]

    def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """Poll `predicate` until it returns something truthy, and return that.

        Raises TimeoutError after `timeout` seconds (for replies sent in the background)."""
        deadline = time.monotonic() + timeout
        while not (result := predicate()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            time.sleep(0.01)
        return result

    # playing the user

    def user(
        self,
        user_id: int,
        *,
        first_name: str | None = None,
        language_code: str | None = "",
        username: str | None = None,
    ) -> dict[str, Any]:
        """A User object; the names are remembered for the private Chat objects of replies.

        Without `language_code`, a known user keeps theirs (Telegram sends the same one with
        every update) and a new one speaks "fr"; None means the user's app sends none."""
        with self._lock:
            known = self._users.get(user_id, {})
        if language_code == "":
            language_code = known.get("language_code", "fr") if known else "fr"
        user: dict[str, Any] = {"id": user_id, "is_bot": False}
        user["first_name"] = first_name or known.get("first_name") or f"User{user_id}"
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        with self._lock:
            self._users[user_id] = user
        return user

    def chat(self, chat_id: int) -> dict[str, Any]:
        """The Chat object: private for a positive id, group/supergroup for a negative one."""
        if chat_id < 0:
            kind = "supergroup" if str(chat_id).startswith("-100") else "group"
            return {"id": chat_id, "title": "Test group", "type": kind}
        known = self._users.get(chat_id, {})
        chat = {"id": chat_id, "first_name": known.get("first_name", f"User{chat_id}")}
        if "username" in known:
            chat["username"] = known["username"]
        return {**chat, "type": "private"}

    def text_update(
        self,
        user_id: int,
        text: str,
        *,
        language_code: str | None = "",
        first_name: str | None = None,
        chat_id: int | None = None,
    ) -> dict[str, Any]:
        """An Update with a text message from the user, in their private chat unless `chat_id`
        (negative: a group). A leading /command gets its bot_command entity, as in Telegram."""
        sender = self.user(user_id, first_name=first_name, language_code=language_code)
        chat_id = user_id if chat_id is None else chat_id
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat_id),
            "from": sender,
            "chat": self.chat(chat_id),
            "date": int(time.time()),
            "text": text,
        }
        if command := re.match(r"/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?", text):
            length = len(command.group(0).encode("utf-16-le")) // 2
            message["entities"] = [{"offset": 0, "length": length, "type": "bot_command"}]
        return {"update_id": next(self._update_ids), "message": message}

    def start_update(self, user_id: int, payload: str | None = None, **kw: Any) -> dict[str, Any]:
        """`/start <payload>`: what Telegram sends when t.me/<bot>?start=<payload> is opened."""
        return self.text_update(user_id, f"/start {payload}" if payload else "/start", **kw)

    def callback_update(
        self,
        user_id: int,
        message_id: int,
        data: str,
        *,
        chat_id: int | None = None,
        language_code: str | None = "",
    ) -> dict[str, Any]:
        """An Update for a tap on an inline button of a message the bot sent; the query id is
        registered, so one answerCallbackQuery for it succeeds. The embedded message is the
        fake's current copy of that message."""
        chat_id = user_id if chat_id is None else chat_id
        sender = self.user(user_id, language_code=language_code)
        with self._lock:
            message = self.messages.get(chat_id, {}).get(message_id)
        if message is None:
            raise LookupError(f"no message {message_id} was sent to chat {chat_id}")
        query = {
            "id": str(next(self._query_ids)),
            "from": sender,
            "message": json.loads(json.dumps(message)),
            "chat_instance": str(-abs(chat_id) * 7919),
            "data": data,
        }
        with self._lock:
            self._open_queries.add(query["id"])
        return {"update_id": next(self._update_ids), "callback_query": query}

    def tap_update(
        self, user_id: int, button: str, *, chat_id: int | None = None
    ) -> dict[str, Any]:
        """The callback Update for the button (matched by text, else by callback_data) of the
        latest keyboard in the chat. Raises LookupError naming the buttons that exist."""
        chat_id = user_id if chat_id is None else chat_id
        message = self._latest_with_keyboard(chat_id)
        buttons = self.last_keyboard(chat_id)
        data = next((d for text, d in buttons if text == button), None)
        data = data or next((d for _, d in buttons if d == button), None)
        if message is None or data is None:
            raise LookupError(f"no button {button!r} in chat {chat_id}; buttons: {buttons}")
        return self.callback_update(user_id, message["message_id"], data, chat_id=chat_id)

    def tap(self, user_id: int, button: str, *, chat_id: int | None = None) -> httpx.Response:
        """Tap a button of the latest keyboard sent to the chat and deliver the update."""
        return self.deliver(self.tap_update(user_id, button, chat_id=chat_id))

    async def atap(
        self,
        user_id: int,
        button: str,
        *,
        chat_id: int | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> httpx.Response:
        """`tap` with `adeliver`."""
        update = self.tap_update(user_id, button, chat_id=chat_id)
        return await self.adeliver(update, client=client)

    def deliver(self, update: dict[str, Any], *, secret: str | None = None) -> httpx.Response:
        """POST the update to the webhook, with the secret header set by setWebhook (or `secret`:
        a wrong one, or "" for none). Blocks until the webhook answers.

        Raises RuntimeError when no webhook is registered."""
        if self._client is None:
            raise RuntimeError("start() the fake first")
        url, headers = self._webhook_request(update, secret)
        return self.honour_answer(self._client.post(url, json=update, headers=headers))

    async def adeliver(
        self,
        update: dict[str, Any],
        *,
        secret: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> httpx.Response:
        """`deliver` with httpx.AsyncClient; pass a shared `client` when driving many users."""
        url, headers = self._webhook_request(update, secret)
        if client is not None:
            return self.honour_answer(await client.post(url, json=update, headers=headers))
        async with httpx.AsyncClient(timeout=30) as own:
            return self.honour_answer(await own.post(url, json=update, headers=headers))

    def honour_answer(self, response: httpx.Response) -> httpx.Response:
        """Make the Bot API call a webhook put in its answer, as Telegram does (a JSON object
        with a "method"); it is recorded like any other call."""
        if response.status_code == 200 and response.content:
            self.call_in_answer(response.json())
        return response

    def call_in_answer(self, answer: dict[str, Any]) -> None:
        params = {key: value for key, value in answer.items() if key != "method"}
        if "method" in answer:
            body = json.dumps(params).encode()
            self.answer(f"/bot{self.token}/{answer['method']}", b"", "application/json", body)

    def _webhook_request(
        self, update: dict[str, Any], secret: str | None
    ) -> tuple[str, dict[str, str]]:
        if not self.webhook_url:
            raise RuntimeError("no webhook: call setWebhook or pass webhook_url")
        if "callback_query" in update:  # recorded payloads count as delivered queries too
            with self._lock:
                self._open_queries.add(update["callback_query"]["id"])
        secret = secret if secret is not None else self.webhook_secret
        return self.webhook_url, ({"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {})

    # HTTP

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        headers = {
            key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]
        }
        if self._holds(scope["path"], scope["query_string"], headers.get("content-type", ""), body):
            while (await receive())["type"] != "http.disconnect":
                pass
            return
        status, answer = self.answer(
            scope["path"], scope["query_string"], headers.get("content-type", ""), bytes(body)
        )
        payload = json.dumps(answer).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(payload)),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def _holds(self, path: str, query: bytes, content_type: str, body: bytearray) -> bool:
        route = re.fullmatch(r"/bot([^/]+)/([A-Za-z]+)", path)
        if self.hold is None or route is None:
            return False
        try:
            params = decode_params(query, content_type, bytes(body))
        except ValueError:
            return False
        method = route.group(2)
        if not self.hold(method, params):
            return False
        with self._lock:
            self.held.append((method, params))
        for listener in self.held_listeners:
            listener(method, params)
        return True

    def answer(
        self, path: str, query: bytes, content_type: str, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        """One Bot API request -> (HTTP status, JSON answer); records it as a Call."""
        route = re.fullmatch(r"/bot([^/]+)/([A-Za-z]+)", path)
        if route is None:
            return 404, ApiError(404, "Not Found").body()
        if route.group(1) != self.token:
            return 401, ApiError(401, "Unauthorized").body()
        method = route.group(2)
        handler = getattr(self, f"_api_{method.lower()}", None)
        if handler is None:
            return 404, ApiError(404, "Not Found").body()
        try:
            params = decode_params(query, content_type, body)
        except ValueError as error:
            return 400, bad_request(str(error)).body()
        with self._lock:
            try:
                self._pace(method.lower(), params)
                result = handler(params)
            except ApiError as error:
                self._calls.append(
                    Call(method, params, self.clock(), error.code, error.description)
                )
                return error.code, error.body()
            call = Call(method, params, self.clock())
            self._calls.append(call)
        for listener in self.listeners:
            listener(call)
        return 200, {"ok": True, "result": result}

    def _pace(self, method: str, params: dict[str, Any]) -> None:
        counted = method in SENDING_METHODS or (
            self.limits is not None and self.limits.limit_edits and method in EDITING_METHODS
        )
        if self.limits is None or not counted or not isinstance(params.get("chat_id"), int):
            return
        chat_id: int = params["chat_id"]
        limits, now = self.limits, self.clock()
        wanted = [("chat", chat_id, limits.per_chat_per_second, limits.per_chat_burst)]
        if chat_id < 0:
            wanted.append(("group", chat_id, limits.group_per_minute / 60, limits.group_burst))
        if method in SENDING_METHODS and params.get("allow_paid_broadcast") is True:
            wanted.append(("paid", 0, limits.paid_per_second, limits.paid_burst))
        elif method in SENDING_METHODS:
            wanted.append(("all", 0, limits.overall_per_second, limits.overall_burst))
        buckets = []
        for kind, key, rate, burst in wanted:
            bucket = self._buckets.get((kind, key))
            if bucket is None:
                bucket = self._buckets[(kind, key)] = _Bucket(rate, burst, burst, now)
            buckets.append(bucket)
        # take from no bucket unless all have a token: a refused message costs nothing
        wait = max(bucket.wait(now) for bucket in buckets)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise ApiError(429, f"Too Many Requests: retry after {seconds}", retry_after=seconds)
        for bucket in buckets:
            bucket.tokens -= 1

    # Bot API methods (called with the lock held)

    def _api_getme(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**self.bot, "can_join_groups": True, "can_read_all_group_messages": False}

    def _api_setwebhook(self, params: dict[str, Any]) -> bool:
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_TOKEN.fullmatch(str(secret)):
            raise bad_request("secret token contains unallowed characters")
        self.webhook_url = str(params.get("url") or "") or None
        self.webhook_secret = str(secret) if secret and self.webhook_url else None
        return True

    def _api_deletewebhook(self, params: dict[str, Any]) -> bool:
        self.webhook_url = self.webhook_secret = None
        return True

    def _api_getwebhookinfo(self, params: dict[str, Any]) -> dict[str, Any]:
        info = {"url": self.webhook_url or "", "has_custom_certificate": False}
        return {**info, "pending_update_count": 0, "max_connections": 40}

    def _api_sendmessage(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._chat_id(params)
        text, entities = self._text(params, "text", TEXT_LIMIT, "message is too long")
        message = self._new_message(chat_id, params)
        message.update({"text": text, **({"entities": entities} if entities else {})})
        self._chats[chat_id].sent_texts.append(text)
        self._chats[chat_id].shown_texts.append(text)
        return message

    def _api_sendphoto(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._chat_id(params)
        if not params.get("photo"):
            raise bad_request("there is no photo in the request")
        message = self._new_message(chat_id, params)
        unique = f"fake-photo-{chat_id}-{message['message_id']}"
        size = {"file_id": unique, "file_unique_id": unique, "width": 800, "height": 800}
        message["photo"] = [size]
        if params.get("caption"):
            caption, entities = self._text(
                params, "caption", CAPTION_LIMIT, "message caption is too long"
            )
            message["caption"] = caption
            if entities:
                message["caption_entities"] = entities
        return message

    def _api_editmessagetext(self, params: dict[str, Any]) -> dict[str, Any]:
        current = self._message_to_edit(params)
        text, entities = self._text(params, "text", TEXT_LIMIT, "message is too long")
        # Telegram drops the inline keyboard of a message whose text is edited without one
        edited = {k: v for k, v in current.items() if k not in ("entities", "reply_markup")}
        edited.update({"text": text, **({"entities": entities} if entities else {})})
        replaced = self._replace(current, edited, params)
        self._chats.setdefault(current["chat"]["id"], _Chat()).shown_texts.append(text)
        return replaced

    def _api_editmessagereplymarkup(self, params: dict[str, Any]) -> dict[str, Any]:
        current = self._message_to_edit(params)
        return self._replace(
            current, {k: v for k, v in current.items() if k != "reply_markup"}, params
        )

    def _api_answercallbackquery(self, params: dict[str, Any]) -> bool:
        query_id = str(params.get("callback_query_id", ""))
        if query_id not in self._open_queries:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        if len(str(params.get("text", ""))) > CALLBACK_ANSWER_LIMIT:
            raise bad_request("MESSAGE_TOO_LONG")
        self._open_queries.discard(query_id)
        return True

    # helpers of the methods

    def _chat_id(self, params: dict[str, Any]) -> int:
        chat_id = params.get("chat_id")
        if chat_id in (None, ""):
            raise bad_request("chat_id is empty")
        if isinstance(chat_id, str) and chat_id in self.channels:
            chat_id = params["chat_id"] = self.channels[chat_id]
        if not isinstance(chat_id, int):
            raise bad_request("chat not found")
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat_id

    def _text(
        self, params: dict[str, Any], key: str, limit: int, too_long: str
    ) -> tuple[str, list[dict[str, Any]]]:
        raw = params.get(key)
        mode = str(params.get("parse_mode") or "")
        if mode.lower() not in ("", "html", "markdown", "markdownv2"):
            raise bad_request("unsupported parse_mode")
        text, entities = (
            parse_html(str(raw)) if mode.lower() == "html" and raw else (str(raw or ""), [])
        )
        if not text.strip():
            raise bad_request(
                "message text is empty" if key == "text" else "message caption is empty"
            )
        if len(text) > limit:
            raise bad_request(too_long)
        return text, entities

    def _new_message(self, chat_id: int, params: dict[str, Any]) -> dict[str, Any]:
        message_id = self._next_message_id(chat_id, locked=True)
        message: dict[str, Any] = {
            "message_id": message_id,
            "from": self.bot,
            "chat": self.chat(chat_id),
            "date": int(time.time()),
        }
        if (markup := _inline_markup(params)) is not None:
            message["reply_markup"] = markup
        self.messages.setdefault(chat_id, {})[message_id] = message
        return message

    def _message_to_edit(self, params: dict[str, Any]) -> dict[str, Any]:
        if "inline_message_id" in params:
            raise bad_request("inline messages are not supported by the fake")
        chat_id = self._chat_id(params)
        message = self.messages.get(chat_id, {}).get(params.get("message_id"))  # type: ignore[arg-type]
        if message is None:
            raise bad_request("message to edit not found")
        return message

    def _replace(
        self, current: dict[str, Any], edited: dict[str, Any], params: dict[str, Any]
    ) -> dict[str, Any]:
        if (markup := _inline_markup(params)) is not None:
            edited["reply_markup"] = markup
        if edited == current:
            raise bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        edited["edit_date"] = int(time.time())
        self.messages[current["chat"]["id"]][current["message_id"]] = edited
        return edited

    def _next_message_id(self, chat_id: int, *, locked: bool = False) -> int:
        if locked:
            return next(self._chats.setdefault(chat_id, _Chat()).message_ids)
        with self._lock:
            return next(self._chats.setdefault(chat_id, _Chat()).message_ids)

    def _latest_with_keyboard(self, chat_id: int) -> dict[str, Any] | None:
        with self._lock:
            messages = sorted(self.messages.get(chat_id, {}).items(), reverse=True)
        return next(
            (m for _, m in messages if "inline_keyboard" in m.get("reply_markup", {})), None
        )


def _inline_markup(params: dict[str, Any]) -> dict[str, Any] | None:
    """The validated inline keyboard of the request; other markups are accepted but, as in
    Telegram, not part of the Message returned."""
    markup = params.get("reply_markup")
    if not isinstance(markup, dict) or "inline_keyboard" not in markup:
        return None
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request(
            'can\'t parse inline keyboard: field "inline_keyboard" must be an Array of Arrays'
        )
    buttons = [button for row in rows for button in row]
    if len(buttons) > 100:
        raise bad_request("BUTTONS_TOO_MUCH")
    for button in buttons:
        if not isinstance(button, dict) or not str(button.get("text", "")).strip():
            raise bad_request("BUTTON_TEXT_INVALID")
        if "callback_data" in button:
            size = len(str(button["callback_data"]).encode())
            if not 1 <= size <= CALLBACK_DATA_BYTES:
                raise bad_request("BUTTON_DATA_INVALID")
        elif not {"url", "login_url", "switch_inline_query", "web_app", "copy_text", "pay"} & set(
            button
        ):
            raise bad_request(
                "can't parse inline keyboard button: "
                "Text buttons are unallowed in the inline keyboard"
            )
    return {"inline_keyboard": [[dict(button) for button in row] for row in rows if row]}


def decode_params(query: bytes, content_type: str, body: bytes) -> dict[str, Any]:
    """Request parameters from the query string and a JSON, form or multipart body, with the
    JSON-encoded fields PTB sends in forms (reply_markup, ...) decoded, and ids as ints.

    Raises ValueError with Telegram's wording for undecodable JSON fields."""
    params: dict[str, Any] = dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True))
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json" and body:
        decoded = json.loads(body)
        if not isinstance(decoded, dict):
            raise ValueError("request body must be a JSON object")
        return {**params, **decoded}
    if kind == "application/x-www-form-urlencoded":
        params.update(parse_qsl(body.decode(), keep_blank_values=True))
    elif kind == "multipart/form-data":
        mime = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
        )
        for part in mime.iter_parts():
            params.update(_form_part(part))
    for key, value in list(params.items()):
        if not isinstance(value, str):
            continue
        if key in _JSON_FIELDS:
            try:
                params[key] = json.loads(value)
            except ValueError:
                raise ValueError(f"can't parse {key} JSON object") from None
        elif key in _INT_FIELDS and re.fullmatch(r"-?\d+", value):
            params[key] = int(value)
        elif key in _BOOL_FIELDS and value in ("true", "false"):
            params[key] = value == "true"
    return params


def _form_part(part: MimeMessage) -> dict[str, Any]:
    name = part.get_param("name", header="content-disposition")
    if not isinstance(name, str):
        return {}
    data = part.get_payload(decode=True)
    data = data if isinstance(data, bytes) else b""
    filename = part.get_filename()
    if filename is None:
        return {name: data.decode()}
    return {name: UploadedFile(filename, part.get_content_type(), data)}

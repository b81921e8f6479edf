"""A fake Slack Web API on localhost, and signed requests in the shapes Slack sends.

`FakeSlack` serves `POST|GET /api/<method>` for the methods the Slack channel uses
(chat.postMessage, chat.update, views.open, views.publish, conversations.open, users.info,
oauth.v2.access, auth.test). It checks the bearer token, validates the Block Kit limits the
channel relies on (answering `{"ok": false, "error": "invalid_blocks"}` like Slack), answers
429 with Retry-After when a method is called more often than its configured rate, records
every call (`calls`, counted by method in `counts`) and tells its `listeners` of each one.
slack_sdk's AsyncWebClient talks to it through `base_url=fake.api_url`.

The `slash_command`, `block_action`, `view_submission`, `event_callback` and `signed`
helpers play Slack's side towards our webhook.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bench.processes import serving

TEAM = "T0CONSULT"
BOT_TOKEN = "xoxb-fake-consult"
BOT_USER = "U0BOT"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
SECTION_TEXT = 3000
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
ACTION_ID = 255
OPTION_TEXT = 75
OPTION_VALUE = 150
SELECT_OPTIONS = 100
_ids = itertools.count(1)


@dataclass
class Call:
    """One request to the fake: the method, its arguments, and what it answered."""

    method: str
    args: dict[str, Any]
    status: int = 200
    answer: dict[str, Any] = field(default_factory=dict)


def block_problems(blocks: list[dict[str, Any]], limit: int) -> list[str]:
    """What breaks the Block Kit limits we rely on; [] if nothing does."""
    problems = []
    if len(blocks) > limit:
        problems.append(f"{len(blocks)} blocks > {limit}")
    action_ids: set[str] = set()
    for block in blocks:
        text = block.get("text") or {}
        if len(text.get("text", "")) > SECTION_TEXT:
            problems.append("section text > 3000")
        if text and not text.get("text"):
            problems.append("empty text")
        for element in block.get("elements", []):
            action_id = element.get("action_id")
            if action_id is not None:
                if action_id in action_ids or len(action_id) > ACTION_ID:
                    problems.append(f"action_id {action_id!r} repeated or too long")
                action_ids.add(action_id)
            if element.get("type") == "button":
                if len(element["text"]["text"]) > BUTTON_TEXT:
                    problems.append("button text > 75")
                if len(element.get("value", "")) > BUTTON_VALUE:
                    problems.append("button value > 2000")
            if element.get("type") == "static_select":
                options = element.get("options", [])
                if len(options) > SELECT_OPTIONS:
                    problems.append("more than 100 options")
                for option in options:
                    if len(option["text"]["text"]) > OPTION_TEXT:
                        problems.append("option text > 75")
                    if len(option["value"]) > OPTION_VALUE:
                        problems.append("option value > 150")
        if block.get("type") == "actions" and len(block.get("elements", [])) > 25:
            problems.append("more than 25 elements")
    return problems


class FakeSlack:
    """The Web API side of Slack for one workspace (plus the OAuth exchange for more)."""

    def __init__(
        self,
        *,
        locales: dict[str, str] | None = None,
        client_id: str = "1111.2222",
        client_secret: str = "fake-client-secret",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tokens = {BOT_TOKEN: TEAM}
        self.locales = locales or {}
        self.client_id = client_id
        self.client_secret = client_secret
        self.codes: dict[str, str] = {}  # OAuth code -> team it installs into
        self.clock = clock
        self.calls: list[Call] = []
        # Called with each call once answered, in the fake's event loop (the caller's).
        self.listeners: list[Callable[[Call], None]] = []
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.rates: dict[str, float] = {}  # method -> calls allowed per second
        # method -> calls allowed per second in one conversation (chat.postMessage: about 1)
        self.conversation_rates: dict[str, float] = {}
        self.retry_after = 1
        # The workspace's people (users.list: id -> user object) and channels' members
        # (conversations.members); `gone`: users whose DMs fail with account_inactive.
        self.users: dict[str, dict[str, Any]] = {}
        self.channel_members: dict[str, list[str]] = {}
        self.gone: set[str] = set()
        self._recent: dict[str, list[float]] = {}
        self.app = Starlette(routes=[Route("/api/{method}", self._serve, methods=["GET", "POST"])])
        self.api_url = ""

    @asynccontextmanager
    async def running(self) -> AsyncIterator[FakeSlack]:
        async with serving(self.app) as url:
            self.api_url = f"{url}/api/"
            yield self

    # -- what tests read -----------------------------------------------------------------

    def counts(self, since: int = 0) -> Counter[str]:
        """How many calls each method got, from the `since`-th call on."""
        return Counter(call.method for call in self.calls[since:])

    def ok_calls(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.answer.get("ok")]

    @property
    def errors(self) -> list[Call]:
        """Calls refused for a reason other than a rate limit (a bug in the channel)."""
        return [c for c in self.calls if c.status == 200 and not c.answer.get("ok")]

    def posted(self, channel: str) -> list[dict[str, Any]]:
        """Messages posted in `channel`, as they are now (after updates)."""
        return [m for (ch, _), m in self.messages.items() if ch == channel]

    async def wait_for(self, condition: Callable[[], Any], timeout: float = 10.0) -> Any:
        """`condition()` once it is true, checked after each call the fake answers."""
        called = asyncio.Event()
        self.listeners.append(lambda _: called.set())
        try:
            async with asyncio.timeout(timeout):
                while not (result := condition()):
                    called.clear()
                    await called.wait()
        except TimeoutError:
            raise AssertionError("the fake Slack did not see what was expected in time") from None
        finally:
            self.listeners.pop()
        return result

    # -- serving -------------------------------------------------------------------------

    async def _serve(self, request: Request) -> JSONResponse:
        method = request.path_params["method"]
        args = await _arguments(request)
        call = Call(method, args)
        self.calls.append(call)
        try:
            return self._answer(request, call)
        finally:
            for listener in list(self.listeners):
                listener(call)

    def _answer(self, request: Request, call: Call) -> JSONResponse:
        method, args = call.method, call.args
        if self._over_conversation_rate(method, args) or self._over_rate(method):
            call.status, call.answer = 429, {"ok": False, "error": "ratelimited"}
            headers = {"Retry-After": str(self.retry_after)}
            return JSONResponse(call.answer, status_code=429, headers=headers)
        if method == "oauth.v2.access":
            call.answer = self._oauth(request, args)
        else:
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            token = token or args.get("token", "")
            if token not in self.tokens:
                call.answer = {"ok": False, "error": "invalid_auth"}
            else:
                handler = getattr(self, "_" + method.replace(".", "_"), None)
                answer = handler(self.tokens[token], args) if handler else None
                call.answer = answer or {"ok": False, "error": "unknown_method"}
        return JSONResponse(call.answer)

    def _over_rate(self, method: str) -> bool:
        rate = self.rates.get(method)
        if rate is None:
            return False
        now = self.clock()
        recent = [t for t in self._recent.get(method, []) if now - t < 1.0]
        self._recent[method] = recent
        if len(recent) >= rate:
            return True
        recent.append(now)
        return False

    def _over_conversation_rate(self, method: str, args: dict[str, Any]) -> bool:
        rate = self.conversation_rates.get(method)
        if rate is None:
            return False
        key, now = f"{method} {args.get('channel')}", self.clock()
        recent = [t for t in self._recent.get(key, []) if now - t < 1.0]
        self._recent[key] = recent
        if len(recent) >= rate:
            return True
        recent.append(now)
        return False

    def _oauth(self, request: Request, args: dict[str, Any]) -> dict[str, Any]:
        import base64

        auth = request.headers.get("authorization", "")
        client_id, client_secret = args.get("client_id"), args.get("client_secret")
        if auth.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(auth[6:]).decode().partition(":")
        if (client_id, client_secret) != (self.client_id, self.client_secret):
            return {"ok": False, "error": "invalid_client_id"}
        team = self.codes.pop(args.get("code", ""), None)
        if team is None:
            return {"ok": False, "error": "invalid_code"}
        token = f"xoxb-{team}-{next(_ids)}"
        self.tokens[token] = team
        return {
            "ok": True,
            "app_id": "A0CONSULT",
            "authed_user": {"id": "U0INSTALLER"},
            "scope": "chat:write,commands,im:write,im:history,users:read",
            "token_type": "bot",
            "access_token": token,
            "bot_user_id": BOT_USER,
            "team": {"id": team, "name": "Acme"},
            "enterprise": None,
            "is_enterprise_install": False,
        }

    def _auth_test(self, team: str, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://acme.slack.com/",
            "team": "Acme",
            "team_id": team,
            "user": "consult",
            "user_id": BOT_USER,
            "bot_id": "B0CONSULT",
            "is_enterprise_install": False,
        }

    def _conversations_open(self, team: str, args: dict[str, Any]) -> dict[str, Any]:
        users = str(args.get("users", ""))
        # A DM id unrelated to the user id, as on Slack (so no user id leaks through it).
        digest = hashlib.sha256(f"{team}:{users}".encode()).hexdigest()[:9].upper()
        return {"ok": True, "channel": {"id": f"D{digest}"}}

    def _users_info(self, team: str, args: dict[str, Any]) -> dict[str, Any]:
        user = str(args.get("user", ""))
        found = {"id": user, "team_id": team, "name": f"name-of-{user}", **self.users.get(user, {})}
        if user in self.locales:
            found["locale"] = self.locales[user]
        return {"ok": True, "user": found}

    def _users_list(self, team: str, args: dict[str, Any]) -> dict[str, Any]:
        return _page(list(self.users.values()), "members", args)

    def _conversations_members(self, team: str, args: dict[str, Any]) -> dict[str, Any]:
        members = self.channel_members.get(str(args.get("channel")))
        if members is None:
            return {"ok": False, "error": "channel_not_found"}
        return _page(members, "members", args)

    def _chat_postMessage(self, team: str, args: dict[str, Any]) -> dict[str, Any]:
        if str(args.get("channel")) in self.gone:
            return {"ok": False, "error": "account_inactive"}
        blocks = _json(args.get("blocks", []))
        problems = block_problems(blocks, MESSAGE_BLOCKS)
        if problems or not (args.get("text") or blocks):
            return {"ok": False, "error": "invalid_blocks", "errors": problems}
        ts = f"{1_700_000_000 + next(_ids)}.000100"
        message = {"ts": ts, "text": args.get("text", ""), "blocks": blocks}
        self.messages[(str(args["channel"]), ts)] = message
        return {"ok": True, "channel": args["channel"], "ts": ts, "message": message}

    def _chat_postEphemeral(self, team: str, args: dict[str, Any]) -> dict[str, Any]:
        """A message only `user` sees, in `channel`: recorded as a call, kept nowhere."""
        if not args.get("channel") or not args.get("user"):
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("text") and not _json(args.get("blocks", [])):
            return {"ok": False, "error": "no_text"}
        return {"ok": True, "message_ts": f"{1_700_000_000 + next(_ids)}.000200"}

    def _chat_update(self, team: str, args: dict[str, Any]) -> dict[str, Any]:
        key = (str(args.get("channel")), str(args.get("ts")))
        if key not in self.messages:
            return {"ok": False, "error": "message_not_found"}
        blocks = _json(args.get("blocks", []))
        problems = block_problems(blocks, MESSAGE_BLOCKS)
        if problems:
            return {"ok": False, "error": "invalid_blocks", "errors": problems}
        self.messages[key] = {"ts": key[1], "text": args.get("text", ""), "blocks": blocks}
        return {"ok": True, "channel": key[0], "ts": key[1]}

    def _view(self, args: dict[str, Any]) -> dict[str, Any]:
        view = _json(args.get("view", {}))
        problems = block_problems(view.get("blocks", []), VIEW_BLOCKS)
        if len(view.get("title", {}).get("text", "")) > 24:
            problems.append("title > 24")
        if problems:
            return {"ok": False, "error": "invalid_arguments", "errors": problems}
        return {"ok": True, "view": {**view, "id": f"V{next(_ids):08d}", "hash": "h1"}}

    def _views_open(self, team: str, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        return self._view(args)

    def _views_publish(self, team: str, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("user_id"):
            return {"ok": False, "error": "invalid_arguments"}
        return self._view(args)


def _page(items: list[Any], key: str, args: dict[str, Any]) -> dict[str, Any]:
    """One page of `items` from the `cursor` (an offset here), `limit` long, as Slack pages."""
    start, limit = int(args.get("cursor") or 0), int(args.get("limit") or 100)
    rest = items[start + limit :]
    cursor = str(start + limit) if rest else ""
    answer = {"ok": True, key: items[start : start + limit]}
    return {**answer, "response_metadata": {"next_cursor": cursor}}


async def _arguments(request: Request) -> dict[str, Any]:
    args: dict[str, Any] = dict(request.query_params)
    body = await request.body()
    if body:
        if request.headers.get("content-type", "").startswith("application/json"):
            args.update(json.loads(body))
        else:
            args.update(parse_qsl(body.decode()))
    return args


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


# -- Slack's side towards our webhook ----------------------------------------------------


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """v0= HMAC-SHA256 of "v0:{timestamp}:{body}" (Slack's request signing)."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed(
    body: bytes, content_type: str, *, now: float, secret: str = SIGNING_SECRET
) -> dict[str, str]:
    """Headers Slack sends with `body` at time `now`."""
    timestamp = str(int(now))
    return {
        "content-type": content_type,
        "x-slack-request-timestamp": timestamp,
        "x-slack-signature": signature(secret, timestamp, body),
    }


def _trigger() -> str:
    """A trigger id shaped like Slack's ("398738663015.47445629121.803a0bc8...")."""
    number = next(_ids)
    return f"{398738663015 + number}.47445629121.{hashlib.md5(str(number).encode()).hexdigest()}"


def form(fields: dict[str, Any]) -> bytes:
    return urlencode(fields).encode()


def slash_command(user: str, text: str = "", team: str = TEAM) -> bytes:
    return form(
        {
            "token": "legacy",
            "team_id": team,
            "channel_id": "C0GENERAL",
            "user_id": user,
            "user_name": f"name-of-{user}",
            "command": "/consult",
            "text": text,
            "response_url": "https://hooks.slack.com/commands/x",
            "trigger_id": _trigger(),
            "api_app_id": "A0CONSULT",
        }
    )


def interaction(payload: dict[str, Any]) -> bytes:
    return form({"payload": json.dumps(payload)})


def _interacting(kind: str, user: str, team: str) -> dict[str, Any]:
    """What every interaction payload says of itself: its type, who, where, and a trigger."""
    return {
        "type": kind,
        "team": {"id": team},
        "user": {"id": user, "team_id": team},
        "api_app_id": "A0CONSULT",
        "trigger_id": _trigger(),
    }


def block_action(
    user: str, message: dict[str, Any], channel: str, action: dict[str, Any], team: str = TEAM
) -> bytes:
    """A tap on an element of `message` (as the fake holds it) in `channel`; the action names
    the block it is in, as Slack's do."""
    if "block_id" not in action:
        action = {**action, "block_id": _block_of(message, action.get("action_id"))}
    return interaction(
        {
            **_interacting("block_actions", user, team),
            "container": {"type": "message", "message_ts": message["ts"], "channel_id": channel},
            "channel": {"id": channel},
            "message": message,
            "actions": [{**action, "action_ts": f"{time.time():.6f}{next(_ids)}"}],
        }
    )


def _block_of(message: dict[str, Any], action_id: Any) -> str:
    for block in message.get("blocks", []):
        if any(e.get("action_id") == action_id for e in block.get("elements", [])):
            return str(block.get("block_id", ""))
    return ""


def view_submission(user: str, view: dict[str, Any], text: str, team: str = TEAM) -> bytes:
    state = {"values": {"proposal": {"text": {"type": "plain_text_input", "value": text}}}}
    return interaction(
        {
            **_interacting("view_submission", user, team),
            "view": {**view, "state": state},
        }
    )


def event_callback(event: dict[str, Any], event_id: str, team: str = TEAM) -> bytes:
    return json.dumps(
        {
            "token": "legacy",
            "team_id": team,
            "api_app_id": "A0CONSULT",
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": 1_700_000_000,
            "authorizations": [{"team_id": team, "user_id": BOT_USER, "is_bot": True}],
        }
    ).encode()

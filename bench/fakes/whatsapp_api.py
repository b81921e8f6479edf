"""A fake WhatsApp Cloud API (Graph API) on localhost, and signed webhook deliveries.

`FakeGraphAPI` serves `POST /{phone_number_id}/messages` like Meta does for what we use: it
checks the bearer token, validates messages against the platform's limits (interactive buttons
and lists, text and body lengths) with Graph-style error JSON, answers 429 with error code
130429 when more than `max_per_second` messages arrive within a second, and records every
call, telling its `listeners` (a test waits on them for a reply instead of sleeping). The
`*_message`, `delivery` and `signed` helpers build webhook deliveries in the shape of Meta's
documented examples.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

PHONE_NUMBER_ID = "106540352242922"
BUSINESS_NUMBER = "15550783881"
_wamids = itertools.count(1)


@dataclass
class Call:
    """One request to the fake, whatever its fate."""

    phone_number_id: str
    authorization: str | None
    body: Any
    status: int


@dataclass
class FakeGraphAPI:
    """Meta's message-sending endpoint, strict about what the real one refuses."""

    token: str = "test-whatsapp-token"
    max_per_second: int | None = None
    retry_after: float | None = None
    # Recipients who last wrote more than 24 hours ago: Meta refuses them any message but a
    # template (error 131047, "Re-engagement message").
    outside_window: set[str] = field(default_factory=set)
    # Numbers not on WhatsApp or that blocked the business: error 131026, "Message undeliverable".
    undeliverable: set[str] = field(default_factory=set)
    # Seconds, for the throughput limit (a test injects its own).
    clock: Callable[[], float] = time.monotonic
    calls: list[Call] = field(default_factory=list)
    # Called with each call once recorded, in the event loop serving the fake.
    listeners: list[Callable[[Call], None]] = field(default_factory=list)
    _accepted_at: deque[float] = field(default_factory=deque)

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/{phone_number_id}/messages", self._send, methods=["POST"])]
        )

    @property
    def sent(self) -> list[dict[str, Any]]:
        """Bodies of the messages the fake accepted, in order."""
        return [call.body for call in self.calls if call.status == 200]

    def sent_to(self, wa_id: str) -> list[dict[str, Any]]:
        return [body for body in self.sent if body.get("to") == wa_id]

    async def _send(self, request: Request) -> JSONResponse:
        number = request.path_params["phone_number_id"]
        authorization = request.headers.get("authorization")
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        status, answer, headers = self._answer(authorization, body)
        call = Call(number, authorization, body, status)
        self.calls.append(call)
        for listener in self.listeners:
            listener(call)
        return JSONResponse(answer, status, headers=headers)

    def _answer(
        self, authorization: str | None, body: Any
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if authorization != f"Bearer {self.token}":
            return 401, graph_error(190, "Invalid OAuth access token.", "OAuthException"), {}
        problem = problem_with(body)
        if problem is not None:
            return 400, graph_error(131009, f"Parameter value is not valid: {problem}"), {}
        if body["to"] in self.undeliverable:
            return 400, graph_error(131026, "Message undeliverable"), {}
        if body["to"] in self.outside_window and body.get("type") != "template":
            message = "Re-engagement message: more than 24 hours since the recipient last replied"
            return 400, graph_error(131047, message), {}
        now = self.clock()
        while self._accepted_at and now - self._accepted_at[0] >= 1.0:
            self._accepted_at.popleft()
        if self.max_per_second is not None and len(self._accepted_at) >= self.max_per_second:
            headers = {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}
            return 429, graph_error(130429, "Rate limit hit"), headers
        self._accepted_at.append(now)
        answer = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": body["to"], "wa_id": body["to"]}],
            "messages": [{"id": f"wamid.fake{next(_wamids)}"}],
        }
        return 200, answer, {}


def graph_error(code: int, message: str, kind: str = "OAuthException") -> dict[str, Any]:
    """An error body as the Graph API writes it."""
    error = {"message": f"(#{code}) {message}", "type": kind, "code": code, "fbtrace_id": "Afake"}
    return {"error": error}


def problem_with(body: Any) -> str | None:
    """What the Cloud API would refuse in a message body, or None."""
    if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
        return "messaging_product must be whatsapp"
    if not isinstance(body.get("to"), str) or not body["to"]:
        return "to is required"
    kind = body.get("type")
    if kind == "text":
        text = body.get("text", {}).get("body")
        return None if isinstance(text, str) and 0 < len(text) <= 4096 else "text.body 1-4096"
    if kind == "template":
        template = body.get("template", {})
        good = template.get("name") and template.get("language", {}).get("code")
        return None if good else "template.name and template.language.code are required"
    if kind == "interactive":
        return _interactive_problem(body.get("interactive", {}))
    return f"unsupported type {kind!r}"


def _interactive_problem(interactive: dict[str, Any]) -> str | None:
    text = interactive.get("body", {}).get("text")
    if not isinstance(text, str) or not 0 < len(text) <= 1024:
        return "interactive.body.text 1-1024"
    action = interactive.get("action", {})
    if interactive.get("type") == "button":
        buttons = action.get("buttons", [])
        if not 1 <= len(buttons) <= 3:
            return "1-3 buttons"
        titles = [b["reply"]["title"] for b in buttons]
        ids = [b["reply"]["id"] for b in buttons]
        if any(not 0 < len(t) <= 20 for t in titles) or len(set(titles)) < len(titles):
            return "button titles unique, 1-20 characters"
        if any(not 0 < len(i) <= 256 for i in ids) or len(set(ids)) < len(ids):
            return "button ids unique, 1-256 characters"
        return None
    if interactive.get("type") == "list":
        if not 0 < len(action.get("button", "")) <= 20:
            return "list button 1-20 characters"
        sections = action.get("sections", [])
        rows = [row for section in sections for row in section.get("rows", [])]
        if (
            not sections
            or len(sections) > 10
            or (len(sections) > 1 and not all(s.get("title") for s in sections))
        ):
            return "1-10 sections, titled when more than one"
        if not 1 <= len(rows) <= 10:
            return "1-10 rows"
        for row in rows:
            if not 0 < len(row.get("title", "")) <= 24 or not 0 < len(row.get("id", "")) <= 200:
                return "row title 1-24 characters, row id 1-200"
            if len(row.get("description", "")) > 72:
                return "row description at most 72 characters"
        return None
    return "interactive.type must be button or list"


# Webhook deliveries, shaped like the examples of
# https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/payload-examples


def _message(wa_id: str, kind: str, content: dict[str, Any], key: str | None) -> dict[str, Any]:
    return {
        "from": wa_id,
        "id": key or f"wamid.HBgL{next(_wamids):012d}",
        "timestamp": str(int(time.time())),
        "type": kind,
        kind: content,
    }


def text_message(wa_id: str, text: str, key: str | None = None) -> dict[str, Any]:
    return _message(wa_id, "text", {"body": text}, key)


def button_reply(
    wa_id: str, option: str, title: str = "", key: str | None = None
) -> dict[str, Any]:
    reply = {"type": "button_reply", "button_reply": {"id": option, "title": title or option}}
    return _message(wa_id, "interactive", reply, key)


def list_reply(wa_id: str, option: str, title: str = "", key: str | None = None) -> dict[str, Any]:
    reply = {"type": "list_reply", "list_reply": {"id": option, "title": title or option}}
    return _message(wa_id, "interactive", reply, key)


def status_update(wa_id: str, status: str = "delivered") -> dict[str, Any]:
    return {
        "id": f"wamid.HBgL{next(_wamids):012d}",
        "status": status,
        "timestamp": str(int(time.time())),
        "recipient_id": wa_id,
        "conversation": {"id": "CONVERSATION_ID", "origin": {"type": "service"}},
        "pricing": {"billable": True, "pricing_model": "CBP", "category": "service"},
    }


def delivery(
    *messages: dict[str, Any],
    statuses: tuple[dict[str, Any], ...] = (),
    phone_number_id: str = PHONE_NUMBER_ID,
) -> dict[str, Any]:
    """A webhook delivery holding `messages` (and `statuses`) for one business number."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": BUSINESS_NUMBER, "phone_number_id": phone_number_id},
    }
    if messages:
        senders = {m["from"] for m in messages if "from" in m}
        value["contacts"] = [{"profile": {"name": "Kerry"}, "wa_id": s} for s in sorted(senders)]
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = list(statuses)
    change = {"value": value, "field": "messages"}
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA_ID", "changes": [change]}],
    }


def signed(payload: dict[str, Any], app_secret: str) -> tuple[bytes, dict[str, str]]:
    """The raw body and headers Meta would POST for `payload`."""
    body = json.dumps(payload).encode()
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"}

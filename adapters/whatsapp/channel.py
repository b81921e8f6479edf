"""The WhatsApp Cloud API webhook: verify, parse, hand events to the core, answer fast, send.

`GET /webhooks/whatsapp` answers Meta's subscription check (the verify token entered in the
app dashboard). `POST /webhooks/whatsapp` takes deliveries: size limit (413), signature on the
raw body (401 missing, 403 wrong) before anything is parsed, JSON (400), then each participant
message goes through `Flow.handle` before the response; replies are sent after it (a background
task), so Meta gets its 200 quickly. If handling fails the answer is 500 and Meta delivers
again later; messages already handled are then duplicates the core ignores.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import PlainTextResponse
from starlette.background import BackgroundTask

from adapters.inbound import Ignored, note_ignored, parse_object, read_body
from adapters.pacing import InOrder
from adapters.whatsapp.inbound import (
    CHANNEL,
    Inbound,
    parse_delivery,
    recipient_of,
    signature_matches,
)
from adapters.whatsapp.links import whatsapp_link
from adapters.whatsapp.render import broadcast_message, render_reply
from adapters.whatsapp.sender import GraphSender, template_message, within_window
from core.broadcasts.delivery import BroadcastOutgoing
from core.broadcasts.unsubscribe import is_stop_word, unsubscribe_everywhere
from core.flow import Flow, Outcome
from core.i18n import FALLBACK, Translator
from core.messages import Text
from core.notices import Handover, Outgoing

log = logging.getLogger("consult.whatsapp")

Batch = list[tuple[Inbound, Outcome]]
# A template parameter may hold no line break, tab or run of spaces, and a template's body at
# most 1024 characters: a notice's text goes in as one line, cut to this length.
TEMPLATE_PARAMETER_LENGTH = 900


class WhatsAppChannel:
    """One WhatsApp Business app: its webhook routes and the sender its replies go through."""

    name = CHANNEL

    def __init__(
        self,
        sender: GraphSender,
        *,
        app_secret: str,
        verify_token: str,
        max_body_bytes: int = 256 * 1024,
        path: str = "/webhooks/whatsapp",
        phone_number_id: str | None = None,
        phone_number: str | None = None,
    ) -> None:
        self.sender = sender
        self.phone_number_id = phone_number_id  # the business number, when there is one
        self.phone_number = phone_number  # its number as people dial it, for wa.me links
        self.app_secret = app_secret
        self.verify_token = verify_token
        self.max_body_bytes = max_body_bytes
        self.order = InOrder()  # one participant's replies in the order of their messages
        self.flow: Flow | None = None
        self.statuses_ignored = 0
        self.unsupported_ignored = 0
        self.ignored: Counter[str] = Counter()  # deliveries and items of another shape, by kind
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.router = APIRouter()
        self.router.add_api_route(path, self.verify_subscription, methods=["GET"])
        self.router.add_api_route(path, self.receive_delivery, methods=["POST"])

    async def open(self, flow: Flow) -> None:
        self.flow = flow
        await self.sender.open()

    async def close(self) -> None:
        await self.drained()
        await self.sender.close()

    async def drained(self) -> None:
        """Wait until the replies of every delivery answered so far have been sent."""
        while self._pending:
            await self._idle.wait()

    async def verify_subscription(self, request: Request) -> Response:
        """Meta's webhook check: echo `hub.challenge` when the verify token matches, else 403."""
        query = request.query_params
        token = query.get("hub.verify_token", "")
        if query.get("hub.mode") != "subscribe" or not hmac.compare_digest(
            token.encode(), self.verify_token.encode()
        ):
            raise HTTPException(403, "hub.mode must be subscribe and hub.verify_token must match")
        return PlainTextResponse(query.get("hub.challenge", ""))

    async def receive_delivery(self, request: Request) -> Response:
        """One webhook delivery; 200 once its messages are handled (replies follow)."""
        body = await read_body(request, self.max_body_bytes)
        signature = request.headers.get("x-hub-signature-256")
        if signature is None:
            raise HTTPException(401, "X-Hub-Signature-256 header missing")
        if not signature_matches(body, signature, self.app_secret):
            raise HTTPException(403, "X-Hub-Signature-256 does not sign this body")
        payload = parse_object(body)
        delivery = payload if isinstance(payload, Ignored) else parse_delivery(payload)
        if isinstance(delivery, Ignored):  # answered 200: Meta would deliver an error again
            note_ignored(self.ignored, log, self.name, delivery.kind)
            return Response(status_code=200)
        for kind in delivery.invalid:
            note_ignored(self.ignored, log, self.name, kind)
        self.statuses_ignored += delivery.statuses
        self.unsupported_ignored += delivery.unsupported
        if delivery.unsupported:
            log.info("ignored %d message(s) of a kind we do not handle", delivery.unsupported)
        if self.flow is None:
            raise HTTPException(503, "the WhatsApp channel is not open yet")
        batch: Batch = []
        stops: list[tuple[Inbound, str]] = []  # opt-out replies, and their confirmation
        status = 200
        for inbound in delivery.messages:
            event = inbound.event
            try:
                if isinstance(event, Text) and is_stop_word(event.text):
                    stops.append((inbound, await self._unsubscribe(event.user_id)))
                    continue
                outcome = await self.flow.handle(event)
            except Exception:
                # Meta delivers again on a 5xx; handled messages are then duplicates.
                log.exception("could not handle WhatsApp message %s", inbound.event.key)
                status = 500
                break
            if outcome.replies:
                batch.append((inbound, outcome))
        if not batch and not stops:
            return Response(status_code=status)
        self._pending += 1
        self._idle.clear()
        sending = BackgroundTask(self._send_batch, batch, stops)
        return Response(status_code=status, background=sending)

    async def _unsubscribe(self, user_id: str) -> str:
        """A STOP-style reply: no broadcast writes to them again (`core.broadcasts.unsubscribe`);
        the confirmation, in their language."""
        flow = self._flow()
        async with flow.sessions() as session, session.begin():
            locale = await unsubscribe_everywhere(
                session, flow.secret, CHANNEL, user_id, flow.clock()
            )
        return Translator(locale or FALLBACK)("broadcast.unsubscribed")

    async def _send_batch(self, batch: Batch, stops: Sequence[tuple[Inbound, str]] = ()) -> None:
        try:
            for inbound, confirmation in stops:
                to = inbound.event.user_id
                async with self.order.turn(to):
                    message = {"type": "text", "text": {"body": confirmation}}
                    await self.sender.send_messages(
                        inbound.phone_number_id, to, [message], last_inbound=inbound.written_at
                    )
            for inbound, outcome in batch:
                async with self.order.turn(inbound.event.user_id):
                    await self._send_replies(
                        inbound.phone_number_id, inbound.event.user_id, outcome, inbound.written_at
                    )
        except Exception:  # a background task has nobody to report to but the log
            log.exception("could not send WhatsApp replies")
        finally:
            self._pending -= 1
            if not self._pending:
                self._idle.set()

    async def resend(self, outcome: Outcome) -> None:
        """Send a participant resumed after a crash their current question, from the business
        number their address names (`address_of`); an address of their number alone (kept before
        addresses named it) is answered from `phone_number_id`."""
        named, to = recipient_of(outcome.address or "")
        business = named or self.phone_number_id
        if not business or not to:
            log.warning("cannot resume a WhatsApp participant: no business number to send from")
            self._flow().sent(outcome.owed)
            return
        async with self.order.turn(to):
            # The reply was owed to a message they wrote moments before the crash: the 24-hour
            # window is taken as open, and Meta refuses the send (logged) if it closed since.
            await self._send_replies(business, to, outcome, self.sender.clock())

    async def notify(self, notice: Outgoing) -> Handover:
        """Send a notice (`core.notices`): as text within the 24-hour window (the author wrote
        less than 24 hours ago), else as the consultation's template, else not at all
        (`NEEDS_TEMPLATE`: the notice waits, and organisers see it)."""
        named, to = recipient_of(notice.address)
        business = named or self.phone_number_id
        if not business or not to:
            log.warning("cannot notify a WhatsApp participant: no business number to send from")
            return Handover.REFUSED
        if within_window(notice.last_seen_at, self.sender.clock()):
            message: dict[str, Any] = {"type": "text", "text": {"body": notice.text}}
        elif notice.template is not None:
            line = " ".join(notice.text.split())[:TEMPLATE_PARAMETER_LENGTH]
            template = notice.template
            message = template_message(template.name, template.language, [line])
        else:
            return Handover.NEEDS_TEMPLATE
        async with self.order.turn(to):
            return await self.sender.notify(business, to, message)

    async def broadcast(self, message: BroadcastOutgoing) -> Handover:
        """Send a broadcast's message: within the 24-hour window as text (with a reply button
        that starts the consultation again where the person left it, when it has a button),
        outside it as the broadcast's template (parameters from `template_values`), else not
        at all (`NEEDS_TEMPLATE`: it waits for the window or a template). A number that is
        not on WhatsApp or blocked the business is unreachable."""
        named, to = recipient_of(message.address)
        business = named or self.phone_number_id
        if not business or not to:
            log.warning("cannot broadcast to a WhatsApp number: no business number to send from")
            return Handover.REFUSED
        if within_window(message.last_seen_at, self.sender.clock()):
            body: dict[str, Any] = broadcast_message(
                message.text, message.button, Translator(message.locale)("broadcast.button")
            )
        elif message.template is not None:
            template = message.template
            known = {**message.template_values, "link": self._link(message.consultation_slug)}
            values = [known.get(name, "") for name in template.parameters]
            body = template_message(template.name, template.language, values)
        else:
            return Handover.NEEDS_TEMPLATE
        async with self.order.turn(to):
            return await self.sender.notify(business, to, body, undeliverable=Handover.UNREACHABLE)

    def _link(self, payload: str) -> str:
        """The wa.me link that opens the chat with the consultation's start typed ("" without
        the business's number)."""
        try:
            return whatsapp_link(self.phone_number, payload) if self.phone_number else ""
        except ValueError:
            return ""

    async def _send_replies(
        self, business: str, to: str, outcome: Outcome, written_at: datetime
    ) -> None:
        # A list needs a button label, in the language the core answered in.
        button = Translator(outcome.locale or FALLBACK)("whatsapp.list_button")
        messages = [message for reply in outcome.replies for message in render_reply(reply, button)]
        try:
            if await self._flow().still_current(outcome):  # a resumed one may be stale
                await self.sender.send_messages(business, to, messages, last_inbound=written_at)
        finally:  # sent or refused for good: a live worker never sends it again
            self._flow().sent(outcome.owed)

    def _flow(self) -> Flow:
        assert self.flow is not None, "the channel is opened when the server starts"
        return self.flow

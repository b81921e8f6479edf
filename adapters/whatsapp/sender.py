"""Sending messages through the WhatsApp Cloud API (Meta's Graph API) over HTTP.

There is no official Python SDK for the Cloud API, so this is a small httpx client:
`POST {api_url}/{phone_number_id}/messages` with `Authorization: Bearer <token>`.

Two platform rules shape it:

- Throughput: sends are paced (`adapters.pacing.Pacer`; 80 messages per second is a Cloud API
  number's default throughput, about one per second per recipient with a small burst), and a
  throughput error that still comes back (HTTP 429, Graph codes 130429, 131056, 80007) is
  retried after Retry-After or an exponential backoff, a bounded number of times (in a slot of
  its flow when a caller paces it: `adapters.pacing.pace_again`).
- The 24-hour customer-service window: free-form messages may only be sent within 24 hours of
  the participant's last message; after that only an approved template may be sent.
  `within_window` says which applies; `send_messages` refuses what the platform would refuse.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from adapters.pacing import Pacer, pace_again
from core.notices import Handover

log = logging.getLogger("consult.whatsapp")

WINDOW = timedelta(hours=24)
# Graph error codes meaning "slow down": rate limit hit, too many messages to one user,
# account throughput reached (https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes).
THROUGHPUT_ERRORS = frozenset({130429, 131056, 80007})
# Meta's refusal of a free-form message outside the 24-hour window ("Re-engagement message").
OUTSIDE_WINDOW = 131047
# Meta's "message undeliverable": not a WhatsApp number, or one that blocked the business.
UNDELIVERABLE = 131026
MAX_DELAY = 60.0


def utc_now() -> datetime:
    return datetime.now(UTC)


def within_window(last_inbound: datetime | None, now: datetime) -> bool:
    """Whether free-form messages may be sent: the participant wrote less than 24 hours ago."""
    return last_inbound is not None and now - last_inbound < WINDOW


def template_message(name: str, language: str, parameters: Sequence[str] = ()) -> dict[str, Any]:
    """An approved template `name` in `language` ("en", "fr"...), body parameters in order."""
    template: dict[str, Any] = {"name": name, "language": {"code": language}}
    if parameters:
        values = [{"type": "text", "text": value} for value in parameters]
        template["components"] = [{"type": "body", "parameters": values}]
    return {"type": "template", "template": template}


class GraphSender:
    """Sends messages from one app's numbers; counts what it sent, retried, failed, refused."""

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        messages_per_second: float = 80.0,
        recipient_messages_per_second: float = 1.0,
        recipient_burst: float = 3.0,
        max_attempts: int = 5,
        backoff_seconds: float = 0.5,
        timeout_seconds: float = 10.0,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.pacer = Pacer(
            messages_per_second,
            recipient_messages_per_second,
            per_key_burst=recipient_burst,
            sleep=sleep,
        )
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.timeout_seconds = timeout_seconds
        self.clock = clock
        self.sleep = sleep
        self.client: httpx.AsyncClient | None = None
        self.sent = 0
        self.retried = 0
        self.failed = 0
        self.refused_outside_window = 0

    async def open(self) -> None:
        self.client = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {self.token}"}, timeout=self.timeout_seconds
        )

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    async def send_messages(
        self,
        phone_number_id: str,
        to: str,
        messages: Sequence[dict[str, Any]],
        *,
        last_inbound: datetime | None,
    ) -> int:
        """Send free-form `messages` in order to `to`; how many were delivered.

        Outside the 24-hour window nothing is sent: the refusal is logged and counted
        (`refused_outside_window`); use `send_template` instead. A message that fails for good
        is logged and counted (`failed`) and the rest are still sent.
        """
        if not within_window(last_inbound, self.clock()):
            self.refused_outside_window += len(messages)
            log.warning(
                "not sending %d free-form message(s) to %s from %s: the participant last wrote "
                "at %s, more than 24 hours ago (WhatsApp allows only a template message then)",
                len(messages),
                _masked(to),
                phone_number_id,
                last_inbound.isoformat() if last_inbound else "never",
            )
            return 0
        delivered = 0
        for message in messages:
            delivered += await self._post(phone_number_id, to, message)
        return delivered

    async def send_template(
        self,
        phone_number_id: str,
        to: str,
        name: str,
        language: str,
        parameters: Sequence[str] = (),
    ) -> bool:
        """Send an approved template message (allowed outside the 24-hour window)."""
        return await self._post(phone_number_id, to, template_message(name, language, parameters))

    async def notify(
        self,
        phone_number_id: str,
        to: str,
        message: dict[str, Any],
        *,
        undeliverable: Handover = Handover.REFUSED,
    ) -> Handover:
        """Send one notice (`core.notices`) and say what became of it. Unlike the replies,
        nothing that may have reached Meta is sent again (a timeout, a 5xx); a throughput
        error or a connection that never opened is tried again, `max_attempts` times.
        `undeliverable` is what Meta's 131026 (the number is not on WhatsApp, or blocked the
        business) means to the caller."""
        client, url, body = self._request(phone_number_id, to, message)
        for attempt in range(1, self.max_attempts + 1):
            await self.pacer.wait(to)
            try:
                response = await client.post(url, json=body)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
                problem, delay = f"no connection {error!r}", None
            except httpx.TransportError as error:
                log.warning("a notice to %s may not have arrived: %r", _masked(to), error)
                return Handover.UNKNOWN
            else:
                if response.is_success:
                    self.sent += 1
                    return Handover.SENT
                code, problem = _graph_error(response)
                if code == OUTSIDE_WINDOW:
                    self.refused_outside_window += 1
                    return Handover.NEEDS_TEMPLATE
                if code == UNDELIVERABLE:
                    self.failed += 1
                    return undeliverable
                if response.status_code >= 500:
                    log.warning("a notice to %s may not have arrived: %s", _masked(to), problem)
                    return Handover.UNKNOWN
                if not _retryable(response.status_code, code):
                    self.failed += 1
                    log.error("Meta refused a notice to %s: %s", _masked(to), problem)
                    return Handover.REFUSED
                delay = _retry_after(response)
            if attempt < self.max_attempts:
                self.retried += 1
                wait = delay if delay is not None else self.backoff_seconds * 2 ** (attempt - 1)
                await self.sleep(min(wait, MAX_DELAY))
                await pace_again()
        log.warning("a notice to %s is put off: %s", _masked(to), problem)
        return Handover.RETRY

    def _request(
        self, phone_number_id: str, to: str, message: dict[str, Any]
    ) -> tuple[httpx.AsyncClient, str, dict[str, Any]]:
        """The open client, the Graph URL and the body that send `message` to `to`."""
        if self.client is None:
            raise RuntimeError("GraphSender.open() was not called")
        body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual"}
        body.update(to=to, **message)
        return self.client, f"{self.api_url}/{phone_number_id}/messages", body

    async def _post(self, phone_number_id: str, to: str, message: dict[str, Any]) -> bool:
        client, url, body = self._request(phone_number_id, to, message)
        for attempt in range(1, self.max_attempts + 1):
            await self.pacer.wait(to)
            try:
                response = await client.post(url, json=body)
            except httpx.TransportError as error:
                problem, delay = f"transport error {error!r}", None
            else:
                if response.is_success:
                    self.sent += 1
                    return True
                code, problem = _graph_error(response)
                if not _retryable(response.status_code, code):
                    break
                delay = _retry_after(response)
            if attempt == self.max_attempts:
                break
            self.retried += 1
            wait = delay if delay is not None else self.backoff_seconds * 2 ** (attempt - 1)
            await self.sleep(min(wait, MAX_DELAY))
            await pace_again()
        self.failed += 1
        log.error("could not send a %s message to %s: %s", body["type"], _masked(to), problem)
        return False


def _graph_error(response: httpx.Response) -> tuple[int | None, str]:
    """The Graph error code and a readable summary of a failed response."""
    try:
        error = response.json().get("error", {})
    except (ValueError, AttributeError):
        return None, f"HTTP {response.status_code}"
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return (code if isinstance(code, int) else None), f"HTTP {response.status_code} {message}"


def _retryable(status: int, code: int | None) -> bool:
    return status == 429 or status >= 500 or code in THROUGHPUT_ERRORS


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _masked(number: str) -> str:
    """A recipient for logs: enough to tell numbers apart, not enough to dial them."""
    return "…" + number[-4:]

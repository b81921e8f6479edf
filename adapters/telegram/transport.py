"""An aiohttp transport for python-telegram-bot: PTB's client and types, a cheaper HTTP stack.

PTB's default transport (httpx over httpcore and anyio) cost the server about 3 ms of CPU per Bot
API call under load: anyio's cancel scopes and locks on every read and write, a check of every
pooled connection's socket per request and, without the optional `sniffio`, an import attempt in
each of them. A vote makes two calls (the card edited, the next card sent), so that was half of
what a vote cost. aiohttp (already here for slack-bolt) does the same work with a C parser and
plain asyncio. PTB supports such a replacement through its `BaseRequest` interface; its own error
handling (429 as `RetryAfter`, refusals, flood control) is unchanged, since it reads the status
and body returned here.
"""

from __future__ import annotations

import urllib.request
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

MEDIA_WRITE_TIMEOUT = 20.0  # an upload's default write timeout, as PTB's own transport has


def _given(value: Any, default: float | None) -> float | None:
    """A timeout PTB passed, or ours when it passed its "not given" marker."""
    return default if isinstance(value, type(BaseRequest.DEFAULT_NONE)) else value


class AiohttpRequest(BaseRequest):
    """Bot API requests over one aiohttp session (keep-alive, up to `connections` at once)."""

    def __init__(
        self,
        *,
        connections: int = 64,
        connect_timeout: float | None = 5.0,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        pool_timeout: float | None = 10.0,
    ) -> None:
        self.connections = connections
        self.timeouts = {
            "connect": connect_timeout,
            "read": read_timeout,
            "write": write_timeout,
            "pool": pool_timeout,
        }
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str], str | None] = {}

    @property
    def read_timeout(self) -> float | None:
        return self.timeouts["read"]

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.connections)
            # No cookies for the Bot API; proxies are read from the environment once per
            # origin (`_proxy_for`) rather than by aiohttp's trust_env, which reads them and
            # ~/.netrc in a thread on every request.
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar()
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def _proxy_for(self, url: str) -> str | None:
        """The proxy for `url` from the environment (HTTPS_PROXY, ALL_PROXY, NO_PROXY...), as
        PTB's own transport honours them."""
        parts = urlsplit(url)
        origin = (parts.scheme, parts.hostname or "")
        if origin not in self._proxies:
            found = urllib.request.getproxies()
            bypass = bool(origin[1]) and urllib.request.proxy_bypass(origin[1])
            self._proxies[origin] = None if bypass else found.get(parts.scheme, found.get("all"))
        return self._proxies[origin]

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized")
        read = _given(read_timeout, self.timeouts["read"])
        uploading = request_data is not None and request_data.contains_files
        write = _given(write_timeout, MEDIA_WRITE_TIMEOUT if uploading else self.timeouts["write"])
        connect = _given(connect_timeout, self.timeouts["connect"])
        pool = _given(pool_timeout, self.timeouts["pool"])
        # aiohttp has no write timeout of its own: the whole exchange is bounded instead.
        parts = [t for t in (pool, connect, write, read) if t is not None]
        timeout = aiohttp.ClientTimeout(
            total=sum(parts) if len(parts) == 4 else None,
            connect=pool,
            sock_connect=connect,
            sock_read=read,
        )
        try:
            async with self._session.request(
                method,
                url,
                data=_body(request_data),
                headers={"User-Agent": self.USER_AGENT},
                timeout=timeout,
                allow_redirects=False,  # the Bot API does not redirect; a POST stays a POST
                proxy=self._proxy_for(url),
            ) as response:
                return response.status, await response.read()
        except TimeoutError as error:
            raise TimedOut from error
        except aiohttp.ClientError as error:
            raise NetworkError(f"aiohttp.{type(error).__name__}: {error}") from error


def _body(request_data: RequestData | None) -> Any:
    """Parameters as a urlencoded form, or multipart when files are uploaded (as PTB's own
    transport sends them)."""
    if request_data is None:
        return None
    parameters = request_data.json_parameters
    if not request_data.contains_files:
        return parameters
    form = aiohttp.FormData()
    for name, value in parameters.items():
        form.add_field(name, value)
    for name, (filename, content, mimetype) in request_data.multipart_data.items():
        form.add_field(name, content, filename=filename, content_type=mimetype)
    return form

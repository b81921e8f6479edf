"""The Slack channel: a slack-bolt AsyncApp behind POST /webhooks/slack/events.

One path takes events, interactivity and slash commands. The request is size-checked and its
signature verified (HMAC-SHA256 of "v0:timestamp:body", 5-minute window) before bolt sees it;
bolt then routes it to the listeners below, and answers Slack only once a listener returned
(`process_before_response`). So each listener applies the event to the conversation first (one
short transaction; Slack allows 3 s) and acknowledges after: Slack's 200 means the event is
committed, and a crash before it leaves Slack to deliver the event again (the Events API) or
the person to tap again (interactions, which Slack never redelivers); either is processed once,
by its idempotency key. The replies go out afterwards in a task the channel tracks, so
`close()` can let pending sends finish; what they owe is recorded in the event's transaction
(`core.outbox`), so a crash after the answer strands nobody.

A tap that leads to one question edits the tapped message into it: one Web API call per vote.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import aiohttp
from fastapi import APIRouter, HTTPException, Request, Response
from slack_bolt.adapter.starlette.async_handler import (
    AsyncSlackRequestHandler,
    to_starlette_response,
)
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.signature import Clock, SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.exc import SQLAlchemyError

from adapters.inbound import Ignored, note_ignored, read_body
from adapters.pacing import Pacer, pace_again
from adapters.slack import inbound
from adapters.slack.home import home_view
from adapters.slack.moderation import (
    MODERATE_ACTION,
    SEND_ERRORS,
    handover_after,
    link_code,
    post_to_slack,
    tap_of,
    with_buttons,
)
from adapters.slack.oauth import INSTALL_PATH, REDIRECT_PATH, OAuthApp, oauth_settings
from adapters.slack.payloads import validated_body
from adapters.slack.render import (
    CHOICE_ACTION,
    PARTICIPATE_ACTION,
    PROPOSAL_BLOCK,
    PROPOSAL_FORM,
    WRITE_PROPOSAL_ACTION,
    answered_blocks,
    broadcast_post,
    consultation_post,
    continued,
    escape_mrkdwn,
    first_text,
    proposal_modal,
    render_reply,
)
from core.broadcasts.delivery import BroadcastOutgoing
from core.definitions import consultation_by_slug
from core.flow import Flow, Outcome
from core.i18n import FALLBACK, Translator, available_locales, negotiate
from core.messages import Reply
from core.moderation.chat import ChatAnswer, connected_chat, link_member, tap_in_chat
from core.moderation.chat_posts import OutgoingPost, Posted
from core.notices import Handover, Outgoing
from core.participation import open_consultations_for

logger = logging.getLogger(__name__)

EVENTS_PATH = "/webhooks/slack/events"
# Slack's errors for a member the app can no longer write to: skipped from then on.
GONE = frozenset({"user_not_found", "account_inactive", "cannot_dm_bot", "user_disabled"})
# Users whose DM channel id and locale are remembered per process (delivery details only).
_CACHE_SIZE = 10_000


class PacedRateLimitRetry(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's wait for a 429's Retry-After, then a slot of the send's flow when its caller
    paces it (`adapters.pacing.pace_again`: a broadcast's retry is not sent on top of it)."""

    async def prepare_for_next_attempt_async(self, **attempt: Any) -> None:
        await super().prepare_for_next_attempt_async(**attempt)
        await pace_again()


class SlackChannel:
    """Slack for one workspace (`bot_token`) or many (`oauth`: installs kept in our database)."""

    name = inbound.CHANNEL

    def __init__(
        self,
        *,
        signing_secret: str,
        api_url: str = "https://slack.com/api/",
        bot_token: str | None = None,
        oauth: OAuthApp | None = None,
        max_body_bytes: int = 256 * 1024,
        clock: Clock | None = None,
        pacer: Pacer | None = None,
        rate_limit_retries: int = 3,
    ) -> None:
        if not bot_token and oauth is None:
            raise ValueError("Slack needs a bot token (one workspace) or OAuth credentials")
        self.verifier = SignatureVerifier(signing_secret, clock or Clock())
        self.signing_secret = signing_secret
        self.api_url = api_url if api_url.endswith("/") else api_url + "/"
        self.bot_token = bot_token
        self.oauth = oauth
        self.max_body_bytes = max_body_bytes
        # Slack allows about one message per second per conversation, with short bursts.
        self.pacer = pacer or Pacer(20.0, 1.0, per_key_burst=5.0)
        self.rate_limit_retries = rate_limit_retries
        self.app: AsyncApp | None = None
        self._flow: Flow | None = None
        self.ignored: Counter[str] = Counter()  # well-signed bodies we cannot act on, by kind
        self._tasks: set[asyncio.Task[None]] = set()
        self._locales: dict[str, str | None] = {}
        self._dms: dict[str, str] = {}
        self.router = APIRouter()
        self.router.add_api_route(EVENTS_PATH, self._receive, methods=["POST"])
        if oauth is not None:
            self.router.add_api_route(INSTALL_PATH, self._oauth_page, methods=["GET"])
            self.router.add_api_route(REDIRECT_PATH, self._oauth_page, methods=["GET"])

    # -- lifecycle -----------------------------------------------------------------------

    def web_client(self, token: str | None) -> AsyncWebClient:
        """A Web API client at our API URL that waits out 429s (Retry-After) and retries a
        dropped connection (the handlers given replace slack_sdk's default one, so it is named
        again here)."""
        retry = AsyncRateLimitErrorRetryHandler(max_retry_count=self.rate_limit_retries)
        handlers = [AsyncConnectionErrorRetryHandler(), retry]
        return AsyncWebClient(token=token, base_url=self.api_url, retry_handlers=handlers)

    async def open(self, flow: Flow) -> None:
        self._flow = flow
        settings = None
        if self.oauth is not None:
            settings = await oauth_settings(self.oauth, flow.sessions.kw["bind"])
        app = AsyncApp(
            client=self.web_client(self.bot_token),  # bolt takes the token from it
            signing_secret=self.signing_secret,
            oauth_settings=settings,
            request_verification_enabled=False,  # done in _receive, before bolt
            # Listeners run before the answer, acknowledgement or not: an event is committed
            # before Slack gets its 200, so a failure answers 500 and Slack delivers it again
            # (processed once: event ids are idempotency keys).
            process_before_response=True,
        )
        app.command("/consult")(self._on_command)
        app.event("message")(self._on_message)
        app.event("app_home_opened")(self._on_home)
        app.action(re.compile(f"^{CHOICE_ACTION}:"))(self._on_choice)
        app.action(re.compile(f"^{PARTICIPATE_ACTION}:"))(self._on_participate)
        app.action(WRITE_PROPOSAL_ACTION)(self._on_write_proposal)
        app.action(re.compile(f"^{MODERATE_ACTION}:"))(self._on_moderate)
        app.view_submission(PROPOSAL_FORM)(self._on_proposal)
        self.app = app

    async def close(self) -> None:
        await self.drained()
        self.app = None

    async def drained(self) -> None:
        """Wait until the work of every request answered so far is done."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    @property
    def flow(self) -> Flow:
        if self._flow is None:
            raise RuntimeError("the Slack channel is not open")
        return self._flow

    # -- HTTP ----------------------------------------------------------------------------

    async def _receive(self, request: Request) -> Response:
        """Verify, then hand the request to bolt; 401 for a bad or old signature."""
        body = await read_body(request, self.max_body_bytes)
        try:
            valid = self.verifier.is_valid_request(body, dict(request.headers))
        except (ValueError, TypeError):  # a timestamp that is not a number, a non-ASCII header
            valid = False
        if not valid:
            raise HTTPException(401, "invalid or expired Slack signature")
        if self.app is None:
            raise HTTPException(503, "the Slack channel is not open yet")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise HTTPException(400, "the body is not UTF-8 text") from None
        # Bolt gets only what was validated: its own readers and ours never meet an odd shape.
        checked = validated_body(text, request.headers.get("content-type"))
        if isinstance(checked, Ignored):  # answered 200: Slack would deliver an error again
            note_ignored(self.ignored, logger, self.name, checked.kind)
            return Response(status_code=200)
        bolt_request = AsyncBoltRequest(
            body=checked,
            query=request.url.query,
            headers={key: [value] for key, value in request.headers.items()},
        )
        # A well-formed request no listener of ours takes (another app's command) gets
        # bolt's 404.
        return to_starlette_response(await self.app.async_dispatch(bolt_request))

    async def _oauth_page(self, request: Request) -> Response:
        if self.app is None:
            raise HTTPException(503, "the Slack channel is not open yet")
        return await AsyncSlackRequestHandler(self.app).handle(request)

    # -- listeners -----------------------------------------------------------------------

    async def _on_command(self, ack: AsyncAck, body: dict[str, Any], client: Any) -> None:
        code = link_code(str(body.get("text") or ""))
        if code is not None and await self._linking(ack, body, code):
            return
        team, user = inbound.team_of(body), body["user_id"]
        dm = await self._dm(client, team, user)
        locale = await self._locale(client, team, user)
        outcome = await self.flow.handle(inbound.slash_command_event(body, dm, locale))
        await ack()
        self._spawn(self._send(client, dm, outcome, locale))

    async def _on_message(self, event: dict[str, Any], body: dict[str, Any], client: Any) -> None:
        if event.get("channel_type") != "im" or event.get("subtype") or event.get("bot_id"):
            return  # our own messages, edits, joins: not something a participant said
        team, user = inbound.team_of(body), body["event"]["user"]
        locale = await self._locale(client, team, user)
        outcome = await self.flow.handle(inbound.message_event(body, locale))
        self._spawn(self._send(client, body["event"]["channel"], outcome, locale))

    async def _on_home(self, event: dict[str, Any], body: dict[str, Any], client: Any) -> None:
        if event.get("tab") == "home":
            self._spawn(self._publish_home(inbound.team_of(body), event["user"], client))

    async def _publish_home(self, team: str, user: str, client: AsyncWebClient) -> None:
        locale = await self._locale(client, team, user)
        key = inbound.user_key(team, user)
        flow = self.flow
        async with flow.sessions() as session:
            chosen, entries = await open_consultations_for(
                session, flow.secret, self.name, key, locale, flow.clock()
            )
        view = home_view(self.translator(chosen or locale), entries)
        await client.views_publish(user_id=user, view=view)

    async def _on_choice(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: Any
    ) -> None:
        team, user = inbound.team_of(body), body["user"]["id"]
        container = body.get("container") or {}
        dm = container.get("channel_id") or body["channel"]["id"]
        locale = await self._locale(client, team, user)
        outcome = await self.flow.handle(inbound.choice_event(body, action, dm, locale))
        await ack()
        self._spawn(self._send(client, dm, outcome, locale, tapped=body))

    # -- moderators' channels (core.moderation.chat) --------------------------------------

    async def _linking(self, ack: AsyncAck, body: dict[str, Any], code: str) -> bool:
        """`/consult link CODE` in a moderators' channel links the member, answered to them
        alone; False (a participant's command) in any other channel."""
        channel = str(body.get("channel_id") or "")
        member = f"{inbound.team_of(body)}:{body['user_id']}"
        flow = self.flow
        async with flow.sessions() as session, session.begin():
            if await connected_chat(session, self.name, channel) is None:
                return False
            said = await link_member(
                session, self.name, channel, member, code, secret=flow.secret, now=flow.clock()
            )
        await ack(text=said)
        return True

    async def _on_moderate(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: Any
    ) -> None:
        tap = tap_of(body, action)
        flow = self.flow
        async with flow.sessions() as session, session.begin():
            answer = await tap_in_chat(session, tap, secret=flow.secret, now=flow.clock())
        await ack()
        self._spawn(self._answer_moderator(client, body, answer))

    async def _answer_moderator(
        self, client: AsyncWebClient, body: dict[str, Any], answer: ChatAnswer
    ) -> None:
        """Tell the moderator who tapped (them alone), and give the post its new buttons."""
        channel = (body.get("container") or {}).get("channel_id") or body["channel"]["id"]
        user = body["user"]["id"]
        await self.pacer.wait(channel)
        await client.chat_postEphemeral(channel=channel, user=user, text=answer.text)
        message = body.get("message") or {}
        ts = (body.get("container") or {}).get("message_ts") or message.get("ts")
        if answer.buttons is not None and ts:
            blocks = with_buttons(message.get("blocks", []), answer.buttons)
            text = message.get("text") or first_text(blocks) or "…"
            await self._update(client, channel, ts, {"text": text, "blocks": blocks})

    async def post_to_chat(self, post: OutgoingPost) -> Posted:
        """Post a proposal in a moderators' channel, or edit its post (`core.moderation.chat`),
        with a client that retries nothing that may have been posted."""
        try:
            client = await self._client_for("")
        except LookupError:  # several workspaces: a channel id alone does not say which
            return Posted(Handover.REFUSED)
        retry = AsyncRateLimitErrorRetryHandler(max_retry_count=self.rate_limit_retries)
        once = AsyncWebClient(token=client.token, base_url=self.api_url, retry_handlers=[retry])
        return await post_to_slack(once, self.pacer, post)

    async def _settle_tapped(
        self, client: AsyncWebClient, body: dict[str, Any], dm: str, outcome: Outcome
    ) -> list[Reply]:
        """Edit the tapped message, and say which replies are still to post.

        When the conversation goes on with one question (the qualification after a vote, the
        next card after it), the tapped message becomes that question, its first line recalling
        the answer: a vote then costs one chat.update, not an update and a post, and Slack's
        rate limits make twice as many votes. Otherwise (a summary and the menu, a prompt for
        text, a stale button) it keeps its text with the answer under it (or no buttons, if
        stale), and the replies follow as new messages.
        """
        message = body.get("message") or {}
        ts = (body.get("container") or {}).get("message_ts") or message.get("ts")
        replies = outcome.replies
        if not ts:
            return replies
        if outcome.chosen and outcome.recall and len(replies) == 1 and replies[0].pick:
            edited = continued(outcome.recall, replies[0])
            if edited is not None and await self._update(client, dm, ts, edited):
                return []
            # Too long for one message, or refused: the question goes out as a new message.
        label = outcome.chosen.label if outcome.chosen is not None else None
        blocks = answered_blocks(message.get("blocks", []), label)
        # Slack wants text beside blocks (notifications, screen readers); a card may come without.
        text = message.get("text") or first_text(blocks) or "✓"
        await self._update(client, dm, ts, {"text": text, "blocks": blocks})
        return replies

    async def _update(
        self, client: AsyncWebClient, dm: str, ts: str, message: dict[str, Any]
    ) -> bool:
        """chat.update the message `ts` of the DM to `message`; whether Slack took it."""
        await self.pacer.wait(dm)
        try:
            await client.chat_update(channel=dm, ts=ts, **message)
        except SlackApiError as error:  # the next question matters more than the old message
            logger.warning("could not update a tapped message: %s", error.response.get("error"))
            return False
        return True

    async def _on_participate(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: Any
    ) -> None:
        team, user = inbound.team_of(body), body["user"]["id"]
        dm = await self._dm(client, team, user)
        locale = await self._locale(client, team, user)
        outcome = await self.flow.handle(inbound.participate_event(body, action, dm, locale))
        await ack()
        self._spawn(self._send(client, dm, outcome, locale))

    async def _on_write_proposal(self, ack: AsyncAck, body: dict[str, Any], client: Any) -> None:
        await ack()
        # The trigger id expires 3 s after the tap: open the modal now, not in a task.
        team, user = inbound.team_of(body), body["user"]["id"]
        dm = (body.get("container") or {}).get("channel_id") or body["channel"]["id"]
        locale = await self._locale(client, team, user)
        prompt = first_text((body.get("message") or {}).get("blocks", []))
        view = proposal_modal(self.translator(locale), prompt, dm)
        try:
            await client.views_open(trigger_id=body["trigger_id"], view=view)
        except SlackApiError as error:  # an expired trigger, say: they can tap again
            logger.warning("could not open the proposal form: %s", error.response.get("error"))

    async def _on_proposal(self, ack: AsyncAck, body: dict[str, Any], client: Any) -> None:
        """The modal's text goes to the core; a refusal of it is shown in the modal
        (response_action "errors"), anything else closes it and goes to the DM."""
        team, user = inbound.team_of(body), body["user"]["id"]
        dm = body["view"].get("private_metadata") or await self._dm(client, team, user)
        locale = await self._locale(client, team, user)
        outcome = await self.flow.handle(inbound.proposal_event(body, dm, locale))
        if outcome.refusal is not None:
            await ack(response_action="errors", errors={PROPOSAL_BLOCK: outcome.refusal})
            self.flow.sent(outcome.owed)  # shown in the modal
            return
        await ack()
        self._spawn(self._send(client, dm, outcome, locale))

    # -- sending -------------------------------------------------------------------------

    async def _send(
        self,
        client: AsyncWebClient,
        dm: str,
        outcome: Outcome,
        locale: str | None,
        *,
        tapped: dict[str, Any] | None = None,
    ) -> None:
        """Post the outcome's replies in the DM, in order, then settle what the outcome owed;
        a reply waiting for the proposal form offers the modal.

        With `tapped`, the body of the tap the outcome answers, the tapped message is edited
        first, into the reply that follows when it can be (`_settle_tapped`).
        """
        label = self.translator(locale)("slack.write_proposal")
        try:
            if not await self.flow.still_current(outcome):  # a resumed one may be stale
                self.flow.sent(outcome.owed)
                return
            replies = outcome.replies
            # A duplicate has replies only when it resumes: they go out as new messages.
            if tapped is not None and not outcome.duplicate:
                replies = await self._settle_tapped(client, tapped, dm, outcome)
            for reply in replies:
                button = label if reply.form == "proposal" else None
                await self.pacer.wait(dm)
                message = render_reply(reply, proposal_button=button)
                await client.chat_postMessage(channel=dm, **message)
        except (aiohttp.ClientError, TimeoutError, SQLAlchemyError):
            # Slack or our database out of reach, past slack_sdk's retries: the question is
            # asked again once the row is stale, rather than lost.
            self.flow.release(outcome.owed)
            raise
        except BaseException:  # refused by Slack, or a bug: retrying would not help
            self.flow.sent(outcome.owed)
            raise
        self.flow.sent(outcome.owed)

    async def resend(self, outcome: Outcome) -> None:
        """Post a participant resumed after a crash their current question in their DM (their
        address is "{team}:{dm channel}")."""
        team, _, dm = (outcome.address or "").partition(":")
        try:
            client = await self._client_for(team)
        except LookupError:  # uninstalled from the workspace since
            logger.warning("cannot resume a Slack participant: the app left their workspace")
            self.flow.sent(outcome.owed)
            return
        await self._send(client, dm, outcome, outcome.locale)

    async def notify(self, notice: Outgoing) -> Handover:
        """Post a notice (`core.notices`) in the author's DM ("{team}:{dm channel}"). A 429 is
        waited out; a connection dropped once the request may have been written is not tried
        again (the post may have landed): the notice is then unknown."""
        team, _, dm = notice.address.partition(":")
        try:
            client = await self._client_for(team)
        except LookupError:  # uninstalled from the workspace since
            return Handover.REFUSED
        retry = AsyncRateLimitErrorRetryHandler(max_retry_count=self.rate_limit_retries)
        once = AsyncWebClient(token=client.token, base_url=self.api_url, retry_handlers=[retry])
        await self.pacer.wait(dm)
        try:
            await once.chat_postMessage(channel=dm, text=escape_mrkdwn(notice.text))
        except SEND_ERRORS as error:
            return handover_after(error, "a notice")
        return Handover.SENT

    async def broadcast(self, message: BroadcastOutgoing) -> Handover:
        """Post a broadcast's message in a member's DM (their address: "{team}:{DM or user
        id}"; a user id posts in the app's DM with them), with a button that starts the
        consultation again where they left it. A member gone from the workspace, deactivated
        or a bot is unreachable; a 429 is waited out, and nothing that may have been posted is
        posted again."""
        team, _, dm = message.address.partition(":")
        try:
            client = await self._client_for(team)
        except LookupError:  # uninstalled from the workspace since
            return Handover.REFUSED
        retry = PacedRateLimitRetry(max_retry_count=self.rate_limit_retries)
        once = AsyncWebClient(token=client.token, base_url=self.api_url, retry_handlers=[retry])
        label = self.translator(message.locale)("broadcast.button")
        await self.pacer.wait(dm)
        try:
            await once.chat_postMessage(
                channel=dm, **broadcast_post(message.text, message.button, label)
            )
        except SlackApiError as error:
            if error.response.get("error") in GONE:
                return Handover.UNREACHABLE
            return handover_after(error, "a broadcast message")
        except SEND_ERRORS as error:
            return handover_after(error, "a broadcast message")
        return Handover.SENT

    async def members(
        self, channel_id: str | None = None, *, team_id: str = "", page: int = 200
    ) -> AsyncIterator[list[tuple[str, str | None]]]:
        """The people of the workspace (or of the Slack channel `channel_id`) a broadcast may
        write to, a page at a time, as (address "{team}:{user id}", Slack locale) pairs: no
        bot, no deactivated account, not the app itself (users.list or conversations.members,
        paginated; a channel's members are looked up with users.info)."""
        client = await self._client_for(team_id)
        me = await client.auth_test()
        team, bot_user = str(me["team_id"]), str(me.get("user_id") or "")
        cursor: str | None = None
        while True:
            if channel_id is None:
                listed = await client.users_list(cursor=cursor, limit=page, include_locale=True)
                users = list(listed.get("members") or [])
            else:
                listed = await client.conversations_members(
                    channel=channel_id, cursor=cursor, limit=page
                )
                users = []
                for user in listed.get("members") or []:
                    info = await client.users_info(user=user, include_locale=True)
                    users.append(info.get("user") or {})
            yield [
                (inbound.user_key(team, str(user["id"])), user.get("locale"))
                for user in users
                if user.get("id")
                and user["id"] not in (bot_user, "USLACKBOT")
                and not user.get("is_bot")
                and not user.get("deleted")
            ]
            cursor = (listed.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return

    async def post_consultation(self, channel_id: str, slug: str, team_id: str = "") -> str:
        """Post a consultation's question in a channel with a "Participate" button; its ts.

        Raises LookupError if no consultation has that slug. `team_id` picks the installation
        when the app serves several workspaces.
        """
        async with self.flow.sessions() as session:
            consultation = await consultation_by_slug(session, slug)
        if consultation is None:
            raise LookupError(f"no consultation with slug {slug!r}")
        client = await self._client_for(team_id)
        question = consultation.question[consultation.default_locale]
        message = consultation_post(Translator(consultation.default_locale), question, slug)
        response = await client.chat_postMessage(channel=channel_id, **message)
        return str(response["ts"])

    async def _client_for(self, team_id: str) -> AsyncWebClient:
        if self.bot_token or self.app is None or self.app.installation_store is None:
            return self.web_client(self.bot_token)
        bot = await self.app.installation_store.async_find_bot(enterprise_id=None, team_id=team_id)
        if bot is None:
            raise LookupError(f"the app is not installed in workspace {team_id!r}")
        return self.web_client(bot.bot_token)

    # -- helpers -------------------------------------------------------------------------

    def translator(self, locale: str | None) -> Translator:
        """The channel's own labels (buttons, modal) in the participant's Slack language."""
        return Translator(negotiate(locale, available_locales()) or FALLBACK)

    async def _dm(self, client: AsyncWebClient, team: str, user: str) -> str:
        """The DM channel with `user` (conversations.open is idempotent; cached per process)."""
        key = inbound.user_key(team, user)
        if key not in self._dms:
            response = await client.conversations_open(users=user)
            self._remember(self._dms, key, str(response["channel"]["id"]))
        return self._dms[key]

    async def _locale(self, client: AsyncWebClient, team: str, user: str) -> str | None:
        """The user's Slack locale ("fr-FR") from users.info, as the core's locale hint."""
        key = inbound.user_key(team, user)
        if key not in self._locales:
            response = await client.users_info(user=user, include_locale=True)
            profile = response.get("user") or {}
            self._remember(self._locales, key, profile.get("locale"))
        return self._locales[key]

    @staticmethod
    def _remember(cache: dict[str, Any], key: str, value: Any) -> None:
        if len(cache) >= _CACHE_SIZE:
            cache.pop(next(iter(cache)))
        cache[key] = value

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(self._logged(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _logged(work: Coroutine[Any, Any, None]) -> None:
        # Never a traceback in a chat, never a silent drop: log what went wrong.
        try:
            await work
        except Exception:
            logger.exception("Slack: handling an update failed")


__all__ = ["EVENTS_PATH", "SlackChannel"]

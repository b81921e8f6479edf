"""Building the Slack channel from Settings, and `consult slack post CHANNEL SLUG`: the
question of a consultation with a "Participate" button, posted in a Slack channel (the app must
be a member of it)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from slack_sdk.errors import SlackApiError

from adapters.pacing import Pacer
from adapters.slack import OAuthApp, SlackChannel
from bots.bootstrap import runtime
from bots.errors import ChannelNotConfigured
from bots.settings import Settings
from core.i18n import Translator

USAGE_ERROR = 2


def slack_channel(settings: Settings) -> SlackChannel:
    """The Slack channel the settings describe: one workspace by bot token, many by OAuth.

    Raises ChannelNotConfigured naming what is missing.
    """
    if not settings.slack_signing_secret:
        raise ChannelNotConfigured("cli.slack_no_signing_secret")
    oauth = None
    if settings.slack_client_id and not settings.slack_bot_token:
        if not settings.slack_client_secret:
            raise ChannelNotConfigured("cli.slack_no_client_secret")
        oauth = OAuthApp(settings.slack_client_id, settings.slack_client_secret.get_secret_value())
    bot_token = settings.slack_bot_token
    return SlackChannel(
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        api_url=settings.slack_api_url,
        bot_token=bot_token.get_secret_value() if bot_token else None,
        oauth=oauth,
        max_body_bytes=settings.webhook_max_body_bytes,
        pacer=Pacer(
            settings.slack_messages_per_second,
            settings.slack_conversation_messages_per_second,
            per_key_burst=5.0,
        ),
    )


def add_slack_commands(commands: Any) -> None:
    slack = commands.add_parser("slack", help="the Slack app: post a consultation in a channel")
    actions = slack.add_subparsers(dest="action", required=True, metavar="ACTION")
    post = actions.add_parser("post", help="post a consultation's question in a Slack channel")
    post.add_argument("channel_id", metavar="CHANNEL", help="the channel's id, e.g. C0123456")
    post.add_argument("slug", metavar="SLUG")
    post.add_argument("--team", default="", help="workspace id (multi-workspace installs)")


async def run_slack(settings: Settings, args: argparse.Namespace, t: Translator) -> int:
    try:
        channel = slack_channel(settings)
    except ChannelNotConfigured as problem:
        print(t(problem.msgid, **problem.values), file=sys.stderr)
        return USAGE_ERROR
    async with runtime(settings) as rt:
        await channel.open(rt.flow)
        try:
            ts = await channel.post_consultation(args.channel_id, args.slug, args.team)
        except LookupError:
            print(t("cli.unknown_consultation", slug=args.slug), file=sys.stderr)
            return USAGE_ERROR
        except SlackApiError as error:
            print(t("cli.slack_refused", error=error.response.get("error")), file=sys.stderr)
            return 1
        finally:
            await channel.close()
    print(t("cli.slack_posted", slug=args.slug, channel=args.channel_id, ts=ts))
    return 0

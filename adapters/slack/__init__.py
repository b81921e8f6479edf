"""Slack: workplace consultations in a DM with the app (slash command, App Home, Block Kit).

`SlackChannel` is the webhook channel; `escape_mrkdwn` and `render_reply` are its pure
rendering, `inbound` its pure parsing of Slack payloads into core events.
"""

from adapters.slack.channel import EVENTS_PATH, SlackChannel
from adapters.slack.oauth import OAuthApp
from adapters.slack.render import escape_mrkdwn, render_reply

__all__ = ["EVENTS_PATH", "OAuthApp", "SlackChannel", "escape_mrkdwn", "render_reply"]

"""The organisers' web console (mounted at /console by `consult serve`)."""

from bots.console.app import console_app

__all__ = ["console_app"]

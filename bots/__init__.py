"""Runnable bots: settings, the `consult` command, the demo consultation."""

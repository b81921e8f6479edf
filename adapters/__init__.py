"""Channels: each folder verifies, parses and renders for one messaging platform."""

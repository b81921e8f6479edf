"""The WhatsApp channel, over Meta's WhatsApp Cloud API (webhooks in, Graph API calls out)."""

from adapters.whatsapp.channel import WhatsAppChannel
from adapters.whatsapp.inbound import parse_delivery, signature_of
from adapters.whatsapp.links import whatsapp_link
from adapters.whatsapp.render import render_reply
from adapters.whatsapp.sender import GraphSender, template_message, within_window

__all__ = [
    "GraphSender",
    "WhatsAppChannel",
    "parse_delivery",
    "render_reply",
    "signature_of",
    "template_message",
    "whatsapp_link",
    "within_window",
]

"""The WhatsApp channel: rendering, webhooks, sending, whole conversations."""

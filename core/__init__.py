"""The consultation engine: domain, conversation flow, storage. Channel-neutral by design."""

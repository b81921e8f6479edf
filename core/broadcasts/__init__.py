"""Broadcasts: an organiser's (or a reminder's) message to an audience of a consultation.

`audience` parses and compiles audience expressions, `messages` checks a broadcast's texts,
`planning` turns a due broadcast into outbox rows, `delivery` hands them to the channels.
"""

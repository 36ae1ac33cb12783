"""Paystream shared library: the one place for settings, events, outbox, stream runtime, database and logging."""

"""The web.AppKeys of the provider webhook feature (kept here, with the feature that owns them)."""

from __future__ import annotations

from aiohttp import web

from paystream_api.provider_webhooks.accounts import AccountDirectory
from paystream_api.provider_webhooks.ingest import IngestWriter

ACCOUNTS = web.AppKey("provider_accounts", AccountDirectory)
INGEST_WRITER = web.AppKey("provider_ingest_writer", IngestWriter)

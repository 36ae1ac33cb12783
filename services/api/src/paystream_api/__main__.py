"""`python -m paystream_api`: the merchant REST API, provider webhooks, checkout and dashboard."""

from __future__ import annotations

import sys

from paystream.errors import SettingsError
from paystream.logging import configure_logging
from paystream.web import serve
from paystream_api.app import create_app
from paystream_api.settings import ApiSettings


def main() -> None:
    try:
        settings = ApiSettings.from_env()
    except SettingsError as exc:
        print(f"paystream-api: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.common.log, service="api")
    serve(create_app(settings), port=settings.port, host=settings.host)


if __name__ == "__main__":
    main()

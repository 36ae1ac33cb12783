"""`python -m webhook_dispatcher`: signs and delivers merchant webhooks, with retries and delivery logs."""

from __future__ import annotations

import sys

from paystream.errors import SettingsError
from paystream.logging import configure_logging
from paystream.web import serve
from webhook_dispatcher.settings import DispatcherSettings
from webhook_dispatcher.worker import create_app


def main() -> None:
    try:
        settings = DispatcherSettings.from_env()
    except SettingsError as exc:
        print(f"webhook-dispatcher: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.common.log, service="webhook-dispatcher")
    serve(create_app(settings), port=settings.port, host=settings.host, shutdown_timeout=5.0)


if __name__ == "__main__":
    main()

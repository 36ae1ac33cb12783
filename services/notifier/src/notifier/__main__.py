"""`python -m notifier`: live payment status for frontends over Socket.IO."""

from __future__ import annotations

import sys

from notifier.app import create_app
from notifier.settings import NotifierSettings
from notifier.shutdown import drain_before_exit
from paystream.errors import SettingsError
from paystream.logging import configure_logging
from paystream.web import serve


def main() -> None:
    try:
        settings = NotifierSettings.from_env()
    except SettingsError as exc:
        print(f"notifier: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.common.log, service="notifier")
    app = create_app(settings)
    drain_before_exit(app)
    serve(app, port=settings.port, host=settings.host)


if __name__ == "__main__":
    main()

"""`python -m payment_processor`: moves payments and refunds to their final state."""

from __future__ import annotations

import sys

from payment_processor.settings import ProcessorSettings
from payment_processor.worker import create_app
from paystream.errors import SettingsError
from paystream.logging import configure_logging
from paystream.web import serve


def main() -> None:
    try:
        settings = ProcessorSettings.from_env()
    except SettingsError as exc:
        print(f"payment-processor: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.common.log, service="payment-processor")
    serve(create_app(settings), port=settings.port, host=settings.host)


if __name__ == "__main__":
    main()

"""`python -m payment_processor`: moves payments and refunds to their final state."""

from __future__ import annotations

from payment_processor.settings import ProcessorSettings
from payment_processor.worker import create_app
from paystream.service import run_service


def main() -> None:
    run_service("payment-processor", ProcessorSettings.from_env, create_app)


if __name__ == "__main__":
    main()

"""`python -m webhook_dispatcher`: signs and delivers merchant webhooks, with retries and delivery logs."""

from __future__ import annotations

from paystream.service import run_service
from webhook_dispatcher.settings import DispatcherSettings
from webhook_dispatcher.worker import create_app


def main() -> None:
    run_service("webhook-dispatcher", DispatcherSettings.from_env, create_app, shutdown_timeout=5.0)


if __name__ == "__main__":
    main()

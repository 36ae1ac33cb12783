"""`python -m notifier`: live payment status for frontends over Socket.IO."""

from __future__ import annotations

from aiohttp import web

from notifier.app import create_app
from notifier.settings import NotifierSettings
from notifier.shutdown import drain_before_exit
from paystream.service import run_service


def build_app(settings: NotifierSettings) -> web.Application:
    app = create_app(settings)
    drain_before_exit(app)
    return app


def main() -> None:
    run_service("notifier", NotifierSettings.from_env, build_app)


if __name__ == "__main__":
    main()

"""`python -m paystream_api`: the merchant REST API and the inbound provider webhooks."""

from __future__ import annotations

from paystream.service import run_service
from paystream_api.app import create_app
from paystream_api.settings import ApiSettings


def main() -> None:
    run_service("api", ApiSettings.from_env, create_app)


if __name__ == "__main__":
    main()

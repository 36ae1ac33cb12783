"""`payctl` (and `python -m payctl`): the operators' CLI for Paystream's event bus."""

from __future__ import annotations

from payctl.cli import run


def main() -> None:
    raise SystemExit(run())


if __name__ == "__main__":
    main()

"""`payctl`: entry point (commands are added by the payctl issue)."""

from __future__ import annotations


def main() -> None:
    raise SystemExit("payctl: not implemented yet")


if __name__ == "__main__":
    main()

"""What browser tests share besides fixtures: viewports and the page watch."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from playwright.async_api import ConsoleMessage, Page, Request, Response

CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}


@dataclass
class PageWatch:
    """What went wrong in a page: console errors and failed requests (each one a string)."""

    problems: list[str] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)

    def expect_failure(self, pattern: str) -> None:
        """A failure whose description matches `pattern` (a regex) is part of the flow under test."""
        self.expected.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [problem for problem in self.problems if not any(p.search(problem) for p in self.expected)]

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not _is_favicon(message.location.get("url", "")):
            self.problems.append(f"console error: {message.text} at {message.location.get('url', '')}")

    def on_page_error(self, error: Any) -> None:
        self.problems.append(f"page error: {error}")

    def on_request_failed(self, request: Request) -> None:
        failure = request.failure or "failed"
        if "ERR_ABORTED" in failure:  # navigation away, or a page closing its own socket
            return
        self.problems.append(f"request failed: {request.method} {request.url} {failure}")

    def on_response(self, response: Response) -> None:
        if response.status >= 400 and not _is_favicon(response.url):
            self.problems.append(f"HTTP {response.status}: {response.request.method} {response.url}")


PageFactory = Callable[..., Awaitable[tuple[Page, PageWatch]]]


def _is_favicon(url: str) -> bool:
    """Chromium asks every origin for /favicon.ico on its own; that is no request of the page's."""
    return url.split("?")[0].endswith("/favicon.ico")

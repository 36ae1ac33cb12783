"""Browser tests: Debian's Chromium driven by Playwright (never a downloaded browser), against the
real platform (API, payment processor, notifier and webhook dispatcher processes, real Redis and
PostgreSQL).

- `browser`: one headless Chromium for the session (`CHROMIUM_PATH`, default /usr/bin/chromium);
- `platform`: the four services for one test module, on the session's stores;
- `open_page(viewport)`: a fresh context and page that records console errors and failed requests;
  the test fails at teardown if any happened that it did not `expect_failure()` first;
- `screenshot(page, name)`: saves `tests/browser/artifacts/<name>.png` (git-ignored) for people to
  look at;
- `other_origin(html)`: serves a page on another loopback port (a merchant's site).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import (
    Browser,
    Page,
    Playwright,
    async_playwright,
)

from paystream.redis import create_redis
from paystream.settings import RedisSettings
from paystream_devstack.embedded import free_port
from paystream_devstack.testing import ServiceProcess
from paystream_devstack.testing.platform import PORT_VARIABLE, Platform, service_url
from paystream_devstack.testing.plugin import SERVICE_POOL_MAX, truncate_tables

# The suite runs with --import-mode=importlib, which puts no test directory on sys.path.
sys.path.insert(0, str(Path(__file__).parent))

from browserkit import CHROMIUM_FLAGS, DESKTOP, PageFactory, PageWatch

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(here):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    if not shutil.which(path):
        pytest.fail(
            f"Chromium not found at {path}: install Debian's chromium (.ci/apt-packages) or set CHROMIUM_PATH"
        )
    return path


@pytest.fixture(scope="session")
async def playwright() -> AsyncIterator[Playwright]:
    async with async_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
async def browser(playwright: Playwright, chromium_path: str) -> AsyncIterator[Browser]:
    instance = await playwright.chromium.launch(
        executable_path=chromium_path, headless=True, args=list(CHROMIUM_FLAGS)
    )
    yield instance
    await instance.close()


@pytest.fixture(scope="module")
async def platform(
    redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Platform]:
    """A platform of its own for each module: empty tables and an empty Redis, so that what one
    module's flows left (payments, failed deliveries, stream entries) cannot change another's."""
    await truncate_tables(database_url)
    client = create_redis(RedisSettings(url=redis_url))
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    logs = tmp_path_factory.mktemp("browser-platform")
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        **{variable: str(free_port()) for variable in PORT_VARIABLE.values()},
        "JWT_SECRET": "browser-test-jwt-secret-of-32-bytes!",
        "TEST_MODE": "true",
        "TEST_PROCESSING_DELAY": "300",
        "TEST_PAYMENT_SUCCESS": "true",
        "WEBHOOK_RETRY_INTERVALS_TEST": "true",
        "WEBHOOK_ALLOWED_PRIVATE_NETS": "127.0.0.0/8,::1/128",
        "LOG_FORMAT": "json",
        "SEED_TEST_DATA": "true",
        "DATABASE_POOL_MAX": str(SERVICE_POOL_MAX),
    }
    env["NOTIFIER_PUBLIC_URL"] = f"http://127.0.0.1:{env['NOTIFIER_PORT']}"
    processes: dict[str, ServiceProcess] = {}
    try:
        for module in PORT_VARIABLE:
            process = ServiceProcess(
                module, env, logs / f"{module}.log", service_url(env, module) + "/health"
            )
            processes[module] = await asyncio.to_thread(process.start)
        yield Platform(env, processes)
    finally:
        for process in reversed(list(processes.values())):
            await asyncio.to_thread(process.stop)


@pytest.fixture
async def open_page(browser: Browser) -> AsyncIterator[PageFactory]:
    """`page, watch = await open_page(viewport=PHONE)`: a fresh context; fails the test at teardown
    on any console error or failed request that was not expected."""
    contexts = []
    watches: list[PageWatch] = []

    async def open_(viewport: dict[str, int] = DESKTOP, **context_options: Any) -> tuple[Page, PageWatch]:
        context = await browser.new_context(viewport=viewport, **context_options)  # type: ignore[arg-type]
        contexts.append(context)
        page = await context.new_page()
        watch = PageWatch()
        page.on("console", watch.on_console)
        page.on("pageerror", watch.on_page_error)
        page.on("requestfailed", watch.on_request_failed)
        page.on("response", watch.on_response)
        watches.append(watch)
        return page, watch

    yield open_
    for context in contexts:
        await context.close()
    problems = [problem for watch in watches for problem in watch.unexpected()]
    assert not problems, "\n".join(problems)


@pytest.fixture
def screenshot() -> Callable[..., Awaitable[Path]]:
    """`await screenshot(page, name, full_page=True)`. Transitions are finished first (a picture
    taken mid-fade shows what nobody sees); `full_page=False` keeps to the viewport, which is what
    a visitor sees while a fixed overlay (a modal) covers it."""
    ARTIFACTS.mkdir(exist_ok=True)

    async def take(page: Page, name: str, *, full_page: bool = True) -> Path:
        path = ARTIFACTS / f"{name}.png"
        await page.screenshot(path=str(path), full_page=full_page, animations="disabled")
        return path

    return take


@pytest.fixture
async def other_origin() -> AsyncIterator[Callable[[str], Awaitable[str]]]:
    """`url = await other_origin(html)`: serves `html` at `/` of another loopback port."""
    runners: list[web.AppRunner] = []

    async def serve(html: str) -> str:
        async def index(_request: web.Request) -> web.Response:
            return web.Response(text=html, content_type="text/html")

        app = web.Application()
        app.router.add_get("/", index)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return f"http://127.0.0.1:{port}/"

    yield serve
    for runner in runners:
        await runner.cleanup()

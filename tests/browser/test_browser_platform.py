"""The browser test bench itself: Debian's Chromium loads the API's static files from another origin."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from browserkit import PageFactory

from paystream_devstack.testing.platform import Platform


async def test_a_page_on_another_origin_loads_the_vendored_socket_io_client(
    platform: Platform, open_page: PageFactory, other_origin: Callable[[str], Awaitable[str]]
) -> None:
    html = f'<!doctype html><title>merchant</title><script src="{platform.api_url}/static/vendor/socket.io.min.js"></script>'
    page, _watch = await open_page()
    await page.goto(await other_origin(html))
    assert await page.evaluate("typeof io") == "function"


async def test_static_files_cannot_leave_the_static_folder(
    platform: Platform, open_page: PageFactory
) -> None:
    page, watch = await open_page()
    watch.expect_failure(r"404")
    for path in (
        "/static/../settings.py",
        "/static/%2e%2e/keys.py",
        "/static/vendor/README.md",
        "/static/.hidden.js",
    ):
        response = await page.goto(platform.api_url + path)
        assert response is not None and response.status == 404, path

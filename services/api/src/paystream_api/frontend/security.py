"""Security headers of what browsers load from the API: pages, the SDK and static assets.

Every page gets a Content-Security-Policy without `unsafe-inline` (scripts and styles come only from
files on this origin; connections only to this origin and the notifier). The hosted checkout may be
framed by any site (embedding it is the point of the SDK's iframe); the dashboard and every other
page may not be framed at all.
"""

from __future__ import annotations

from enum import StrEnum

from yarl import URL


class PageKind(StrEnum):
    CHECKOUT = "checkout"  # framed by merchants' sites
    PRIVATE = "private"  # the dashboard and the demo page: never framed


COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Cross-Origin-Opener-Policy": "same-origin-allow-popups",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(self)",
}


def notifier_sources(notifier_public_url: str) -> str:
    """The notifier's origin for `connect-src`, over HTTP (polling) and WebSocket."""
    url = URL(notifier_public_url)
    origin = str(url.origin())
    socket_scheme = "wss" if url.scheme == "https" else "ws"
    return f"{origin} {socket_scheme}://{url.authority}"


def page_headers(kind: PageKind, notifier_public_url: str) -> dict[str, str]:
    """The headers of an HTML page of `kind`."""
    framing = "*" if kind is PageKind.CHECKOUT else "'none'"
    policy = "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            f"connect-src 'self' {notifier_sources(notifier_public_url)}",
            "frame-src 'self'",
            "form-action 'self'",
            "base-uri 'none'",
            f"frame-ancestors {framing}",
        )
    )
    headers = {**COMMON_HEADERS, "Content-Security-Policy": policy, "Cache-Control": "no-store"}
    if kind is not PageKind.CHECKOUT:
        headers["X-Frame-Options"] = "DENY"
    return headers


def asset_headers() -> dict[str, str]:
    """Scripts, styles and images: cacheable for a short while, never sniffed. Any site may load
    the SDK with a <script> tag, which needs no CORS."""
    return {**COMMON_HEADERS, "Cache-Control": "public, max-age=300"}

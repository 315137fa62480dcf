"""GET /live: the page and its assets, served by the app with a Content-Security-Policy of
their own; every other answer keeps the API's."""

from __future__ import annotations

import httpx

from taskhub.middleware import LIVE_PAGE_CSP


async def test_the_page_and_its_assets_are_served_with_their_own_policy(
    client: httpx.AsyncClient,
) -> None:
    for path, kind in {
        "/live": "text/html",
        "/live/": "text/html",
        "/live/live.js": "text/javascript",
        "/live/live.css": "text/css",
        "/live/favicon.svg": "image/svg+xml",
    }.items():
        r = await client.get(path)
        assert r.status_code == 200, (path, r.status_code)
        assert r.headers["content-type"].startswith(kind), path
        assert r.headers["content-security-policy"] == LIVE_PAGE_CSP.decode(), path
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
    page = (await client.get("/live")).text
    # No inline script or style: the policy allows only the page's own files.
    assert '<script src="/live/live.js" defer></script>' in page
    assert "<style" not in page and " style=" not in page and "onclick" not in page
    script = (await client.get("/live/live.js")).text
    assert "innerHTML" not in script  # text goes into the page as text
    # Elsewhere, nothing may load.
    api = await client.get("/api/v2/products")
    assert api.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    missing = await client.get("/live/nothing.js")
    assert missing.status_code == 404
    assert missing.headers["content-security-policy"] == LIVE_PAGE_CSP.decode()
    assert (await client.post("/live")).status_code == 405

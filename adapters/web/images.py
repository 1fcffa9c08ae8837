"""Image bytes for the dashboard's pages (gallery, playground, queue): /dashboard/images/{id}.

Only an image of the session's own team is served; any other id, like an unknown one, is a
404 (so ids of other teams' images cannot be probed). The browser revalidates each time
(no-cache with the image's hash as its ETag): a deleted image stops showing at once, and an
unchanged one costs a 304, not its bytes.
"""

from __future__ import annotations

from aiohttp import web

from adapters.web.pages import own_image


async def image(request: web.Request) -> web.StreamResponse:
    found = await own_image(request)
    if isinstance(found, web.Response):
        return found
    _, stored = found
    etag = f'"{stored.sha256}"'
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=stored.data, content_type=stored.mime, headers=headers)

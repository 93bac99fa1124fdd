"""The gateway's call routes, answered before the server's middleware and router see them.

Nearly all of an application's traffic is POSTs to four fixed paths (chat completions,
responses, embeddings, moderations). Under `quorum run` every request first passes
Streamlit's middleware (its path checks for static files, its session cookie, gzip) and
then Starlette's router: measured in-process, about 65 µs per request before the gateway's
own work starts, for nothing a team key's call uses. `CallPath` wraps the server's app and
hands those four to the same handler as their routes (`gateway_api.answer_call`), so the
answer is the routes' answer; every other request, and every other method on these paths,
goes on to the app untouched. The routes stay: an app built without this middleware still
serves every call the slower way.

One visible difference: under `quorum run`, answers to these calls are no longer
gzip-compressed when the client accepts it (Streamlit's gzip middleware did that); `quorum
gateway serve` never compressed them. A chat answer is a few hundred bytes, which costs the
gateway more CPU to compress than it saves on any network.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from core.http.gateway_api import answer_call

# The POST paths answered here, and the kind of gateway call each is.
CALL_KINDS = {
    "/v1/chat/completions": "chat",
    "/v1/responses": "responses",
    "/v1/embeddings": "embeddings",
    "/v1/moderations": "moderations",
}


class CallPath:
    """ASGI middleware: the gateway's call POSTs straight to their handler."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            kind = CALL_KINDS.get(_route_path(scope))
            if kind is not None:
                response = await answer_call(Request(scope, receive), kind)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path Starlette's router matches: without the app's root path (a proxy's prefix),
    taken off only at a segment boundary."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] == "/":
        return path[len(root) :]
    return path

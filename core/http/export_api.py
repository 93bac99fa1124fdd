"""``GET /exports/<token>``: a prepared export, streamed to the browser as it is read.

The pages make the link (core.exports.download_link) for the signed-in person; the token is
the only credential, valid for a few minutes in this server process. The body is written
chunk by chunk while the database is read, so a million-row export holds a few megabytes,
not the file: Streamlit's download button would hold the whole file in the server's memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from core import exports
from core.errors import NotFound, PermissionDenied, QuorumError


async def download(request: Request) -> Response:
    token = request.path_params["token"]

    def start() -> tuple[exports.Export, Iterator[bytes], bytes]:
        export = exports.claim(token)
        chunks = export.chunks()
        # The first chunk now: a refusal or a database error is an answer, not a cut-off file.
        return export, chunks, next(chunks, b"")

    try:
        export, chunks, first = await run_in_threadpool(start)
    except QuorumError as error:
        status = 404 if isinstance(error, NotFound) else 403 if isinstance(error, PermissionDenied) else 400
        return PlainTextResponse(str(error), status_code=status, headers=NO_STORE)
    return StreamingResponse(
        chain([first], chunks),
        media_type=export.mime,
        headers={**NO_STORE, "content-disposition": f'attachment; filename="{export.file_name}"'},
    )


NO_STORE = {"cache-control": "no-store", "x-content-type-options": "nosniff"}


def export_routes() -> list[Route]:
    return [Route("/exports/{token}", download, methods=["GET"])]

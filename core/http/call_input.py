"""What a gateway call brings: who calls (its team key), and its body, read within bounds.

The key is checked before the body is read, so a client without a valid key cannot make a
server read, parse and hold a body; a key holder's body is capped by
QUORUM_MAX_REQUEST_BYTES (413 ``request_too_large``) and parsed strictly
(core.gateway.validation.parse_body).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from core.gateway import validation
from core.gateway.errors import RequestTooLarge
from core.gateway.key_networks import network_of
from core.gateway.pipeline import Caller
from core.http.call_threads import in_call_thread
from core.http.client_address import client_address
from core.identity import key_auth
from core.settings import settings


def request_caller(request: Request) -> Caller:
    """The caller behind the request's key (in a call thread: it may read the database)."""
    # From the process's short-lived copy of the key: no database read on most calls.
    address = client_address(request)
    return Caller.for_key(key_auth.authenticate(_secret(request), client_ip=address), network=network_of(address))


async def caller_before_body(request: Request) -> Caller:
    """The caller behind the request's key, known before the body is read: a client without a
    valid key cannot make a server read, parse and hold a body (the cap below bounds what a
    key holder can send). From the process's copy of the key in the event loop, which costs
    no thread; a key not in the copy is read in a call thread."""
    address = client_address(request)
    secret = _secret(request)
    identity = key_auth.known_identity(secret, client_ip=address)
    if identity is None:
        identity = await in_call_thread(lambda: key_auth.authenticate(secret, client_ip=address))
    return Caller.for_key(identity, network=network_of(address))


def _secret(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


async def json_body(request: Request) -> dict[str, Any]:
    return validation.parse_body(await _capped_body(request) or b"{}")


async def _capped_body(request: Request) -> bytes:
    """The request's body, refused (413) as soon as it is known to pass QUORUM_MAX_REQUEST_BYTES:
    by its Content-Length before anything is read, or while it streams in (chunked)."""
    limit = settings().max_request_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)

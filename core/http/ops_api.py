"""`/metrics` (Prometheus) and `/readyz` (readiness): what a platform team's tools read.

Both run their database reads in the thread pool: a slow database must not stall the event
loop that serves the gateway's calls.
"""

from __future__ import annotations

import hmac

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.gateway import moderation
from core.gateway.wiring import default_gateway
from core.ops import metrics, readiness
from core.settings import settings


async def metrics_endpoint(request: Request) -> Response:
    """The host's metrics in Prometheus' text format; with QUORUM_METRICS_TOKEN set, only for its bearer."""
    token = settings().metrics_token
    if token is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            return JSONResponse(
                {"error": "/metrics needs 'Authorization: Bearer <QUORUM_METRICS_TOKEN>'"},
                status_code=401,
                headers={"www-authenticate": "Bearer"},
            )
    body = await run_in_threadpool(metrics.exposition)
    return Response(body, media_type=metrics.CONTENT_TYPE)


async def readyz(_request: Request) -> JSONResponse:
    """200 when every check passes, 503 naming the one that does not."""
    result = await run_in_threadpool(_check)
    return JSONResponse(result.as_json(), status_code=200 if result.ready else 503)


def _check() -> readiness.Readiness:
    try:
        upstream: object = default_gateway().upstream
    except Exception:  # noqa: BLE001 - a misconfigured upstream is a failed check, not a 500
        upstream = None

    def probe() -> bool:
        return upstream is not None and moderation.probe(upstream) in (moderation.AVAILABLE, moderation.MISSING)

    return readiness.check(upstream=upstream, probe=probe)


def ops_routes() -> list[Route]:
    return [Route("/metrics", metrics_endpoint, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]

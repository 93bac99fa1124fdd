"""The HTTP routes mounted next to the pages, and the server's start-up work."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Scope

from core import migrate
from core.gateway import moderation
from core.gateway.wiring import default_gateway
from core.http.call_path import CallPath
from core.http.export_api import export_routes
from core.http.feedback_api import feedback_routes
from core.http.gateway_api import gateway_routes
from core.http.ops_api import ops_routes
from core.ops import logs, readiness
from core.settings import settings


async def healthz(_request: Request) -> JSONResponse:
    """Liveness, and what an operator should know about the upstream: whether it serves
    /v1/moderations ("unknown" until the start-up probe or a call finds out)."""
    try:
        endpoint = getattr(default_gateway().upstream, "moderation_endpoint", moderation.UNKNOWN)
    except Exception:  # noqa: BLE001 - liveness must answer even when the upstream is misconfigured
        endpoint = moderation.UNKNOWN
    body = {"status": "ok", "simulated_upstream": settings().uses_simulator, "upstream_moderation": endpoint}
    if endpoint == moderation.MISSING:
        body["warning"] = (
            "The upstream has no /v1/moderations endpoint: teams whose policy uses the upstream's "
            f"moderation are refused with 503 until {moderation.HOW_TO_CHANGE.removeprefix('an ')}"
        )
    return JSONResponse(body)


def http_middleware() -> list[Middleware]:
    """What wraps the server's app, outside its own middleware: the gateway's calls answered
    before the router (core.http.call_path says why)."""
    return [Middleware(CallPath)]


def http_routes() -> list[Route]:
    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        *ops_routes(),
        *gateway_routes(),
        *feedback_routes(),
        *export_routes(),
    ]
    # Last among ours, before the dashboard's own: every other /v1 path or method.
    return [*routes, unknown_v1_route(routes)]


_log = logging.getLogger("quorum.http")
ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def unknown_v1_route(known: list[Route]) -> Route:
    """Any /v1 path no route serves: 404 ``unknown_url``, or 405 with ``Allow`` when the path
    exists for other methods, in OpenAI's error shape. Without it the request would fall
    through to the dashboard, which answers 200 with its HTML page (a string to the SDK)."""

    async def unknown(request: Request) -> Response:
        method, path = request.method, request.url.path
        allowed = sorted(
            {m for route in known if route.path.startswith("/v1/") for m in _methods_for(route, request.scope)}
        )
        if allowed:
            return JSONResponse(
                {
                    "error": {
                        "message": f"{method} is not supported on {path}; use {' or '.join(allowed)}",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "method_not_allowed",
                    }
                },
                status_code=405,
                headers={"allow": ", ".join(allowed), "x-should-retry": "false"},
            )
        return JSONResponse(
            {
                "error": {
                    "message": f"Invalid URL ({method} {path}): Quorum serves no such endpoint",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "unknown_url",
                }
            },
            status_code=404,
            headers={"x-should-retry": "false"},
        )

    return Route("/v1/{path:path}", unknown, methods=ANY_METHOD)


def _methods_for(route: Route, scope: Scope) -> set[str]:
    if not route.path_regex.match(scope["path"]):
        return set()
    return set(route.methods or ()) - {"HEAD"}


@asynccontextmanager
async def lifespan(_app: object) -> AsyncIterator[dict[str, object]]:
    """Refuse unsafe settings and bring the schema up to date before serving anything."""
    settings().check_safe()
    logs.configure()
    migrate.upgrade_once()
    start_moderation_probe()
    yield {}


def start_moderation_probe() -> None:
    """Find out whether the upstream serves /v1/moderations, in the background: a slow or
    absent upstream must not delay serving."""
    threading.Thread(target=_probe_moderation, name="moderation-probe", daemon=True).start()


def _probe_moderation() -> None:
    try:
        found = moderation.probe(default_gateway().upstream)
    except Exception as error:  # noqa: BLE001 - a probe that fails leaves the state "unknown"
        _log.warning("moderation probe failed: %s", type(error).__name__)
        return
    if found in (moderation.AVAILABLE, moderation.MISSING):
        readiness.upstream_answered()  # /readyz: the provider answers
    if found == moderation.MISSING:
        _log.warning("The upstream has no /v1/moderations endpoint; teams on upstream moderation will be refused")

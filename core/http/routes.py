"""The HTTP routes mounted next to the pages, and the server's start-up work."""

from __future__ import annotations

from contextlib import asynccontextmanager

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from core import migrate
from core.http.feedback_api import feedback_routes
from core.http.gateway_api import gateway_routes
from core.settings import settings


async def healthz(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "simulated_upstream": settings().uses_simulator})


def http_routes() -> list[Route]:
    return [Route("/healthz", healthz, methods=["GET"]), *gateway_routes(), *feedback_routes()]


@asynccontextmanager
async def lifespan(_app):
    """Refuse unsafe settings and bring the schema up to date before serving anything."""
    settings().check_safe()
    migrate.upgrade_once()
    yield {}

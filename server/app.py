"""The aiohttp application: origin and token checks in front of the WebSocket and HTTP routes."""
from __future__ import annotations

import asyncio
import logging
import sys
from typing import Optional

from aiohttp import web

from .auth import bearer
from .config import ServerConfig
from .errors import ProtocolError, as_protocol_error
from .http_api import add_routes
from .peers import add_routes as add_peer_routes
from .state import ServerState
from .store import StoreError
from .ws import websocket_handler

log = logging.getLogger("seamwise.server")

# Reachable without a token in LAN mode: pairing itself.
OPEN_PATHS = {"/v1/pair"}
# The WebSocket carries its token in its first frame (browsers and UXP cannot set headers).
WS_PATH = "/v1/ws"


@web.middleware
async def guard(request: web.Request, handler):
    state: ServerState = request.app["state"]
    try:
        origin = request.headers.get("Origin")
        if origin is not None and origin != "null" and origin not in state.config.allow_origins:
            raise ProtocolError("forbidden_origin", f"requests from {origin[:100]} are not allowed")
        if state.config.lan and request.path not in OPEN_PATHS and request.path != WS_PATH:
            if state.auth.check(bearer(request.headers.get("Authorization"))) is None:
                raise ProtocolError("unauthorized", "a valid bearer token is required (pair first)")
        return await handler(request)
    except (ProtocolError, StoreError) as exc:
        err = as_protocol_error(exc)
        return web.json_response(err.body(), status=err.http_status)
    except web.HTTPException as exc:
        if exc.status == 413:
            err = ProtocolError("too_large", "the request body is too large")
            return web.json_response(err.body(), status=413)
        if exc.status >= 400:
            code = {404: "not_found", 405: "bad_request"}.get(exc.status, "bad_request")
            err = ProtocolError(code, exc.reason or "bad request")
            return web.json_response(err.body(), status=exc.status)
        raise
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception:
        log.exception("request %s %s failed", request.method, request.path)
        err = ProtocolError("internal", "the server failed on this request")
        return web.json_response(err.body(), status=500)


def build_app(config: ServerConfig, state: Optional[ServerState] = None) -> web.Application:
    state = state or ServerState(config)
    app = web.Application(middlewares=[guard],
                          client_max_size=config.limits.max_http_body_bytes)
    app["state"] = state
    app.router.add_get(WS_PATH, websocket_handler)
    add_routes(app)
    add_peer_routes(app)

    async def on_startup(app: web.Application) -> None:
        await state.start()

    async def on_cleanup(app: web.Application) -> None:
        await state.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


async def serve(config: ServerConfig, announce=print) -> None:
    """Run until cancelled; prints one line `Seamwise listening on http://HOST:PORT`."""
    state = ServerState(config)
    app = build_app(config, state)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    state.port = port
    await state.after_listen(port)
    if config.lan:
        code = state.auth.new_code()
        announce(f"Pairing code (valid 10 minutes, once): {code}", file=sys.stderr)
    announce(f"Seamwise listening on http://{config.host}:{port}")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()

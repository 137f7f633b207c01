"""The aiohttp application: origin and token checks in front of the WebSocket and HTTP routes."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Optional

from aiohttp import web

from .auth import bearer, needs_token
from .config import ServerConfig
from .errors import ProtocolError, as_protocol_error
from .hosts import HostCheck
from .http_api import add_routes
from .http_errors import JsonErrorRunner
from .owner import ADMIN_PREFIX, OwnerKey
from .owner import add_routes as add_owner_routes
from .peers import add_routes as add_peer_routes
from .state import ServerState
from .store import StoreError
from .ws import websocket_handler

log = logging.getLogger("seamwise.server")

DRAIN_TIMEOUT_S = 8.0   # for the render to reach a safe point and sockets to close on a signal
CLOSE_TIMEOUT_S = 2.0   # then for HTTP requests still in flight

# Reachable without a token in LAN mode: pairing itself.
OPEN_PATHS = {"/v1/pair"}
# The WebSocket carries its token in its first frame (browsers and UXP cannot set headers).
WS_PATH = "/v1/ws"
# The only route whose body may be large: it is streamed to disk, not read into memory.
UPLOAD_ROUTE = ("POST", "/v1/jobs")


def body_limit(request: web.Request, limits) -> int:
    """The largest body this request may declare: small everywhere but the image upload, so an
    open route (pairing) cannot be made to read a gigabyte before it answers."""
    if (request.method, request.path) == UPLOAD_ROUTE:
        return limits.max_http_body_bytes
    return limits.max_json_body_bytes


@web.middleware
async def guard(request: web.Request, handler):
    state: ServerState = request.app["state"]
    try:
        if not request.app["hosts"].allowed(request.headers.get("Host")):
            raise ProtocolError("forbidden_host", "this server does not answer to that Host name "
                                                  "(see --allow-host)")
        origin = request.headers.get("Origin")
        # "null" is what sandboxed frames and file:// pages send, and what a plugin host without
        # a web origin of its own may send: never trusted, never allow-listed, always asked for
        # a paired token (below), which a page cannot get without the code the owner sees.
        if origin is not None and origin != "null" and origin not in state.config.allow_origins:
            raise ProtocolError("forbidden_origin", f"requests from {origin[:100]} are not allowed")
        length = request.content_length
        if length is not None and length > body_limit(request, state.config.limits):
            raise ProtocolError("too_large", f"the request body is too large ({length:,} bytes)")
        if request.path.startswith(ADMIN_PREFIX):
            request.app["owner"].check(request)
            return await handler(request)
        token = bearer(request.headers.get("Authorization"))
        request["token_id"] = state.auth.check(token) if token else None
        if needs_token(state.config.lan, origin) and request["token_id"] is None and \
                request.path not in OPEN_PATHS and request.path != WS_PATH:
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
                          client_max_size=config.limits.max_json_body_bytes)
    app["state"] = state
    app["hosts"] = HostCheck(config.lan, config.allow_hosts)
    app["owner"] = OwnerKey(config.data_dir)
    app.router.add_get(WS_PATH, websocket_handler)
    add_routes(app)
    add_peer_routes(app)
    add_owner_routes(app)

    async def on_startup(app: web.Application) -> None:
        await state.start()

    async def on_cleanup(app: web.Application) -> None:
        await state.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


async def serve(config: ServerConfig, announce=print) -> None:
    """Run until SIGINT or SIGTERM (then drain) or cancelled; prints one line
    `Seamwise listening on http://HOST:PORT`."""
    state = ServerState(config)
    app = build_app(config, state)
    # keepalive_timeout closes a connection that has not sent a complete request header within
    # that time of opening or of its last response: idle and half-sent-header sockets alike
    runner = JsonErrorRunner(app, access_log=None, handle_signals=False,
                             keepalive_timeout=config.limits.idle_timeout_s,
                             shutdown_timeout=CLOSE_TIMEOUT_S)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    state.port = port
    await state.after_listen(port)
    app["owner"].publish(config.host, port)
    # LAN clients and panels (whose host sends an Origin) pair with it, on loopback too
    code = state.auth.new_code()
    announce(f"Pairing code (valid 10 minutes, once): {code}", file=sys.stderr)
    announce(f"Seamwise listening on http://{config.host}:{port}")
    received = await _until_signal()
    app["owner"].withdraw()
    if received is None:        # cancelled (no signal handlers on this platform)
        await runner.cleanup()
        return
    log.info("%s: shutting down (no new connections; the running job pauses and resumes "
             "after a restart)", received)
    await site.stop()
    stopped = await state.drain(DRAIN_TIMEOUT_S)
    await runner.cleanup()
    if not stopped:
        # a render step longer than the drain: its job is queued again at the next start, and
        # waiting for the thread would make the shutdown unbounded
        log.warning("the render did not reach a safe point within %g s; exiting anyway",
                    DRAIN_TIMEOUT_S)
        logging.shutdown()
        os._exit(0)
    log.info("stopped")


async def _until_signal() -> Optional[str]:
    """Wait for SIGINT or SIGTERM; its name, or None if cancelled first."""
    loop = asyncio.get_running_loop()
    got: asyncio.Future = loop.create_future()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, lambda s=sig: got.done() or got.set_result(s.name))
            installed.append(sig)
        except (NotImplementedError, RuntimeError):     # Windows: KeyboardInterrupt instead
            pass
    try:
        return await got
    except asyncio.CancelledError:
        return None
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)

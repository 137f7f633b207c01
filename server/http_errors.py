"""The protocol's JSON error body for the errors aiohttp answers itself, below any middleware:
an oversize header line, a malformed request line or header, a broken chunked body.

aiohttp answers those with text/plain that echoes the offending bytes; a client of this protocol
gets the same `{"type": "error", ...}` body as for every other error (PROTOCOL.md section 3).
"""
from __future__ import annotations

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server

from .errors import ProtocolError


class JsonErrorHandler(RequestHandler):
    def handle_error(self, request, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)    # logs; raises if output began
        if isinstance(exc, LineTooLong):
            status, err = 431, ProtocolError("too_large", "a request line or header is too long")
        elif status >= 500:
            err = ProtocolError("internal", "the server failed on this request")
        else:
            err = ProtocolError("bad_request", "the HTTP request is malformed")
        resp = web.json_response(err.body(), status=status)
        resp.force_close()
        return resp


class JsonErrorServer(Server):
    def __call__(self) -> RequestHandler:
        return JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class JsonErrorRunner(web.AppRunner):
    """An AppRunner whose connections answer protocol-level errors with the JSON error body."""

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        return JsonErrorServer(server.request_handler, request_factory=server.request_factory,
                               loop=server._loop, **server._kwargs)

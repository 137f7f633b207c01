"""Typed protocol errors: one shape for HTTP bodies and WebSocket frames (PROTOCOL.md section 3)."""
from __future__ import annotations

import re
from typing import Any, Optional

HTTP_STATUS = {
    "bad_request": 400,
    "bad_params": 400,
    "too_large": 413,
    "bad_chunk": 400,
    "unsupported_image": 415,
    "unauthorized": 401,
    "forbidden_origin": 403,
    "forbidden_host": 403,
    "too_many_attempts": 429,
    "not_found": 404,
    "not_ready": 409,
    "protocol_version": 400,
    "busy": 503,
    "disk_full": 507,
    "render_failed": 500,
    "upload_timeout": 408,
    "internal": 500,
}

# WebSocket close codes used when an error is fatal for the connection.
WS_CLOSE = {
    "unauthorized": 4401,
    "forbidden_origin": 4403,
    "too_large": 4413,
    "internal": 1011,
}
WS_CLOSE_BAD_INPUT = 4400

# What a codec's exception text may carry that a client must not see: object addresses and
# the server's own file paths (two or more directories deep).
_ADDRESS = re.compile(r"<([\w.]+)[^<>]* at 0x[0-9a-fA-F]+>|\s*\bat 0x[0-9a-fA-F]+")
_PATH = re.compile(r"(?:[A-Za-z]:)?[/\\](?:[^\s'\"/\\<>]+[/\\]){2,}[^\s'\"<>,;)]*")


def scrub(message: str) -> str:
    """A message with object addresses and file paths removed."""
    message = _ADDRESS.sub(lambda m: f"<{m.group(1)}>" if m.group(1) else "", message)
    return _PATH.sub("<file>", message)


class ProtocolError(Exception):
    """An error a client caused or must be told about; never a server crash."""

    def __init__(self, code: str, message: str, *, fatal: bool = False,
                 job: Optional[str] = None, req: Any = None):
        super().__init__(message)
        assert code in HTTP_STATUS, code
        self.code = code
        self.message = message
        self.fatal = fatal
        self.job = job
        self.req = req

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]

    @property
    def ws_close_code(self) -> int:
        return WS_CLOSE.get(self.code, WS_CLOSE_BAD_INPUT)

    def body(self) -> dict:
        return {"type": "error", "code": self.code, "message": scrub(self.message),
                "job": self.job, "req": self.req, "fatal": self.fatal}


def as_protocol_error(exc: Exception, req: Any = None) -> "ProtocolError":
    """The protocol error a client is sent for `exc`: a ProtocolError as is, a job store error
    by its kind (NoSuchJob → not_found, StoreFull → disk_full, WrongSize → bad_request)."""
    from .store import NoSuchJob, StoreError, StoreFull

    if isinstance(exc, ProtocolError):
        err = exc
    elif isinstance(exc, StoreError):
        code = "not_found" if isinstance(exc, NoSuchJob) else \
            "disk_full" if isinstance(exc, StoreFull) else "bad_request"
        err = ProtocolError(code, str(exc), job=exc.job)
    else:
        raise TypeError(f"no protocol error for {type(exc).__name__}")
    if err.req is None:
        err.req = req
    return err

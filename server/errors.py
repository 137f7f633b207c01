"""Typed protocol errors: one shape for HTTP bodies and WebSocket frames (PROTOCOL.md section 3)."""
from __future__ import annotations

from typing import Any, Optional

HTTP_STATUS = {
    "bad_request": 400,
    "bad_params": 400,
    "too_large": 413,
    "bad_chunk": 400,
    "unsupported_image": 415,
    "unauthorized": 401,
    "forbidden_origin": 403,
    "not_found": 404,
    "not_ready": 409,
    "protocol_version": 400,
    "busy": 503,
    "disk_full": 507,
    "render_failed": 500,
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
        return {"type": "error", "code": self.code, "message": self.message,
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

"""Raw HTTP over a loopback socket (for requests aiohttp's client will not send) and the server
process's peak memory, reset between measurements through /proc."""
from __future__ import annotations

import json
import socket
from pathlib import Path


def request(port: int, head: bytes, body: bytes = b"", timeout: float = 20.0,
            body_chunk: int = 64 * 1024) -> tuple[int, dict, bytes]:
    """Send `head` (request line and headers, without the blank line) and `body`; return the
    status, the headers and the body of the answer. The server may answer and close before the
    body is all sent: that is what a refused upload looks like, and it is not an error here."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head + b"\r\n\r\n")
        try:
            for i in range(0, len(body), body_chunk):
                s.sendall(body[i:i + body_chunk])
        except (BrokenPipeError, ConnectionResetError):
            pass
        return _read_answer(s)


def _read_answer(s: socket.socket) -> tuple[int, dict, bytes]:
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            got = s.recv(65536)
            if not got:
                break
            data += got
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in
                   (line.split(":", 1) for line in lines[1:] if ":" in line)}
        length = int(headers.get("content-length", -1))
        while length < 0 or len(rest) < length:
            got = s.recv(65536)
            if not got:
                break
            rest += got
    except ConnectionResetError:
        raise AssertionError(f"connection reset; got {data[:200]!r}") from None
    return status, headers, rest[:length] if length >= 0 else rest


def error_body(body: bytes) -> dict:
    """The protocol's error body (PROTOCOL.md section 3), checked for shape."""
    err = json.loads(body)
    assert err["type"] == "error" and isinstance(err["code"], str), err
    assert isinstance(err["message"], str) and err["message"], err
    return err


def reset_peak_rss(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_rss(pid: int) -> int:
    """The process's peak resident memory since the last reset, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def current_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")

"""HTTP image uploads: streamed to a spool file, sniffed, probed, then decoded under the budget.

`POST /v1/jobs` may carry 4 GiB, so the body never sits in memory: it goes to a file in the data
directory's `uploads/` folder while its first bytes are checked against the formats the request
may send (a JPEG declared as PNG is refused after 8 bytes, not after a 1.7 GB decode). The header
is then read without decoding and checked against the advertised limits; only then is the file
decoded, holding its decoded size from the server's decode budget.
"""
from __future__ import annotations

import asyncio
import secrets
import shutil
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

from engine.imageio import Header, ImageError, ImageTooLarge, Picture, probe, read_image, sniff

from .config import Limits
from .errors import ProtocolError

SPOOL_DIR = "uploads"
READ_BYTES = 1024 * 1024
FORMAT_NAMES = {"png": "PNG", "tiff": "TIFF", "jpeg": "JPEG"}
# Pixels and one contiguous copy of them (planar TIFFs, palette PNGs): a decode's peak.
DECODE_COPIES = 2


def clear_spool(data_dir: Path) -> None:
    """Remove partial uploads a stopped server left behind; none of them was ever accepted."""
    shutil.rmtree(data_dir / SPOOL_DIR, ignore_errors=True)
    (data_dir / SPOOL_DIR).mkdir(parents=True, exist_ok=True)


class Spool:
    """The files of one request's upload; all removed when the request ends."""

    def __init__(self, data_dir: Path):
        self.root = data_dir / SPOOL_DIR
        self.paths: dict[str, Path] = {}

    def path(self, name: str) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        self.paths[name] = self.root / f"{secrets.token_hex(8)}.{name}"
        return self.paths[name]

    def remove(self) -> None:
        for path in self.paths.values():
            path.unlink(missing_ok=True)


@asynccontextmanager
async def spool(data_dir: Path) -> AsyncIterator[Spool]:
    s = Spool(data_dir)
    try:
        yield s
    finally:
        await asyncio.to_thread(s.remove)


async def receive(read: Callable[[int], Awaitable[bytes]], path: Path, budget: list,
                  accept: tuple[str, ...], what: str) -> None:
    """Copy a body or form part to `path`, refusing it once it is over `budget[0]` bytes or its
    first bytes are not one of the `accept`ed formats."""
    head = b""
    with open(path, "wb") as f:
        while True:
            chunk = await read(READ_BYTES)
            if not chunk:
                break
            budget[0] -= len(chunk)
            if budget[0] < 0:
                raise ProtocolError("too_large", "the request body is too large")
            if len(head) < 8:
                head += chunk[:8 - len(head)]
                if len(head) == 8:
                    check_format(head, accept, what)
            f.write(chunk)
    check_format(head, accept, what)


def check_format(head: bytes, accept: tuple[str, ...], what: str) -> None:
    """unsupported_image unless the magic bytes name one of the accepted formats."""
    found = sniff(head)
    if found in accept:
        return
    wanted = " or ".join(FORMAT_NAMES[f] for f in accept)
    if found is None:
        raise ProtocolError("unsupported_image", f"{what} is not a {wanted} file")
    raise ProtocolError("unsupported_image", f"{what} is a {FORMAT_NAMES[found]} file; "
                                             f"send a {wanted} file")


async def inspect(path: Path, what: str, limits: Limits) -> Header:
    """The file's header, checked against the advertised size limits; no pixel decoded."""
    try:
        header = await asyncio.to_thread(probe, path)
    except ImageError as exc:
        raise ProtocolError("unsupported_image", f"{what}: {exc}") from None
    except OSError:
        raise ProtocolError("unsupported_image", f"{what} could not be read") from None
    if header.width > limits.max_side or header.height > limits.max_side or \
            header.width * header.height > limits.max_pixels:
        raise ProtocolError("too_large", f"{what} is {header.width}x{header.height} pixels; the "
                                         f"limit is {limits.max_pixels} pixels and "
                                         f"{limits.max_side} per side")
    return header


def decode_need(headers: list[Header]) -> int:
    return sum(h.decoded_bytes for h in headers) * DECODE_COPIES


async def decode(path: Path, what: str, limits: Limits) -> Picture:
    """Decode a probed file (call it while holding its share of the decode budget)."""
    try:
        picture = await asyncio.to_thread(read_image, path)
    except ImageTooLarge as exc:
        raise ProtocolError("too_large", f"{what}: {exc}") from None
    except ImageError as exc:
        raise ProtocolError("unsupported_image", f"{what}: {exc}") from None
    if picture.icc is not None and len(picture.icc) > limits.max_icc_bytes:
        raise ProtocolError("too_large", f"{what}: the ICC profile is over "
                                         f"{limits.max_icc_bytes:,} bytes")
    if sum(len(v) for v in picture.metadata.values()) > limits.max_metadata_bytes:
        raise ProtocolError("too_large", f"{what}: its metadata is over "
                                         f"{limits.max_metadata_bytes:,} bytes")
    return picture


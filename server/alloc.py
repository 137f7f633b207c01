"""Memory the server allocates on a client's behalf: the decode budget, and allocator tuning for
multi-MiB buffers (Linux/glibc only): the server's messages, and the tile activations of a CPU
render (`seamwise serve` and `seamwise render` both call it).

A compressed upload can decode to far more than its size (a flat 2 MB TIFF holds a gigabyte of
pixels), and two at once double it: decodes therefore take their decoded size from one budget,
sized from RAM, and wait their turn instead of pushing the box into swap or the OOM killer.

Every 4 MiB chunk passes through several short-lived buffers (WebSocket frame assembly, msgpack).
glibc serves blocks that large with mmap and returns them with munmap, so each chunk paid for
thousands of fresh zeroed pages: measured on the 150 MP transfer benchmark, that was most of the
server's CPU time per uploaded gigabyte. Keeping such blocks in the heap removes it; the heap then
retains at most the trim threshold of free memory.
"""
from __future__ import annotations

import asyncio
import ctypes
import sys
from contextlib import asynccontextmanager
from typing import AsyncIterator

from .errors import ProtocolError

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024     # glibc's maximum on 64-bit
TRIM_THRESHOLD = 256 * 1024 * 1024


def tune_allocator() -> bool:
    """True if glibc accepted the settings; a no-op elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
            bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except (OSError, AttributeError):
        return False


class MemoryBudget:
    """Bytes that concurrent image decodes may hold at once; each waits for its share."""

    def __init__(self, total: int):
        self.total = total
        self.used = 0
        self._changed = asyncio.Condition()

    @asynccontextmanager
    async def hold(self, nbytes: int, what: str = "the upload") -> AsyncIterator[None]:
        """Hold `nbytes` while the block runs; refuse at once what could never fit."""
        if nbytes > self.total:
            raise ProtocolError("too_large", f"{what} needs {nbytes:,} bytes of decode memory; "
                                             f"this server decodes at most {self.total:,}")
        async with self._changed:
            await self._changed.wait_for(lambda: self.used + nbytes <= self.total)
            self.used += nbytes
        try:
            yield
        finally:
            async with self._changed:
                self.used -= nbytes
                self._changed.notify_all()

"""The decode budget: memory the server allocates on a client's behalf while decoding uploads.

A compressed upload can decode to far more than its size (a flat 2 MB TIFF holds a gigabyte of
pixels), and two at once double it: decodes therefore take their decoded size from one budget,
sized from RAM, and wait their turn instead of pushing the box into swap or the OOM killer.
"""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import AsyncIterator

from .errors import ProtocolError


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

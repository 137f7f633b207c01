"""Allocator tuning for multi-MiB buffers (Linux/glibc only): the server's messages, and the
tile activations of a CPU render (`seamwise serve` and `seamwise render` both call it).

Every 4 MiB chunk passes through several short-lived buffers (WebSocket frame assembly, msgpack).
glibc serves blocks that large with mmap and returns them with munmap, so each chunk paid for
thousands of fresh zeroed pages: measured on the 150 MP transfer benchmark, that was most of the
server's CPU time per uploaded gigabyte. Keeping such blocks in the heap removes it; the heap then
retains at most the trim threshold of free memory.
"""
from __future__ import annotations

import ctypes
import sys

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

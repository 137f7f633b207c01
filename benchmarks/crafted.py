"""Hostile files for the hardening tests and the soak benchmark: small uploads built to cost the
server far more than their size (PROTOCOL.md section 9 lists the limits that stop them)."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np

from engine.imageio import Picture, encode_image

MiB = 1024 * 1024


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _with_chunk(png: bytes, chunk: bytes) -> bytes:
    ihdr_end = 8 + 8 + 13 + 4
    return png[:ihdr_end] + chunk + png[ihdr_end:]


def png16(width: int = 32, height: int = 32) -> bytes:
    px = np.random.default_rng(1).integers(0, 65536, (height, width, 3), dtype=np.uint16)
    return encode_image(Picture(px, None, "png"), "png")


def png16_xmp_bomb(inflated: int = 64 * MiB) -> bytes:
    """A 16-bit PNG whose compressed XMP `iTXt` chunk inflates to `inflated` bytes."""
    xmp = zlib.compress(b" " * inflated, 9)
    body = b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + xmp
    return _with_chunk(png16(), png_chunk(b"iTXt", body))


def png16_icc_bomb(inflated: int = 64 * MiB) -> bytes:
    """A 16-bit PNG whose `iCCP` profile inflates to `inflated` bytes."""
    return _with_chunk(png16(), png_chunk(b"iCCP", b"ICC profile\x00\x00" +
                                          zlib.compress(b"\0" * inflated, 9)))


def jpeg(width: int, height: int) -> bytes:
    """A flat grey JPEG: a few hundred KB that decode to width x height bytes."""
    from PIL import Image
    out = io.BytesIO()
    Image.new("L", (width, height), 128).save(out, "JPEG", quality=50)
    return out.getvalue()


def shared_strip_tiff(width: int = 8000, height: int = 8000, rows: int = 64) -> bytes:
    """An RGB deflate TIFF whose strips all point at the same few bytes of compressed zeros:
    a few KB on the wire, width x height x 3 bytes once decoded."""
    strip = zlib.compress(b"\0" * (rows * width * 3), 9)
    n = -(-height // rows)
    header_size, entries = 8, 10
    ifd_size = 2 + entries * 12 + 4
    bps_at = header_size + ifd_size
    offsets_at = bps_at + 6
    counts_at = offsets_at + 4 * n
    strip_at = counts_at + 4 * n
    tags = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 3, bps_at), (259, 3, 1, 8),
            (262, 3, 1, 2), (273, 4, n, offsets_at), (277, 3, 1, 3), (278, 4, 1, rows),
            (279, 4, n, counts_at), (284, 3, 1, 1)]
    ifd = struct.pack("<H", entries) + b"".join(
        struct.pack("<HHII", tag, typ, count, value) if typ == 4 or count > 1 else
        struct.pack("<HHIHH", tag, typ, count, value, 0) for tag, typ, count, value in tags)
    ifd += struct.pack("<I", 0)
    return (b"II*\x00" + struct.pack("<I", header_size) + ifd + struct.pack("<HHH", 8, 8, 8)
            + struct.pack(f"<{n}I", *([strip_at] * n)) + struct.pack(f"<{n}I", *([len(strip)] * n))
            + strip)


def tiff16(width: int, height: int, seed: int = 0) -> bytes:
    px = np.random.default_rng(seed).integers(0, 65536, (height, width, 3), dtype=np.uint16)
    return encode_image(Picture(px, None, "tiff"), "tiff")

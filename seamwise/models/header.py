"""The header of a .safetensors file: tensor names and shapes, read without touching a weight.

A safetensors file starts with an 8-byte little-endian length and that many bytes of JSON naming
every tensor with its dtype and shape. The model manager classifies checkpoints of many GB from
this alone; a header larger than MAX_HEADER_BYTES is refused before it is read.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the format's own limit


class HeaderError(ValueError):
    """The file is not a readable safetensors file."""


def read_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """{tensor name: shape} from the file's header."""
    try:
        with open(path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) != 8:
                raise HeaderError("shorter than a safetensors header")
            (length,) = struct.unpack("<Q", prefix)
            if length > MAX_HEADER_BYTES or length < 2:
                raise HeaderError(f"header length {length} is not plausible")
            raw = f.read(length)
    except OSError as e:
        raise HeaderError(e.strerror or str(e)) from e
    if len(raw) != length:
        raise HeaderError("the header is cut short")
    try:
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise HeaderError(f"the header is not JSON ({e})") from e
    if not isinstance(header, dict):
        raise HeaderError("the header is not a JSON object")
    shapes = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("shape"), list):
            raise HeaderError(f"tensor {name[:60]!r} has no shape")
        shapes[name] = tuple(int(d) for d in entry["shape"])
    return shapes

"""Checks of everything a client declares, done before the server allocates anything for it."""
from __future__ import annotations

from typing import Any, Callable, Optional

from engine.api import ParamError, as_int, parse_params

from .config import Limits
from .engines import ENGINE_PARAMS
from .errors import ProtocolError

MODES = ("refine", "upscale")
DTYPES = {8: "<u1", 16: "<u2", 32: "<f4"}
PARAM_NAMES = ("mode", *ENGINE_PARAMS, "peer")


def _int(name: str, value: Any, lo: int, hi: int, code: str = "bad_request") -> int:
    """An integer field of a wire header: a number, or ASCII decimal text."""
    try:
        value = as_int(name, value)
    except ParamError as e:
        raise ProtocolError(code, str(e)) from None
    if not lo <= value <= hi:
        raise ProtocolError(code, f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _empty(value: Any) -> bool:
    return value is None or value == ""


def validate_params(raw: Any, recommended: Optional[Callable[[int], tuple[float, int]]] = None) -> dict:
    """Return complete, typed parameters (PROTOCOL.md section 5) or raise bad_params.

    The server checks only what belongs to the wire: a map of known names, `mode` (which sets the
    default scale) and `peer`. Types, ranges and defaults of the render parameters are the
    engine's (engine.api.parse_params), as for the CLI. `recommended(scale)` gives the serving
    model's (strength, steps) for a job that names neither; without it the generic defaults apply.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ProtocolError("bad_params", "params must be a map")
    unknown = sorted(str(k) for k in raw if k not in PARAM_NAMES)
    if unknown:
        raise ProtocolError("bad_params", f"unknown parameter {unknown[0]}")
    mode = "refine" if _empty(raw.get("mode")) else raw["mode"]
    if mode not in MODES:
        raise ProtocolError("bad_params", f"mode must be one of {', '.join(MODES)}")
    values = {k: raw.get(k) for k in ENGINE_PARAMS}
    if _empty(values["scale"]):
        values["scale"] = 1 if mode == "refine" else 2
    try:
        render = parse_params(values, recommended)
    except ParamError as e:
        raise ProtocolError("bad_params", str(e)) from None
    if mode == "refine" and render.scale != 1:
        raise ProtocolError("bad_params", "scale must be 1 in refine mode")
    if mode == "upscale" and render.scale == 1:
        raise ProtocolError("bad_params", "scale must be 2 or 4 in upscale mode")
    peer = raw.get("peer")
    if _empty(peer):
        peer = None
    elif not isinstance(peer, str) or len(peer) > 200:
        raise ProtocolError("bad_params", "peer must be a peer id string")
    return {"mode": mode, **{k: getattr(render, k) for k in ENGINE_PARAMS}, "peer": peer}


def validate_image_header(raw: Any, limits: Limits) -> dict:
    """Check an image header (PROTOCOL.md section 1); returns a clean copy with `bytes`."""
    if not isinstance(raw, dict):
        raise ProtocolError("bad_request", "image must be a map with width, height, channels, depth")
    width = _int("image.width", raw.get("width"), 1, 2**31, code="bad_request")
    height = _int("image.height", raw.get("height"), 1, 2**31, code="bad_request")
    if width > limits.max_side or height > limits.max_side:
        raise ProtocolError("too_large", f"image sides are limited to {limits.max_side} pixels")
    if width * height > limits.max_pixels:
        raise ProtocolError("too_large",
                            f"image has {width * height} pixels; the limit is {limits.max_pixels}")
    channels = raw.get("channels")
    if channels not in (3, 4) or isinstance(channels, bool):
        raise ProtocolError("unsupported_image", "image channels must be 3 (RGB) or 4 (RGBA)")
    depth = raw.get("depth")
    if depth not in DTYPES or isinstance(depth, bool):
        raise ProtocolError("unsupported_image", "image depth must be 8, 16 or 32")
    icc = raw.get("icc")
    if icc is not None and not isinstance(icc, (bytes, bytearray)):
        raise ProtocolError("bad_request", "image.icc must be bytes or nil")
    if icc is not None and len(icc) > limits.max_icc_bytes:
        raise ProtocolError("too_large", "ICC profile is too large")
    return {"width": width, "height": height, "channels": channels, "depth": depth,
            "icc": bytes(icc) if icc is not None else None,
            "bytes": width * height * channels * depth // 8}


def validate_mask_header(raw: Any, image: dict) -> Optional[dict]:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ProtocolError("bad_request", "mask must be a map with width and height, or nil")
    width = _int("mask.width", raw.get("width"), 1, 2**31, code="bad_request")
    height = _int("mask.height", raw.get("height"), 1, 2**31, code="bad_request")
    if (width, height) != (image["width"], image["height"]):
        raise ProtocolError("bad_request", "mask must have the same size as the image")
    return {"width": width, "height": height, "channels": 1, "depth": 8,
            "bytes": width * height}


def validate_chunk_bytes(raw: Any, limits: Limits) -> int:
    if raw is None:
        return limits.max_chunk_bytes
    value = _int("chunk_bytes", raw, 1, 2**40, code="bad_request")
    if value > limits.max_chunk_bytes:
        raise ProtocolError("too_large", f"chunk_bytes is limited to {limits.max_chunk_bytes}")
    if value < 4096:
        raise ProtocolError("bad_request", "chunk_bytes must be at least 4096")
    return value


def chunk_count(total: int, chunk_bytes: int) -> int:
    return max(1, -(-total // chunk_bytes))


async def json_object_body(request) -> dict:
    """The JSON object body of a state-changing request.

    Requiring `application/json` keeps these requests out of the "simple" CORS class, so a web
    page cannot send them without a preflight the server never answers.
    """
    if request.content_type != "application/json":
        raise ProtocolError("bad_request", "this request needs Content-Type: application/json")
    try:
        body = await request.json()
    except ValueError:
        raise ProtocolError("bad_request", "the body must be JSON") from None
    if not isinstance(body, dict):
        raise ProtocolError("bad_request", "the body must be a JSON object")
    return body

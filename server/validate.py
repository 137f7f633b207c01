"""Checks of everything a client declares, done before the server allocates anything for it."""
from __future__ import annotations

from typing import Any, Callable, Optional

from engine.api import GENERIC_STEPS, GENERIC_STRENGTH, STRATEGIES

from .config import Limits
from .errors import ProtocolError

MODES = ("refine", "upscale")
DTYPES = {8: "<u1", 16: "<u2", 32: "<f4"}
PARAM_NAMES = ("mode", "scale", "strength", "steps", "seed", "strategy", "tile", "overlap",
               "prompt", "negative_prompt", "guidance", "peer")


def _int(name: str, value: Any, lo: int, hi: int, code: str = "bad_params") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        else:
            raise ProtocolError(code, f"{name} must be an integer")
    if not lo <= value <= hi:
        raise ProtocolError(code, f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _float(name: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool):
        raise ProtocolError("bad_params", f"{name} must be a number")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ProtocolError("bad_params", f"{name} must be a number") from None
    if not lo <= value <= hi:  # also false for NaN
        raise ProtocolError("bad_params", f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _choice(name: str, value: Any, choices: tuple) -> str:
    if value not in choices:
        raise ProtocolError("bad_params", f"{name} must be one of {', '.join(choices)}")
    return value


def _empty(value: Any) -> bool:
    return value is None or value == ""


def _or(value: Any, default: Any) -> Any:
    return default if _empty(value) else value


def validate_params(raw: Any, recommended: Optional[Callable[[int], tuple[float, int]]] = None) -> dict:
    """Return complete, typed parameters (PROTOCOL.md section 5) or raise bad_params.

    `recommended(scale)` gives the serving model's (strength, steps) for a job that names
    neither; without it the generic defaults apply.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ProtocolError("bad_params", "params must be a map")
    unknown = sorted(str(k) for k in raw if k not in PARAM_NAMES)
    if unknown:
        raise ProtocolError("bad_params", f"unknown parameter {unknown[0]}")
    mode = _choice("mode", raw.get("mode", "refine"), MODES)
    default_scale = 1 if mode == "refine" else 2
    scale = raw.get("scale")
    scale = default_scale if _empty(scale) else _int("scale", scale, 1, 4)
    if scale not in (1, 2, 4):
        raise ProtocolError("bad_params", "scale must be 1, 2 or 4")
    if mode == "refine" and scale != 1:
        raise ProtocolError("bad_params", "scale must be 1 in refine mode")
    if mode == "upscale" and scale == 1:
        raise ProtocolError("bad_params", "scale must be 2 or 4 in upscale mode")
    strength, steps = recommended(scale) if recommended else (GENERIC_STRENGTH, GENERIC_STEPS)
    params = {
        "mode": mode,
        "scale": scale,
        "strength": _float("strength", _or(raw.get("strength"), strength), 0.0, 1.0),
        "steps": _int("steps", _or(raw.get("steps"), steps), 1, 200),
        "seed": _int("seed", raw.get("seed", 0), 0, 2**32 - 1),
        "strategy": _choice("strategy", raw.get("strategy", "memory"), STRATEGIES),
        "tile": None,
        "overlap": None,
        "prompt": "",
        "negative_prompt": "",
        "guidance": None,
        "peer": None,
    }
    if params["strength"] <= 0.0:
        raise ProtocolError("bad_params", "strength must be above 0 (0 would change nothing)")
    if not _empty(raw.get("tile")):
        params["tile"] = _int("tile", raw["tile"], 64, 4096)
    if not _empty(raw.get("overlap")):
        hi = (params["tile"] // 2) if params["tile"] else 2048
        params["overlap"] = _int("overlap", raw["overlap"], 0, hi)
    for name in ("prompt", "negative_prompt"):
        text = _or(raw.get(name), "")
        if not isinstance(text, str) or len(text) > 2000:
            raise ProtocolError("bad_params", f"{name} must be a string of at most 2000 characters")
        params[name] = text
    if not _empty(raw.get("guidance")):
        params["guidance"] = _float("guidance", raw["guidance"], 1.0, 30.0)
    peer = raw.get("peer")
    if not _empty(peer):
        if not isinstance(peer, str) or len(peer) > 200:
            raise ProtocolError("bad_params", "peer must be a peer id string")
        params["peer"] = peer
    return params


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
    header = {"width": width, "height": height, "channels": channels, "depth": depth,
              "icc": bytes(icc) if icc is not None else None,
              "bytes": width * height * channels * depth // 8}
    profile = validate_profile_name(raw.get("profile"))
    if profile is not None:
        header["profile"] = profile
    return header


def validate_profile_name(raw: Any) -> Optional[str]:
    """`image.profile`: the name of the pixels' profile, for clients that cannot send its bytes
    (the Photoshop panel); the engine builds the standard ones (engine.colour)."""
    if _empty(raw):
        return None
    if not isinstance(raw, str) or len(raw) > 255 or not raw.isprintable():
        raise ProtocolError("bad_request", "image.profile must be a profile name of at most 255 "
                                           "printable characters, or nil")
    return raw


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

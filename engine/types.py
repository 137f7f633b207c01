"""The engine's public, torch-free types, and the one check of render parameters.

Everything a caller (the CLI, the server, a script) needs to describe a render and read its
outcome lives here, importable without torch or diffusers: the parameters, progress, the result,
the two exceptions a render can end with, and the parameter ranges. The engine checks parameters
with `check_params`; callers whose values arrive as text or nil (the server's wire, the CLI) turn
them into RenderParams with `parse_params`, which applies the same ranges, so all three agree.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from numbers import Integral, Real
from typing import Any, Callable, Mapping, Optional, Protocol

import numpy as np

STRATEGIES = ("naive", "multidiffusion", "mixture", "spot", "memory")
SCALES = (1, 2, 4)
# For models that recommend nothing (a Stable Diffusion checkpoint): a moderate refine.
GENERIC_STRENGTH, GENERIC_STEPS = 0.35, 8
# Ranges of RenderParams (PROTOCOL.md section 5 lists the same).
MAX_STEPS = 200
TILE_RANGE = (16, 4096)         # output px
MAX_OVERLAP = 2048              # output px, and at most half the tile when one is given
MAX_SEED = 2**32 - 1
GUIDANCE_RANGE = (1.0, 30.0)
MAX_PROMPT_CHARS = 2000


class Cancelled(Exception):
    """Raised by `render` when the caller's cancel check returns True."""


class EngineError(Exception):
    """A render failed for a reason the user can act on (bad parameters, model missing, ...)."""


class ParamError(EngineError, ValueError):
    """A render parameter is malformed or out of range; `name` says which."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name


class Phase(StrEnum):
    """Where a render is; str-valued, so progress serialises as the plain words."""
    LOAD = "load"
    ENCODE = "encode"
    DENOISE = "denoise"
    DECODE = "decode"


class Unit(StrEnum):
    """What Progress.tile/tiles count."""
    TILE = "tile"
    OPERATION = "operation"   # the frame is evaluated whole, layer by layer


@dataclass(frozen=True)
class RenderParams:
    scale: int = 1                 # 1 (refine), 2 or 4 (upscale)
    strength: float = GENERIC_STRENGTH  # 0..1: how far into the noise schedule the render starts
    steps: int = GENERIC_STEPS          # callers fill both from recommended_settings()
    seed: int = 0
    strategy: str = "memory"
    tile: Optional[int] = None     # output pixels; None = engine default for the model
    overlap: Optional[int] = None  # output pixels; None = engine default for the strategy
    prompt: str = ""
    negative_prompt: str = ""      # what guidance steers away from (prompted models)
    guidance: Optional[float] = None  # classifier-free guidance scale; None = the adapter's default
    model: str = "tiny"            # "tiny" (bundled) or a local path
    scheduler: Optional[str] = None
    mechanisms: dict = field(default_factory=dict)  # per-mechanism switches for ablation


@dataclass
class Progress:
    phase: Phase
    step: int
    steps: int
    tile: int
    tiles: int
    fraction: float     # 0..1 over the whole render
    preview: Optional[Callable[[], np.ndarray]] = None  # lazily builds an HxWx3 uint8 preview
    unit: Unit = Unit.TILE


class ProgressCallback(Protocol):
    def __call__(self, progress: Progress) -> None: ...


@dataclass
class RenderResult:
    image: np.ndarray       # H*scale x W*scale x C, same dtype and channel count as the input
    seam_risk: np.ndarray   # H*scale x W*scale float32 in 0..1 (or uint8 0..255)
    stats: dict             # tiles, model_calls, token_evals, seconds per phase, device, ...


@dataclass(frozen=True)
class DeviceInfo:
    """What a loaded model runs on, for the server's /v1/info."""
    kind: str                      # "cpu", "cuda", "mps"
    memory_bytes: Optional[int]    # the accelerator's total memory; None for the CPU


Recommended = Callable[[int], tuple[float, int]]   # scale -> (strength, steps)


def check_params(p: RenderParams) -> None:
    """Raise ParamError unless every parameter is in range: the engine's only parameter check."""
    _check_int("scale", p.scale, 1, 4)
    if p.scale not in SCALES:
        raise ParamError("scale", "scale must be 1, 2 or 4")
    _check_number("strength", p.strength, 0.0, 1.0)
    if p.strength <= 0.0:
        raise ParamError("strength", "strength must be above 0 (0 would change nothing)")
    _check_int("steps", p.steps, 1, MAX_STEPS)
    _check_int("seed", p.seed, 0, MAX_SEED)
    if p.strategy not in STRATEGIES:
        raise ParamError("strategy", f"unknown strategy {p.strategy!r}; choose from "
                                     f"{', '.join(STRATEGIES)}")
    if p.tile is not None:
        _check_int("tile", p.tile, *TILE_RANGE)
    if p.overlap is not None:
        _check_int("overlap", p.overlap, 0, p.tile // 2 if p.tile is not None else MAX_OVERLAP)
    for name in ("prompt", "negative_prompt"):
        text = getattr(p, name)
        if not isinstance(text, str) or len(text) > MAX_PROMPT_CHARS:
            raise ParamError(name, f"{name} must be a string of at most {MAX_PROMPT_CHARS} "
                                   "characters")
    if p.guidance is not None:
        _check_number("guidance", p.guidance, *GUIDANCE_RANGE)
    if not isinstance(p.mechanisms, dict):
        raise ParamError("mechanisms", "mechanisms must be a map of switches")


def parse_params(values: Mapping[str, Any], recommended: Optional[Recommended] = None,
                 base: RenderParams = RenderParams()) -> RenderParams:
    """RenderParams from loosely typed values (a wire map, query text, command-line options).

    None and "" mean the default: `base`'s, except strength and steps, which come from
    `recommended(scale)` where given (the serving model's own). Numbers may arrive as ASCII
    decimal text; anything else that is not the right type is a ParamError naming the value.
    """
    unknown = sorted(str(k) for k in values if k not in _FIELDS)
    if unknown:
        raise ParamError(unknown[0], f"unknown parameter {unknown[0]}")
    given = {k: v for k, v in values.items() if not (v is None or v == "")}
    scale = as_int("scale", given.get("scale", base.scale))
    if recommended is not None:
        base = replace(base, **dict(zip(("strength", "steps"), recommended(scale))))
    typed: dict[str, Any] = {"scale": scale}
    for name, value in given.items():
        if name in _INTS:
            typed[name] = as_int(name, value)
        elif name in _NUMBERS:
            typed[name] = as_number(name, value)
        else:
            typed[name] = value
    params = replace(base, **typed)
    check_params(params)
    return params


_FIELDS = {f.name for f in fields(RenderParams)}
_INTS = ("scale", "steps", "seed", "tile", "overlap")
_NUMBERS = ("strength", "guidance")
_INT_TEXT = re.compile(r"[+-]?[0-9]{1,20}", re.ASCII)
_NUMBER_TEXT = re.compile(r"[+-]?([0-9]{1,20}(\.[0-9]{0,20})?|\.[0-9]{1,20})([eE][+-]?[0-9]{1,3})?",
                          re.ASCII)


def as_int(name: str, value: Any) -> int:
    """An integer, or ASCII decimal text of one (not "²", "--5" or a 5000-digit number)."""
    if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ParamError(name, f"{name} must be an integer")
    return int(value)


def as_number(name: str, value: Any) -> float:
    """A real number, or ASCII decimal text of one."""
    if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value.strip()):
        return float(value)
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ParamError(name, f"{name} must be a number")
    return float(value)


def _check_int(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ParamError(name, f"{name} must be an integer")
    if not lo <= value <= hi:
        raise ParamError(name, f"{name} must be between {lo} and {hi}, got {value}")


def _check_number(name: str, value: Any, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ParamError(name, f"{name} must be a number")
    if not lo <= value <= hi:   # also false for NaN
        raise ParamError(name, f"{name} must be between {lo:g} and {hi:g}, got {value}")

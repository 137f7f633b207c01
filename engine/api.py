"""The engine's public Python API: what the CLI and the server call.

Callers hand over plain numpy arrays and get plain numpy arrays back, so that neither the CLI nor
the server needs to know anything about tensors, devices or models.

The types below are the stable interface the CLI and the server are written against; `render`
is implemented in engine.render.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Protocol

import numpy as np

STRATEGIES = ("naive", "multidiffusion", "mixture", "spot", "memory")
# For models that recommend nothing (a Stable Diffusion checkpoint): a moderate refine.
GENERIC_STRENGTH, GENERIC_STEPS = 0.35, 8
_BUNDLED_SPEC = Path(__file__).parent / "models" / "weights" / "seamwise-tiny.json"


class Cancelled(Exception):
    """Raised by `render` when the caller's cancel check returns True."""


class EngineError(Exception):
    """A render failed for a reason the user can act on (bad parameters, model missing, ...)."""


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


def recommended_settings(model: str, scale: int) -> tuple[float, int]:
    """(strength, steps) for a render whose caller named neither: the model's own recommendation.

    A bundled-format model carries one in its JSON (`meta.recommended`, chosen on training
    photographs): the bundled model restores as well in 1 step as in 8, so a generic default
    would cost 8x the time for nothing. Other models get GENERIC_STRENGTH and GENERIC_STEPS.
    Reads only the JSON: the CLI's and the server's parameter handling stay free of torch.
    """
    spec = _BUNDLED_SPEC if model == "tiny" else Path(model).with_suffix(".json")
    try:
        rec = json.loads(spec.read_text())["meta"]["recommended"]["refine" if scale == 1 else "x2"]
        strength, steps = float(rec["strength"]), int(rec["steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return GENERIC_STRENGTH, GENERIC_STEPS
    if not (0.0 < strength <= 1.0 and 1 <= steps <= 200):
        return GENERIC_STRENGTH, GENERIC_STEPS
    return strength, steps


@dataclass
class Progress:
    phase: str          # "load", "encode", "denoise", "decode"
    step: int
    steps: int
    tile: int
    tiles: int
    fraction: float     # 0..1 over the whole render
    preview: Optional[Callable[[], np.ndarray]] = None  # lazily builds an HxWx3 uint8 preview
    unit: str = "tile"  # what tile/tiles count: "tile", or "operation" when the frame is evaluated
                        # whole, layer by layer


class ProgressCallback(Protocol):
    def __call__(self, progress: Progress) -> None: ...


@dataclass
class RenderResult:
    image: np.ndarray       # H*scale x W*scale x C, same dtype and channel count as the input
    seam_risk: np.ndarray   # H*scale x W*scale float32 in 0..1
    stats: dict             # tiles, model_calls, token_evals, seconds per phase, device, ...


def render(image: np.ndarray, params: RenderParams, mask: Optional[np.ndarray] = None,
           progress: Optional[ProgressCallback] = None,
           should_cancel: Optional[Callable[[], bool]] = None, **options) -> RenderResult:
    """Refine or upscale `image`; see engine.render.render for the options.

    Imported on first call so that importing the API's types (the CLI's help, the server's
    parameter checks) does not load torch and diffusers.
    """
    from engine.render import render as _render

    return _render(image, params, mask, progress, should_cancel, **options)

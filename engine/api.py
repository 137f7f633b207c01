"""The engine's public Python API: what the CLI and the server call.

Callers hand over plain numpy arrays and get plain numpy arrays back, so that neither the CLI nor
the server needs to know anything about tensors, devices or models.

The types below are the stable interface the CLI and the server are written against; `render`
is implemented in engine.render.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol

import numpy as np

STRATEGIES = ("naive", "multidiffusion", "mixture", "spot", "memory")


class Cancelled(Exception):
    """Raised by `render` when the caller's cancel check returns True."""


class EngineError(Exception):
    """A render failed for a reason the user can act on (bad parameters, model missing, ...)."""


@dataclass(frozen=True)
class RenderParams:
    scale: int = 1                 # 1 (refine), 2 or 4 (upscale)
    strength: float = 0.35         # 0..1: how far into the noise schedule the render starts
    steps: int = 8
    seed: int = 0
    strategy: str = "memory"
    tile: Optional[int] = None     # output pixels; None = engine default for the model
    overlap: Optional[int] = None  # output pixels; None = engine default for the strategy
    prompt: str = ""
    model: str = "tiny"            # "tiny" (bundled) or a local path
    scheduler: Optional[str] = None
    mechanisms: dict = field(default_factory=dict)  # per-mechanism switches for ablation


@dataclass
class Progress:
    phase: str          # "load", "encode", "denoise", "decode"
    step: int
    steps: int
    tile: int
    tiles: int
    fraction: float     # 0..1 over the whole render
    preview: Optional[Callable[[], np.ndarray]] = None  # lazily builds an HxWx3 uint8 preview


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

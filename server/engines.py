"""The renderers the worker can call: the real engine (an engine.api.Session) and an identity engine.

Both take the job's pixels as plain numpy arrays and its checked parameter map, report
engine.api.Progress, return an engine.api.RenderResult, and end early with engine.api.Cancelled
(the job's cancel flag was seen) or engine.api.EngineError (a reason the user can act on): the
worker handles one set of types whichever renders. The server knows nothing about tensors or
devices; the Session answers what /v1/info reports about them.

The identity engine exists for protocol tests and transfer benchmarks: it returns the input
unchanged (nearest-neighbour enlarged for scale > 1) with a seam map of zeros, and can sleep per
step so that cancel and restart can be exercised while a job is "running".
"""
from __future__ import annotations

import time
from dataclasses import fields
from typing import Callable, Optional

import numpy as np

from engine.api import (GENERIC_STEPS, GENERIC_STRENGTH, Cancelled, Phase, Progress,
                        RenderParams, RenderResult, Session)

# The job parameters the engine takes; the rest (mode, peer) are the server's own.
ENGINE_PARAMS = tuple(f.name for f in fields(RenderParams)
                      if f.name not in ("model", "scheduler", "mechanisms"))


def _recommended_map(recommended: Callable[[int], tuple[float, int]]) -> dict:
    """What /v1/health and /v1/info advertise, so a client can show the defaults it will get."""
    return {kind: dict(zip(("strength", "steps"), recommended(scale)))
            for kind, scale in (("refine", 1), ("x2", 2))}


def _preview(image: np.ndarray) -> np.ndarray:
    """A small 8-bit RGB view of the input, as the identity engine's preview."""
    step = max(1, max(image.shape[:2]) // 512 + 1)
    small = np.asarray(image[::step, ::step, :3])
    if small.dtype == np.uint16:
        return (small >> 8).astype(np.uint8)
    if small.dtype == np.float32:
        return (np.clip(np.nan_to_num(small), 0, 1) * 255 + 0.5).astype(np.uint8)
    return small.astype(np.uint8)


class IdentityEngine:
    model_name = "identity"
    device = "cpu"
    vram_bytes = None

    @staticmethod
    def recommended(scale: int) -> tuple[float, int]:
        return GENERIC_STRENGTH, GENERIC_STEPS

    def recommended_map(self) -> dict:
        return _recommended_map(self.recommended)

    def __init__(self, delay_per_step: float = 0.0):
        self.delay = delay_per_step

    def warm_up(self) -> None:
        """Nothing to load."""

    def render(self, image: np.ndarray, params: dict, mask: Optional[np.ndarray],
               progress: Callable[[Progress], None], should_cancel: Callable[[], bool],
               icc: Optional[bytes] = None, profile: Optional[str] = None) -> RenderResult:
        steps = params["steps"]
        t0 = time.perf_counter()
        for step in range(steps):
            if should_cancel():
                raise Cancelled("render cancelled")
            if self.delay:
                time.sleep(self.delay)
            progress(Progress(Phase.DENOISE, step + 1, steps, 1, 1, (step + 1) / steps,
                              lambda: _preview(image)))
        if should_cancel():
            raise Cancelled("render cancelled")
        scale = params["scale"]
        out = image if scale == 1 else np.repeat(np.repeat(image, scale, 0), scale, 1)
        seams = np.zeros(out.shape[:2], np.uint8)
        return RenderResult(out, seams, {"engine": "identity", "seconds": time.perf_counter() - t0})


class RealEngine:
    """The engine through an engine.api.Session: the model is loaded once and kept warm."""

    def __init__(self, model: str = "tiny", layerwise: Optional[str] = None,
                 layerwise_ram_gib: Optional[float] = None):
        # The box's owner chooses and sizes whole-frame evaluation; clients cannot (no mechanisms
        # on the wire).
        owner = {"layerwise": layerwise, "layerwise_ram_gib": layerwise_ram_gib}
        self.session = Session(model, mechanisms={k: v for k, v in owner.items() if v is not None})
        self.model_name = self.session.name
        info = self.session.device()
        self.device, self.vram_bytes = info.kind, info.memory_bytes

    def recommended(self, scale: int) -> tuple[float, int]:
        return self.session.recommended(scale)

    def recommended_map(self) -> dict:
        return _recommended_map(self.recommended)

    def warm_up(self) -> None:
        """Load the model now (called in a thread at start-up) so the first job does not wait."""
        self.session.warm_up()

    def render(self, image: np.ndarray, params: dict, mask: Optional[np.ndarray],
               progress: Callable[[Progress], None],
               should_cancel: Callable[[], bool], **options) -> RenderResult:
        """`options`: engine.api.render's: the image's `icc` profile or `profile` name (engine.colour;
        warnings come back in the stats), a cluster actor's `tile_runner`."""
        rp = RenderParams(**{k: v for k, v in params.items() if k in ENGINE_PARAMS})
        return self.session.render(image, rp, mask=mask, progress=progress,
                                   should_cancel=should_cancel, **options)


def make_engine(kind: str, model: str, identity_delay: float = 0.0, layerwise: Optional[str] = None,
                layerwise_ram_gib: Optional[float] = None):
    if kind == "identity":
        return IdentityEngine(identity_delay)
    if kind == "real":
        return RealEngine(model, layerwise, layerwise_ram_gib)
    raise ValueError(f"unknown engine {kind!r}")

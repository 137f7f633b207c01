"""The renderers the worker can call: the real engine (through engine.api) and an identity engine.

Both take and return plain numpy arrays; the server knows nothing about tensors. The identity
engine exists for protocol tests and transfer benchmarks: it returns the input unchanged
(nearest-neighbour enlarged for scale > 1) with a seam map of zeros, and can sleep per step so
that cancel and restart can be exercised while a job is "running".
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from engine.api import GENERIC_STEPS, GENERIC_STRENGTH, recommended_settings


class RenderCancelled(Exception):
    """The job's cancel flag was seen by the renderer."""


class RenderFailed(Exception):
    """The renderer refused the job for a reason the user can act on."""


@dataclass
class StepProgress:
    """Same fields as engine.api.Progress, so both renderers report alike."""
    phase: str
    step: int
    steps: int
    tile: int
    tiles: int
    fraction: float
    preview: Optional[Callable[[], np.ndarray]] = None
    unit: str = "tile"


@dataclass
class Rendered:
    image: np.ndarray
    seam_risk: np.ndarray      # HxW float32 0..1 or uint8 0..255
    stats: dict = field(default_factory=dict)


def _recommended_map(recommended: Callable[[int], tuple[float, int]]) -> dict:
    """What /v1/health and /v1/info advertise, so a client can show the defaults it will get."""
    return {kind: dict(zip(("strength", "steps"), recommended(scale)))
            for kind, scale in (("refine", 1), ("x2", 2))}


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

    def render(self, image: np.ndarray, params: dict, mask: Optional[np.ndarray],
               progress: Callable, should_cancel: Callable[[], bool], icc: Optional[bytes] = None,
               profile: Optional[str] = None) -> Rendered:
        steps = params["steps"]
        t0 = time.perf_counter()

        def preview() -> np.ndarray:
            step = max(1, max(image.shape[:2]) // 512 + 1)
            small = np.asarray(image[::step, ::step, :3])
            if small.dtype == np.uint16:
                return (small >> 8).astype(np.uint8)
            if small.dtype == np.float32:
                return (np.clip(np.nan_to_num(small), 0, 1) * 255 + 0.5).astype(np.uint8)
            return small.astype(np.uint8)

        for step in range(steps):
            if should_cancel():
                raise RenderCancelled()
            if self.delay:
                time.sleep(self.delay)
            progress(StepProgress("denoise", step + 1, steps, 1, 1, (step + 1) / steps, preview))
        if should_cancel():
            raise RenderCancelled()
        scale = params["scale"]
        out = image if scale == 1 else np.repeat(np.repeat(image, scale, 0), scale, 1)
        seams = np.zeros(out.shape[:2], np.uint8)
        return Rendered(out, seams, {"engine": "identity", "seconds": time.perf_counter() - t0})


class RealEngine:
    """Adapter over engine.api.render; the model is loaded once and kept warm between jobs."""

    def __init__(self, model: str = "tiny", layerwise: Optional[str] = None,
                 layerwise_ram_gib: Optional[float] = None):
        self.model = model
        # The box's owner chooses and sizes whole-frame evaluation; clients cannot (no mechanisms
        # on the wire).
        owner = {"layerwise": layerwise, "layerwise_ram_gib": layerwise_ram_gib}
        self.mechanisms = {k: v for k, v in owner.items() if v is not None}
        # read once: every job creation and health check asks, and the model is fixed
        self._recommended = {scale: recommended_settings(model, scale) for scale in (1, 2)}
        self.model_name = "seamwise-tiny" if model == "tiny" else model.rstrip("/\\").split("/")[-1]
        self.device, self.vram_bytes = _device()
        self._adapter = None
        self._lock = threading.Lock()

    def recommended(self, scale: int) -> tuple[float, int]:
        return self._recommended[1 if scale == 1 else 2]

    def recommended_map(self) -> dict:
        return _recommended_map(self.recommended)

    def warm_up(self) -> None:
        """Load the model now (called in a thread at start-up) so the first job does not wait."""
        self._loaded()

    def _loaded(self):
        with self._lock:
            if self._adapter is None:
                from engine.adapters import load_adapter
                from engine.device import pick_device, pick_dtype
                device = pick_device()
                try:
                    self._adapter = load_adapter(self.model, device, pick_dtype(device))
                except (FileNotFoundError, ValueError, OSError) as exc:
                    raise RenderFailed(f"cannot load model {self.model!r}: {exc}") from None
            return self._adapter

    def render(self, image: np.ndarray, params: dict, mask: Optional[np.ndarray],
               progress: Callable, should_cancel: Callable[[], bool], icc: Optional[bytes] = None,
               profile: Optional[str] = None) -> Rendered:
        """`icc` (the image's embedded profile) or `profile` (its name) tell the engine which
        colours the pixels mean (engine.colour); warnings come back in the stats."""
        from engine import api
        adapter = self._loaded()
        rp = api.RenderParams(scale=params["scale"], strength=params["strength"],
                              steps=params["steps"], seed=params["seed"],
                              strategy=params["strategy"], tile=params["tile"],
                              overlap=params["overlap"], prompt=params["prompt"],
                              negative_prompt=params.get("negative_prompt", ""),
                              guidance=params.get("guidance"), model=self.model,
                              mechanisms=self.mechanisms)
        try:
            result = api.render(image, rp, mask=mask, progress=progress,
                                should_cancel=should_cancel, adapter=adapter, icc=icc,
                                profile=profile)
        except api.Cancelled:
            raise RenderCancelled() from None
        except api.EngineError as exc:
            raise RenderFailed(str(exc)) from None
        return Rendered(result.image, result.seam_risk, dict(result.stats or {}))


def _device() -> tuple[str, Optional[int]]:
    from engine.device import pick_device
    device = pick_device()
    vram = None
    if device.type == "cuda":
        import torch
        vram = int(torch.cuda.get_device_properties(device).total_memory)
    return device.type, vram


def make_engine(kind: str, model: str, identity_delay: float = 0.0, layerwise: Optional[str] = None,
                layerwise_ram_gib: Optional[float] = None):
    if kind == "identity":
        return IdentityEngine(identity_delay)
    if kind == "real":
        return RealEngine(model, layerwise, layerwise_ram_gib)
    raise ValueError(f"unknown engine {kind!r}")

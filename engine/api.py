"""The engine's public Python API: what the CLI and the server call, and all they call.

Callers hand over plain numpy arrays and get plain numpy arrays back, so that neither the CLI nor
the server needs to know anything about tensors, devices or models. Importing this module loads
only the torch-free types (engine.types); torch and the models load on the first render, the
first `Session.warm_up` or the first question about the device.

- `render(image, params, ...)`: one render, loading the model it names.
- `Session(model)`: a model kept loaded between renders (the server's warm model), with what a
  server reports about it (recommended settings, device).
- One frame across processes: `render(..., tile_runner=fn)` hands each step's tile batches to
  `fn(share, canvas, work)`, which returns their x0 (arrays) in plan order; another process
  holding a Session evaluates its group with `Session.evaluate_tiles(share, canvas, work,
  indices)`.
  `share` (once per render) and `work` (per step) are opaque, picklable objects; `canvas` is the
  step's float32 canvas as a numpy array. The result is bit-identical to one process on the same
  device type (engine.denoise.shared says which renders are shared).
- `recommended_settings(model, scale)`: the model's own (strength, steps), read from its JSON.
- `parse_params` / `check_params` (from engine.types): the one check of render parameters.
- `torch_facts()`: the torch build and the device renders would use (for `seamwise doctor`).
"""
from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from engine.types import (GENERIC_STEPS, GENERIC_STRENGTH, MAX_STEPS, STRATEGIES, Cancelled,
                          DeviceInfo, EngineError, ParamError, Phase, Progress, ProgressCallback,
                          RenderParams, RenderResult, Unit, as_int, as_number, check_params,
                          parse_params)

__all__ = ["GENERIC_STEPS", "GENERIC_STRENGTH", "STRATEGIES", "Cancelled", "DeviceInfo",
           "EngineError", "ParamError", "Phase", "Progress", "ProgressCallback", "RenderParams",
           "RenderResult", "Session", "Unit", "as_int", "as_number", "check_params", "parse_params",
           "recommended_settings", "render", "torch_facts"]

_BUNDLED_SPEC = Path(__file__).parent / "models" / "weights" / "seamwise-tiny.json"


def recommended_settings(model: str, scale: int) -> tuple[float, int]:
    """(strength, steps) for a render whose caller named neither: the model's own recommendation.

    A bundled-format model carries one in its JSON (`meta.recommended`, chosen on training
    photographs): the bundled model restores as well in 1 step as in 8, so a generic default
    would cost 8x the time for nothing. Other models get GENERIC_STRENGTH and GENERIC_STEPS.
    Reads only the JSON: the CLI's and the server's parameter handling stay free of torch.
    """
    spec = _BUNDLED_SPEC if model == "tiny" else Path(model).with_suffix(".json")
    try:
        recs = json.loads(spec.read_text())["meta"]["recommended"]
        key = {1: "refine", 2: "x2"}.get(scale, "x4")
        rec = recs.get(key) or recs["x2"]   # a model without its own x4 settings: x2's
        strength, steps = float(rec["strength"]), int(rec["steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return GENERIC_STRENGTH, GENERIC_STEPS
    if not (0.0 < strength <= 1.0 and 1 <= steps <= MAX_STEPS):
        return GENERIC_STRENGTH, GENERIC_STEPS
    return strength, steps


def render(image: np.ndarray, params: RenderParams, mask: Optional[np.ndarray] = None,
           progress: Optional[ProgressCallback] = None,
           should_cancel: Optional[Callable[[], bool]] = None, **options: Any) -> RenderResult:
    """Refine or upscale `image`; see engine.render.render for the options.

    Imported on first call so that importing the API's types (the CLI's help, the server's
    parameter checks) does not load torch and diffusers.
    """
    from engine.render import render as _render

    return _render(image, params, mask, progress, should_cancel, **options)


def torch_facts() -> dict:
    """The torch build, the device a render would use, its name and free memory (for
    `seamwise doctor`); imports torch, so an install without a working torch raises here."""
    from engine.device import torch_facts as facts

    return facts()


def checkpoint_family(shapes: Mapping[str, Sequence[int]]) -> str:
    """"sd1", "sd2" or "sdxl" for an original-layout checkpoint, from tensor names and shapes only.

    A safetensors header holds both, so the model manager classifies a multi-GB file without
    reading a weight, by the same rules the loader uses (ValueError says why it is none of them).
    """
    from types import SimpleNamespace

    from engine.adapters.architectures import detect_family

    return detect_family({k: SimpleNamespace(shape=tuple(v)) for k, v in shapes.items()})


class Session:
    """One model, loaded once and kept warm between renders.

    `mechanisms`: switches every render of this session runs with (a server's owner sets them;
    clients cannot); a render's own RenderParams.mechanisms are laid over them. The model is
    loaded by `warm_up` or the first render, whichever comes first; a model that cannot be
    loaded is an EngineError there.
    """

    def __init__(self, model: str = "tiny", mechanisms: Optional[dict] = None,
                 device: Optional[str] = None):
        self.model = model
        self.mechanisms = dict(mechanisms or {})
        self._device = device
        self._recommended = {scale: recommended_settings(model, scale) for scale in (1, 2, 4)}
        self._adapter = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """The model's name as clients see it."""
        return "seamwise-tiny" if self.model == "tiny" else self.model.rstrip("/\\").split("/")[-1]

    def recommended(self, scale: int) -> tuple[float, int]:
        """(strength, steps) this model recommends at `scale` (x4 takes x2's unless it has its own)."""
        return self._recommended[scale if scale in self._recommended else 2]

    def device(self) -> DeviceInfo:
        """Where renders will run, without loading the model."""
        from engine.device import describe, pick_device

        return DeviceInfo(*describe(pick_device(self._device)))

    def warm_up(self) -> None:
        """Load the model now, so that the first render does not wait for it."""
        self._loaded()

    def render(self, image: np.ndarray, params: RenderParams, mask: Optional[np.ndarray] = None,
               progress: Optional[ProgressCallback] = None,
               should_cancel: Optional[Callable[[], bool]] = None, **options: Any) -> RenderResult:
        """`render` with this session's model and switches."""
        params = replace(params, model=self.model,
                         mechanisms={**self.mechanisms, **params.mechanisms})
        return render(image, params, mask, progress, should_cancel, adapter=self._loaded(),
                      **options)

    def evaluate_tiles(self, share: Any, canvas: np.ndarray, work: Any,
                       indices: Sequence[int]) -> list[np.ndarray]:
        """x0 (float32 arrays) of batches `indices` of one step of another process's render:
        that render's `share` and `work` (see the module's docstring), this session's model."""
        from engine.denoise.canvas import evaluate_shared

        return evaluate_shared(self._loaded(), share, canvas, work, indices)

    def _loaded(self):
        with self._lock:
            if self._adapter is None:
                from engine.adapters import open_model

                self._adapter = open_model(self.model, self._device)
            return self._adapter

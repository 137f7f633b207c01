"""Model adapters: the bundled pixel model and diffusers checkpoints behind one interface."""
from __future__ import annotations

import torch

from engine.adapters.base import Conditioning, ModelAdapter, Window, x0_from_prediction
from engine.device import pick_device, pick_dtype
from engine.types import EngineError

__all__ = ["Conditioning", "ModelAdapter", "Window", "x0_from_prediction", "load_adapter",
           "open_model"]


def load_adapter(spec: str, device: torch.device, dtype: torch.dtype) -> ModelAdapter:
    """"tiny" → the bundled model; anything else (a local folder / .safetensors) → the SD loader."""
    if spec == "tiny":
        from engine.adapters.tiny import TinyAdapter
        return TinyAdapter.load(device=device, dtype=dtype)
    from engine.adapters import loading
    return loading.load(spec, device, dtype)


def open_model(spec: str, device: str | None = None) -> ModelAdapter:
    """The model a render or a session runs: on `device` (default: the best one here) in that
    device's precision; a model that cannot be loaded is an EngineError naming it."""
    dev = pick_device(device)
    try:
        return load_adapter(spec, dev, pick_dtype(dev))
    except (FileNotFoundError, ValueError, OSError) as e:
        raise EngineError(f"cannot load model {spec!r}: {e}") from e

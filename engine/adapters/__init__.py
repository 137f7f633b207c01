"""Model adapters: the bundled pixel model and diffusers checkpoints behind one interface."""
from __future__ import annotations

import torch

from engine.adapters.base import Conditioning, ModelAdapter, Window, x0_from_prediction

__all__ = ["Conditioning", "ModelAdapter", "Window", "x0_from_prediction", "load_adapter"]


def load_adapter(spec: str, device: torch.device, dtype: torch.dtype) -> ModelAdapter:
    """"tiny" → the bundled model; anything else (a local folder / .safetensors) → the SD loader."""
    if spec == "tiny":
        from engine.adapters.tiny import TinyAdapter
        return TinyAdapter.load(device=device, dtype=dtype)
    from engine.adapters import loading
    return loading.load(spec, device, dtype)

"""Low-frequency anchoring: tiles own the detail, a reference owns the tone.

x0 ← x0 + strength · (low(reference) − low(x0)), where low() keeps what is coarser than `scale`
canvas px (area-average down, bilinear up: cheap on a 150 MP canvas). For refine and upscale the
reference is the input photo; for strong edits the thumbnail's x0.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def low_pass(x: torch.Tensor, scale: int) -> torch.Tensor:
    if scale <= 1:
        return x
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(max(1, math.ceil(h / scale)), max(1, math.ceil(w / scale))),
                          mode="area")
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)


def anchor(x0: torch.Tensor, reference: torch.Tensor, scale: int, strength: float) -> torch.Tensor:
    return x0 + strength * (low_pass(reference, scale) - low_pass(x0, scale))

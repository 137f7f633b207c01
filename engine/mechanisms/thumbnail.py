"""Scene memory: the whole canvas seen at the model's native size.

The thumbnail of a noisy canvas is a strided subsample, never an average: averaging k pixels
shrinks the noise by √k, so the model would see the wrong noise level and every statistic taken
from the pass would be falsified.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def stride_for(canvas_h: int, canvas_w: int, native: int) -> int:
    return max(1, math.ceil(max(canvas_h, canvas_w) / native))


def subsample(x: torch.Tensor, stride: int, grid: int) -> torch.Tensor:
    """Strided subsample, replicate-padded up to the model grid."""
    t = x[..., ::stride, ::stride]
    ph = (-t.shape[-2]) % grid
    pw = (-t.shape[-1]) % grid
    if ph or pw:
        t = F.pad(t, (0, pw, 0, ph), mode="replicate")
    return t


def area_down(x: torch.Tensor, stride: int, grid: int) -> torch.Tensor:
    """Clean images (conditioning, x0) are averaged down; padded like `subsample`."""
    h = math.ceil(x.shape[-2] / stride)
    w = math.ceil(x.shape[-1] / stride)
    t = F.interpolate(x, size=(h, w), mode="area") if stride > 1 else x
    ph, pw = (-h) % grid, (-w) % grid
    if ph or pw:
        t = F.pad(t, (0, pw, 0, ph), mode="replicate")
    return t


def upsample(thumb: torch.Tensor, stride: int, canvas_h: int, canvas_w: int) -> torch.Tensor:
    """Back to the canvas: thumbnail pixel (i, j) sits at canvas pixel (i·s, j·s)."""
    h = math.ceil(canvas_h / stride)
    w = math.ceil(canvas_w / stride)
    t = thumb[..., :h, :w]
    if stride == 1:
        return t
    up = F.interpolate(t, scale_factor=stride, mode="bilinear", align_corners=False)
    shift = (stride - 1) / 2.0  # align sample points: undo the half-stride offset of interpolate
    if shift:
        s = int(math.floor(shift))
        up = F.pad(up, (s, 0, s, 0), mode="replicate")[..., :up.shape[-2], :up.shape[-1]]
    return up[..., :canvas_h, :canvas_w]

"""Keep a render faithful to its input where the model may be wrong.

A restoration model can invent: on photographs unlike its training set, seamwise-tiny's ×2 fell
up to 2.2 dB below bicubic and its refine removed real texture along with the noise (BENCHMARKS.md,
"Photographs it never saw"). Two checks
that need no knowledge of the photo bound that, applied to the decoded frame:

- Upscale (`project_to_input`): a ×s output, shrunk the way photographs are shrunk (Lanczos-3,
  Pillow's kernel, the one the training degradation uses), must give back the input. Iterative
  back-projection moves the output toward that set: the residual in input pixels, brought up with
  the same bicubic that builds the model's condition, is added back. What the model got right
  above the input's Nyquist stays; colour shifts, halos and lost or invented low-frequency content
  are pulled back to what the input says.
- Refine (`keep_texture`): what the model removed (input − output) is noise where its local energy
  is what noise explains, and detail where it is larger; each pixel gets back the share of the
  removed layer that noise does not explain (a local Wiener gain). The noise level is read from
  the removed layer itself: the 10th percentile of its local energy (the smoothest tenth of a
  photo holds little but noise).

Both work on [0, 1] float tensors in place. The projection goes one colour channel at a time, so a
×2 to 80 MP needs single-channel temporaries; refine holds one more frame (the removed layer).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

LANCZOS_A = 3
NOISE_QUANTILE = 0.1   # chosen with texture_keep on the validation photographs (docs/MODEL.md)


@dataclass(frozen=True)
class Finishing:
    """How a render is finished, per scale; from the model's JSON (`meta.recommended.*.finish`).

    projection_iters: back-projection rounds for ×2/×4 (0: off).
    texture_keep: for refine, multiple of the noise energy below which the removed layer counts as
    noise (0: off; larger keeps less of it back).
    model_weight: for ×2/×4, the share of the model's frame in a blend with the bicubic
    enlargement before projecting (1: the model alone); below 1 where the model is, on photographs
    it never saw, less sure than the consistency of a plain enlargement.
    """
    projection_iters: int = 0
    texture_keep: float = 0.0
    model_weight: float = 1.0

    @classmethod
    def from_dict(cls, d: dict | None) -> "Finishing":
        d = d or {}
        return cls(int(d.get("projection_iters", 0)), float(d.get("texture_keep", 0.0)),
                   float(d.get("model_weight", 1.0)))


SCALE_KEYS = {1: "refine", 2: "x2", 4: "x4"}


def finishing_by_scale(recommended: dict) -> dict[int, Finishing]:
    """{scale: Finishing} from a model's `meta.recommended` ({"refine"|"x2"|"x4": {"finish": …}});
    ×4 takes ×2's where it has none of its own."""
    out = {}
    for scale, key in SCALE_KEYS.items():
        rec = recommended.get(key) or (recommended.get("x2") if scale == 4 else None)
        if rec and rec.get("finish"):
            out[scale] = Finishing.from_dict(rec["finish"])
    return out


def finish(out: torch.Tensor, source: torch.Tensor, scale: int, how: Finishing) -> torch.Tensor:
    """The render `out` ([1, 3, sH, sW], [0, 1]) finished against the input `source`
    ([1, 3, H, W], [0, 1]); returns `out`, changed in place where possible."""
    if scale > 1 and how.projection_iters > 0:
        return project_to_input(out, source, scale, how.projection_iters, how.model_weight)
    if scale == 1 and how.texture_keep > 0:
        out = keep_texture(out, source, how.texture_keep)
    return out


def _lanczos(x: torch.Tensor) -> torch.Tensor:
    a = LANCZOS_A
    y = torch.where(x.abs() < 1e-8, torch.ones_like(x),
                    a * torch.sin(math.pi * x) * torch.sin(math.pi * x / a) / (math.pi ** 2 * x * x))
    return torch.where(x.abs() < a, y, torch.zeros_like(x))


def _taps(scale: int, dtype: torch.dtype) -> torch.Tensor:
    """Pillow's Lanczos weights for an integer shrink by `scale` (even): 6·scale taps around each
    output pixel's centre, at offsets k + 0.5 − 3·scale input pixels."""
    n = 2 * LANCZOS_A * scale
    d = torch.arange(n, dtype=torch.float64) + 0.5 - LANCZOS_A * scale
    return _lanczos(d / scale).to(dtype)


def lanczos_down(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Shrink [N, C, H, W] by `scale` (2 or 4; H, W multiples of it) as Pillow's LANCZOS does,
    border included: the kernel is cut at the picture's edge and renormalised."""
    if scale % 2:
        raise ValueError("lanczos_down handles even factors")
    n, c, h, w = x.shape
    taps = _taps(scale, x.dtype)
    pad = LANCZOS_A * scale - scale // 2
    y = x.reshape(n * c, 1, h, w)
    for dim in (2, 3):   # separable: rows, then columns
        k = taps.view(1, 1, -1, 1) if dim == 2 else taps.view(1, 1, 1, -1)
        stride = (scale, 1) if dim == 2 else (1, scale)
        padding = (pad, 0) if dim == 2 else (0, pad)
        ones = torch.ones((1, 1) + ((y.shape[2], 1) if dim == 2 else (1, y.shape[3])), dtype=x.dtype)
        norm = F.conv2d(ones, k, stride=stride, padding=padding)
        y = F.conv2d(y, k, stride=stride, padding=padding).div_(norm)
    return y.reshape(n, c, h // scale, w // scale)


def bicubic_up(x: torch.Tensor, scale: int) -> torch.Tensor:
    """The engine's upscaler (the model's ×s condition is built with it)."""
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)


def project_to_input(out: torch.Tensor, source: torch.Tensor, scale: int, iters: int,
                     model_weight: float = 1.0) -> torch.Tensor:
    """Iterative back-projection of `out` onto {y : lanczos_down(y) = source}, channel by channel,
    after blending it with the bicubic enlargement by `model_weight` (the projection is affine, so
    this is the same blend of the two projected frames, at the cost of one).

    Each round adds bicubic_up(source − lanczos_down(out)); the residual shrinks every round
    (the round trip's gain lies in (0, 1] at every frequency), fastest where the input has most of
    its energy. Clipped to [0, 1] at the end, like any saved picture.
    """
    h, w = source.shape[-2:]
    for c in range(out.shape[1]):
        y = out[:, c:c + 1, :h * scale, :w * scale]
        low = source[:, c:c + 1].to(out.dtype)
        if model_weight < 1:
            y.mul_(model_weight).add_(bicubic_up(low, scale).clamp_(0, 1), alpha=1 - model_weight)
        for _ in range(iters):
            y.add_(bicubic_up(low - lanczos_down(y, scale), scale))
    return out.clamp_(0, 1)


def _box(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Local mean over a (2r+1)² window, edges replicated."""
    k = 2 * radius + 1
    return F.avg_pool2d(F.pad(x, (radius,) * 4, mode="replicate"), k, stride=1)


def keep_texture(out: torch.Tensor, source: torch.Tensor, keep: float, radius: int = 3) -> torch.Tensor:
    """Give back the share of the removed layer (source − out) that noise does not explain.

    Noise energy: the NOISE_QUANTILE of the removed layer's local energy (summed over channels)
    over the frame. Gain per pixel: max(0, 1 − keep · noise / local energy), the Wiener gain
    with the noise counted `keep` times (keep > 1 errs toward removing).
    """
    removed = source.to(out.dtype) - out
    energy = _box(removed.square().sum(1, keepdim=True), radius)
    flat = energy.flatten()
    sample = flat[:: max(1, flat.numel() // 1_000_000)]   # a million values place it closely enough
    k = max(1, int(NOISE_QUANTILE * sample.numel()))
    noise = sample.kthvalue(k).values.clamp_min(1e-12)
    gain = (1 - keep * noise / energy.clamp_min(1e-12)).clamp_(0, 1)
    return out.add_(removed.mul_(gain)).clamp_(0, 1)

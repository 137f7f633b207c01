"""Fast mode: one pass per tile through the whole network, statistics from a thumbnail.

Exact mode stores every intermediate activation of the whole image. Fast mode stores none: a
thumbnail (a strided subsample of the input, so that the latent's per-pixel distribution is kept
rather than smoothed) runs first through the exact runner, which records the GroupNorm statistics
of every layer and the normalised mid-block hidden states. Then each tile runs the unmodified
diffusers modules on a crop with a halo as wide as the conv stack's receptive field, with every
GroupNorm fixed to the thumbnail's statistics and the mid-block attention attending to its own
crop exactly and to the rest of the image through the thumbnail's tokens (see attention.py).
Only the statistics and the far-field attention are approximate; the convolutions see exactly the
context they would in a full-frame run.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from engine.layerwise.attention import Bank, attend, finish, project_kv, tokens
from engine.layerwise.plan import AttnOp, Plan
from engine.layerwise.stats import NormAffine


def thumbnail(x: Tensor, longest: int) -> tuple[Tensor, int]:
    """Strided subsample (centre of each step×step cell) so the longest side is <= `longest`."""
    step = max(1, math.ceil(max(x.shape[-2:]) / longest))
    if step == 1:
        return x, 1
    return x[:, :, step // 2 :: step, step // 2 :: step], step


@dataclass
class _Thumb:
    norms: dict  # GroupNorm module -> NormAffine
    banks: dict  # Attention module -> Bank


def _edges(n_full: int, n_thumb: int) -> Tensor:
    return torch.round(torch.linspace(0, n_full, n_thumb + 1)).long()


def make_banks(attn_hidden: dict, latent_h: int, latent_w: int) -> dict:
    banks = {}
    for attn, hid in attn_hidden.items():
        key, value = project_kv(attn, tokens(hid))
        banks[attn] = Bank(key[0], value[0], _edges(latent_h, hid.shape[2]), _edges(latent_w, hid.shape[3]))
    return banks


@contextmanager
def frozen_statistics(plan: Plan, thumb: _Thumb, window: list):
    """Patch every GroupNorm and mid-block attention of the plan for the duration of a tile run.

    `window` holds the current crop's rectangle and the part of it that is valid at the attention
    layer, both in latent pixels (y0, y1, x0, x1); the attention reads it at call time.
    """
    patched: list[tuple[nn.Module, object]] = []  # module, its own instance-level forward if any

    def fixed_norm(norm: NormAffine):
        def forward(x: Tensor) -> Tensor:
            shape = (1, -1) + (1,) * (x.dim() - 2)
            return torch.addcmul(norm.shift.to(x.device).view(shape), x.float(), norm.scale.to(x.device).view(shape)).to(x.dtype)
        return forward

    def bank_attention(attn, norm: NormAffine, bank: Bank):
        def forward(hidden_states: Tensor, *args, **kwargs) -> Tensor:
            hid = norm.apply(hidden_states).to(hidden_states.dtype)
            # Exact keys only from the part of the crop whose values are already right at this
            # layer (the crop minus the receptive field so far); the rest comes from the bank.
            crop, (y0, y1, x0, x1) = window[0], window[1]
            local = hid[:, :, y0 - crop[0] : y1 - crop[0], x0 - crop[2] : x1 - crop[2]]
            key, value = project_kv(attn, tokens(local))
            key, value = torch.cat([key[0], bank.key]), torch.cat([value[0], bank.value])
            bias = torch.cat([torch.zeros(local.shape[2] * local.shape[3]), bank.bias(y0, y1, x0, x1)])
            return finish(attn, attend(attn, tokens(hid), key[None], value[None], bias), hidden_states)
        return forward

    try:
        for gn, norm in thumb.norms.items():
            patched.append((gn, gn.__dict__.get("forward")))
            gn.forward = fixed_norm(norm)
        for op in plan.ops:
            if isinstance(op, AttnOp):
                patched.append((op.attn, op.attn.__dict__.get("forward")))
                op.attn.forward = bank_attention(op.attn, thumb.norms[op.attn.group_norm], thumb.banks[op.attn])
        yield
    finally:
        for m, own in reversed(patched):
            if own is None:
                del m.forward  # back to the class's forward
            else:
                m.forward = own


def run_tiles(
    net, plan: Plan, x: Tensor, thumb: _Thumb, out: np.ndarray, tile: int, align: int, latent_per_input: float
) -> None:
    """Depth-first tiles of input `x` (1, C, H, W) through `net`, output cores written into `out` (H', W', C').

    `tile` and the halo are in input pixels; crops start on multiples of `align` (the encoder's
    downsampling grid). Output is `plan.scale()` × input.
    """
    f = plan.scale()
    _, _, h, w = x.shape
    halo = math.ceil(plan.reach()) + 1
    halo = -(-halo // align) * align
    t = max(align, tile // align * align)
    window: list = [None, None]
    oh, ow = out.shape[:2]
    attn_at = [i for i, op in enumerate(plan.ops) if isinstance(op, AttnOp)]
    shrink = math.ceil(plan.reach(attn_at[0]) * latent_per_input) if attn_at else 0
    lh, lw = int(round(h * latent_per_input)), int(round(w * latent_per_input))
    with frozen_statistics(plan, thumb, window):
        for y0 in range(0, h, t):
            for x0 in range(0, w, t):
                y1, x1 = min(y0 + t, h), min(x0 + t, w)
                cy0, cy1, cx0, cx1 = max(y0 - halo, 0), min(y1 + halo, h), max(x0 - halo, 0), min(x1 + halo, w)
                ly0, ly1, lx0, lx1 = (int(v * latent_per_input) for v in (cy0, cy1, cx0, cx1))
                window[0] = (ly0, ly1, lx0, lx1)
                window[1] = (
                    ly0 + shrink if ly0 > 0 else 0, ly1 - shrink if ly1 < lh else ly1,
                    lx0 + shrink if lx0 > 0 else 0, lx1 - shrink if lx1 < lw else lx1,
                )
                y = net(x[:, :, cy0:cy1, cx0:cx1])
                oy0, ox0 = int(y0 * f), int(x0 * f)
                oy1 = oh if y1 == h else int(y1 * f)
                ox1 = ow if x1 == w else int(x1 * f)
                ry, rx = oy0 - int(cy0 * f), ox0 - int(cx0 * f)
                core = y[0, :, ry : ry + oy1 - oy0, rx : rx + ox1 - ox0]
                out[oy0:oy1, ox0:ox1] = core.permute(1, 2, 0).to("cpu", torch.float32).numpy()

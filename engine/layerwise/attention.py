"""The VAE mid-block self-attention over the whole image, exactly or with a far-field bank.

Exact: every query attends to every latent pixel, as the full-frame model does. That costs
O(N²) in the number of latent pixels N, so it is used while N <= `max_tokens`.

Beyond that (and in fast mode) a query tile attends exactly to a local window around it and,
for everything outside the window, to a compact bank of cell tokens: each cell of p×p latent
pixels is represented by one key/value (the mean of its normalised hidden states, or in fast
mode the thumbnail's pixel standing for that cell) with a log(count) logit bias, so a cell
weighs as much as the `count` pixels it stands for. Each latent pixel is represented once:
cells are debited the pixels the window already covers exactly. The approximation is exact
when a cell's keys are all alike, and is what `softmax` over all pixels would give if each
far pixel's key were replaced by its cell's mean key.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class AttentionPolicy:
    """When attention is whole-image, and the shape of the approximation when it is not."""

    max_tokens: int = 65536  # whole-image exact attention up to this many latent pixels
    bank_tokens: int = 4096  # far-field cells when approximating
    window: int = 128  # local exact window side (latent pixels) when approximating

    def cell(self, height: int, width: int) -> int:
        return max(1, math.ceil(math.sqrt(height * width / self.bank_tokens)))

    def query_tiles(self, cell: int) -> tuple[int, int]:
        """(query tile side, margin) for banks of `cell`-sized cells: each query tile attends to
        itself plus `margin` tokens around it exactly, all aligned to the cells."""
        margin = cell * max(1, -(-self.window // (8 * cell)))
        return max(cell, (self.window - 2 * margin) // cell * cell), margin


@dataclass
class Bank:
    """Far-field keys/values for cells of `cell_rows[i]` × `cell_cols[j]` latent pixels."""

    key: Tensor  # (M, inner)
    value: Tensor  # (M, inner)
    row_edges: Tensor  # (Hc + 1,) pixel row where each cell row starts, last = height
    col_edges: Tensor  # (Wc + 1,)

    def bias(self, y0: int, y1: int, x0: int, x1: int) -> Tensor:
        """log(pixels of each cell outside the exact window), -inf where none are left."""
        r0, r1 = self.row_edges[:-1], self.row_edges[1:]
        c0, c1 = self.col_edges[:-1], self.col_edges[1:]
        rin = (torch.minimum(r1, torch.tensor(y1)) - torch.maximum(r0, torch.tensor(y0))).clamp(min=0)
        cin = (torch.minimum(c1, torch.tensor(x1)) - torch.maximum(c0, torch.tensor(x0))).clamp(min=0)
        total = torch.outer(r1 - r0, c1 - c0)
        outside = (total - torch.outer(rin, cin)).double().reshape(-1)
        return outside.log().float()  # log(0) = -inf masks a cell fully inside the window


def project_kv(attn, hidden: Tensor) -> tuple[Tensor, Tensor]:
    return attn.to_k(hidden), attn.to_v(hidden)


def attend(attn, q_hidden: Tensor, key: Tensor, value: Tensor, bias: Tensor | None, max_scores: int = 1 << 23) -> Tensor:
    """Self-attention output for query tokens (1, n, C) against keys/values (1, m, inner).

    Queries run in chunks so the score matrix stays under `max_scores` elements.
    Returns the projected output (1, n, C) before the residual.
    """
    heads = attn.heads
    q = attn.to_q(q_hidden)
    inner = q.shape[-1]
    hd = inner // heads
    k = key.view(1, -1, heads, hd).transpose(1, 2)
    v = value.view(1, -1, heads, hd).transpose(1, 2)
    mask = None
    if bias is not None:
        mask = bias.to(device=q.device, dtype=q.dtype).view(1, 1, 1, -1)
    step = max(1, max_scores // max(1, k.shape[2] * heads))
    outs = []
    for i in range(0, q.shape[1], step):
        qc = q[:, i : i + step].view(1, -1, heads, hd).transpose(1, 2)
        o = F.scaled_dot_product_attention(qc, k, v, attn_mask=mask, scale=attn.scale)
        outs.append(o.transpose(1, 2).reshape(1, -1, inner))
    out = torch.cat(outs, dim=1).to(q.dtype)
    out = attn.to_out[0](out)
    return attn.to_out[1](out)


def finish(attn, projected: Tensor, residual: Tensor) -> Tensor:
    """Residual and rescale, as AttnProcessor2_0 does; tokens (1, n, C) + NCHW residual → NCHW."""
    _, c, h, w = residual.shape
    out = projected.transpose(1, 2).reshape(1, c, h, w)
    return (out + residual) / attn.rescale_output_factor


def tokens(x: Tensor) -> Tensor:
    """NCHW (1, C, h, w) → tokens (1, h·w, C)."""
    return x.flatten(2).transpose(1, 2)

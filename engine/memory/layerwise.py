"""Mechanism 3, done exactly: the whole canvas evaluated one layer at a time.

Tiled diffusion differs from the full frame for three reasons: a tile's convolutions do not see
past its halo, its GroupNorms normalise with the tile's own statistics, and its self-attention
sees only the tile. Evaluating the denoiser as `engine.layerwise` runs the VAE removes all three
at once: every operation runs over the whole canvas tile by tile, with a halo exactly one kernel
wide at that operation's resolution, GroupNorm statistics pooled over all tiles' cores (the
between-tile term included) while the previous operation was written, and self-attention over
the whole canvas while it has at most `AttentionPolicy.max_tokens` tokens (beyond that, a local
window plus a far-field bank of cell means). Work is the untiled run's plus one-pixel halos per
convolution; the price is host memory for whole-canvas activations (skip connections included),
kept in RAM up to `ram_budget` and on disk beyond it. Device memory is set by the tile alone.

The adapter assembles the model input and finishes the output (`predict_x0_layerwise`); this
module only streams a network over an HWC array.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from engine.layerwise.plan import Plan, unet2d_plan
from engine.layerwise.runner import Runner, Stored
from engine.layerwise.store import ActivationStore, RamActivation

DEFAULT_RAM_BUDGET = 4 << 30   # bytes of whole-canvas activations in RAM before spilling to disk


@dataclass
class LayerwiseUNet:
    """A `UNet2DModel` unrolled once per render, evaluated per call over a whole HWC array."""

    unet: nn.Module
    tile: int
    ram_budget: int = DEFAULT_RAM_BUDGET
    spill_dir: Optional[str] = None
    on_tile: Optional[Callable[[], None]] = None      # after every tile (cancel checks)
    on_op: Optional[Callable[[int, int], None]] = None  # (operations done, operations)
    plan: Plan = field(init=False)
    spilled_bytes: int = 0

    def __post_init__(self) -> None:
        self.plan = unet2d_plan(self.unet)

    def __call__(self, sample: np.ndarray, timestep: torch.Tensor) -> np.ndarray:
        """sample: (H, W, C_in) float32 host array; returns (H, W, C_out) float32."""
        p = next(self.unet.parameters())
        t = torch.as_tensor(timestep, device=p.device).reshape(1)
        emb = self.unet.time_embedding(self.unet.time_proj(t).to(p.dtype))
        store = ActivationStore(self.ram_budget, self.spill_dir)
        runner = Runner(p.device, p.dtype, store, tile=self.tile, emb=emb, on_tile=self.on_tile,
                        on_op=self.on_op)
        try:
            out = runner.run(self.plan, Stored(RamActivation(*sample.shape, sample.dtype, out=sample)))
        finally:
            self.spilled_bytes += store.spilled_bytes
            store.close()
        return out.act.array

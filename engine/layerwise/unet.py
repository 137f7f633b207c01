"""Mechanism 3, done exactly: the whole canvas evaluated one layer at a time.

Tiled diffusion differs from the full frame for three reasons: a tile's convolutions do not see
past its halo, its GroupNorms normalise with the tile's own statistics, and its self-attention
sees only the tile. Evaluating the denoiser as `engine.layerwise` runs the VAE removes all three
at once: every operation runs over the whole canvas tile by tile, with a halo exactly one kernel
wide at that operation's resolution, GroupNorm statistics pooled over all tiles' cores (the
between-tile term included) while the previous operation was written, and self-attention over
the whole canvas while it has at most `AttentionPolicy.max_tokens` tokens (beyond that, a local
window plus a far-field bank of cell means). Work is the untiled run's plus one-pixel halos per
convolution; the price is memory for whole-canvas activations (skip connections included): on
the accelerator up to `device_budget` (no bus transfer per operation), then in RAM up to
`ram_budget`, then on disk. Beyond the activations, device memory is set by the tile alone.

The adapter assembles the model input and finishes the output (`predict_x0_layerwise`); this
module only streams a network over an HWC array.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from engine.layerwise.attention import AttentionPolicy
from engine.layerwise.plan import Plan, unet_plan
from engine.layerwise.runner import Runner, Stored, storage_dtype
from engine.layerwise.store import ActivationStore, RamActivation

DEFAULT_RAM_BUDGET = 4 << 30   # bytes of whole-canvas activations in RAM before spilling to disk
# Exact whole-canvas self-attention up to 128² tokens (1024² px for the bundled model, whose
# attention runs at 1/8 scale); beyond, each query tile attends to a 64-token window around it
# and 1024 far-field cell means. Exact attention is quadratic: at 192² tokens it made one
# evaluation 3× slower, while the windowed policy stayed 50 dB from it (benchmarks.attention).
UNET_ATTENTION = AttentionPolicy(max_tokens=128 * 128, bank_tokens=1024, window=64)


def free_device_memory(device: torch.device) -> int:
    """Free accelerator memory in bytes; 0 for the CPU, whose activations live in the RAM tier."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type == "mps":
        try:
            return max(0, torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory())
        except (AttributeError, RuntimeError):   # older torch: keep activations in RAM
            return 0
    return 0


@dataclass
class LayerwiseUNet:
    """A `UNet2DModel` or `UNet2DConditionModel` unrolled once per render, evaluated per call over
    a whole HWC array."""

    unet: nn.Module
    tile: int
    ram_budget: int = DEFAULT_RAM_BUDGET
    spill_dir: Optional[str] = None
    on_tile: Optional[Callable[[], None]] = None      # after every tile (cancel checks)
    on_op: Optional[Callable[[int, int], None]] = None  # (operations done, operations)
    attention: AttentionPolicy = UNET_ATTENTION
    device_budget: Optional[int] = None   # bytes kept on the accelerator; None: half its free memory
    storage: Optional[np.dtype] = None    # host activations' dtype (float16 halves them); None: the model's
    plan: Plan = field(init=False)
    store: ActivationStore = field(init=False)   # one per render: its spare buffers outlive a call

    def __post_init__(self) -> None:
        self.plan = unet_plan(self.unet)
        p = next(self.unet.parameters())
        if self.device_budget is None:
            self.device_budget = free_device_memory(p.device) // 2
        self.store = ActivationStore(self.ram_budget, self.spill_dir, device=p.device, device_dtype=p.dtype,
                                     device_budget=self.device_budget)

    @property
    def budget(self) -> int:
        """Bytes of activations held without touching the disk."""
        return self.ram_budget + self.device_budget

    @property
    def spilled_bytes(self) -> int:
        return self.store.spilled_bytes

    def close(self) -> None:
        self.store.close()

    def __call__(self, sample: np.ndarray, timestep: torch.Tensor, context: Optional[torch.Tensor] = None,
                 added_cond_kwargs: Optional[dict] = None) -> np.ndarray:
        """sample: (H, W, C_in) host array; returns (H, W, C_out). `context`: (1, tokens, dim)
        prompt embeddings and `added_cond_kwargs` SDXL's pooled embeddings and time ids, as the
        UNet's forward takes them."""
        p = next(self.unet.parameters())
        # Spare buffers only up to what this call needs at once: RAM held stays at the plan's
        # peak. (1.5× the peak would let 4 rather than 16 of a call's allocations start fresh, a
        # page fault per 4 KiB each: 7% of a 1024² call's time, for +37% RSS; measured.)
        itemsize = np.dtype(self.storage or storage_dtype(p.dtype)).itemsize
        self.store.spare_limit = self.plan.peak_bytes(sample.shape[0], sample.shape[1], itemsize)
        runner = Runner(p.device, p.dtype, self.store, tile=self.tile, attention=self.attention,
                        emb=self._embedding(timestep, context, added_cond_kwargs), context=context,
                        on_tile=self.on_tile, on_op=self.on_op, storage=self.storage)
        try:
            out = runner.run(self.plan, Stored(RamActivation(*sample.shape, sample.dtype, out=sample)))
        except BaseException:
            self.store.close()   # a cancel or failure: nothing of this call survives, on disk or in RAM
            raise
        return out.act.array

    def _embedding(self, timestep: torch.Tensor, context: Optional[torch.Tensor],
                   added_cond_kwargs: Optional[dict]) -> torch.Tensor:
        """The time embedding exactly as the UNet's forward builds it (plus SDXL's added one)."""
        u = self.unet
        p = next(u.parameters())
        t = torch.as_tensor(timestep, device=p.device).reshape(1)
        if not hasattr(u, "get_time_embed"):                     # UNet2DModel
            return u.time_embedding(u.time_proj(t).to(p.dtype))
        emb = u.time_embedding(u.get_time_embed(sample=torch.empty(1, dtype=p.dtype), timestep=t), None)
        aug = u.get_aug_embed(emb=emb, encoder_hidden_states=context, added_cond_kwargs=added_cond_kwargs)
        emb = emb + aug if aug is not None else emb
        return u.time_embed_act(emb) if u.time_embed_act is not None else emb

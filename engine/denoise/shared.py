"""Tiles of one step evaluated in other processes: what they need (canvas.evaluate_shared
evaluates them).

A render may hand the tile batches of each step to a *tile runner* (engine.api.TileRunner): a
farm that evaluates groups of them elsewhere and returns their x0 in plan order. The coordinating
process keeps the canvas, the scheduler, the noise field and the fusion, so the sampling stays in
lockstep and the result is bit-identical to evaluating every tile itself, provided each process
computes a batch the same way (same device type and kernels).

Only renders whose tiles are independent within a step are shared: pooled GroupNorm statistics
and the attention bank tie the tiles of a step together inside one process, and layerwise
evaluation is whole-frame by nature, so those stay in one process (`shareable`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from engine.adapters.base import Conditioning
from engine.mechanisms.switches import Mechanisms
from engine.tiling.strategies import Strategy


@dataclass
class FrameShare:
    """What another process needs, once per render, to evaluate this render's tiles."""
    cond: Conditioning
    mechanisms: Mechanisms
    active: Optional[torch.Tensor]    # [H, W] bool: the canvas pixels the selection touches


@dataclass
class StepTiles:
    """One step's tile work: the plan follows from the strategy, the canvas size and the step;
    `batches` is how many batches of at most `batch_size` equal-shape tiles it makes."""
    step: int
    t: torch.Tensor
    alpha_bar: float
    strategy: Strategy
    batch_size: int
    batches: int


def shareable(mech: Mechanisms, layerwise: bool) -> bool:
    """True when each tile's x0 depends only on the canvas, the step and the conditioning."""
    return not layerwise and mech.groupnorm == "off" and not mech.kv_bank

"""Whether a render denoises the whole frame layer by layer, and how: the frame (or the box of
its active windows) at once, or the largest windows that fit, fused like tiles.

The canvas denoiser asks once per render (`choose`); the answer holds the layerwise front end
(engine.layerwise.unet) with its activation storage already chosen.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from engine.adapters.base import ModelAdapter
from engine.layerwise.plan import Plan, UnsupportedModel
from engine.layerwise.runner import storage_dtype
from engine.layerwise.unet import LayerwiseUNet
from engine.mechanisms.switches import Mechanisms
from engine.tiling.strategies import Strategy, make_strategy, snap
from engine.tiling.windows import bounding_window, touches


@dataclass
class WholeFrame:
    unet: LayerwiseUNet
    windows: Optional[Strategy] = None   # the frame does not fit: windows this large do


def layerwise_window_bytes(plan: Plan, tile: int, grid: int, itemsize: int) -> int:
    """Activations alive at once while a window of `tile` canvas px, with memory's default halo,
    is evaluated layerwise: what a budget must hold for windows that big. (The default halo:
    twice as wide measured +0.26 dB for +18% work.)"""
    side = tile + make_strategy("memory", tile, None, grid).overlap
    return plan.peak_bytes(side, side, itemsize)


def choose(adapter: ModelAdapter, strategy: Strategy, mech: Mechanisms,
           canvas_shape: tuple[int, ...], active: Optional[torch.Tensor]) -> Optional[WholeFrame]:
    """"on": always; "auto": when the model's layers can be unrolled, the active box's
    activations fit the device and RAM budgets, and the box is no more work than the tiles
    (two small selections in opposite corners are cheaper as tiles). None: tiles."""
    storage = mech.layerwise_storage
    try:
        lw = LayerwiseUNet(adapter.layerwise_unet(), strategy.tile,
                           ram_budget=mech.layerwise_ram_bytes,
                           storage=np.dtype(np.float16) if storage == "float16" else None)
    except UnsupportedModel:
        if mech.layerwise == "on":
            raise
        return None
    if mech.layerwise == "on":
        return WholeFrame(lw)
    h, w = canvas_shape[-2:]
    plan = [p for p in strategy.plan(h, w, 0) if touches(p, active)]
    box = bounding_window(plan, h, w)
    if box is None:
        return None
    tiled_work = sum((p.y.stop - p.y.start) * (p.x.stop - p.x.start) for p in plan)
    if box.h * box.w > tiled_work:
        return None
    full = storage_dtype(adapter.dtype)
    choices = {"full": [full], "float16": [np.dtype(np.float16)],
               "auto": [full] + ([np.dtype(np.float16)] if full.itemsize > 2 else [])}[storage]
    for dtype in choices:   # the most precise storage that fits
        if lw.plan.peak_bytes(box.h, box.w, dtype.itemsize) <= lw.budget:
            lw.storage = None if dtype == full else dtype
            return WholeFrame(lw)
    windows = _largest_windows(lw, strategy, max(h, w), choices[-1])
    if windows is None:
        return None
    lw.storage = None if choices[-1] == full else choices[-1]
    return WholeFrame(lw, windows)


def _largest_windows(lw: LayerwiseUNet, s: Strategy, side: int,
                     dtype: np.dtype) -> Optional[Strategy]:
    """The frame does not fit whole: the largest windows (with their halos) that do, each
    evaluated layerwise and fused like tiles. Their statistics and attention span megapixels
    rather than a tile, and their seams are far apart; below four tiles' side, plain tiles."""
    def fits(tile: int) -> bool:
        return layerwise_window_bytes(lw.plan, tile, s.grid, dtype.itemsize) <= lw.budget

    low, high = 4 * s.tile, snap(side, s.grid, minimum=s.grid)
    if not fits(low):
        return None
    if fits(high):
        low = high
    while high - low > s.grid:    # the largest fitting window side, on the grid: fits(low)
        mid = snap((low + high) // 2, s.grid)
        low, high = (mid, high) if fits(mid) else (low, mid)
    return make_strategy("memory", low, None, s.grid, s.seed, s.feather)

"""The five tiling strategies, as window plans over one canvas.

All of them feed the same canvas denoiser, so every comparison is side by side in the same code:
- naive: non-overlapping tiles (a feathered overlap if one is asked for);
- multidiffusion: overlapping windows, uniform averaging;
- mixture: overlapping windows, Gaussian weights (Mixture of Diffusers);
- spot: non-overlapping tiles whose grid shifts every step (SpotDiffusion);
- memory: non-overlapping cores evaluated with a halo of live canvas around them, the core
  feathered into the neighbours' halos; the other memory mechanisms ride on top (engine.mechanisms).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from engine.tiling import windows as tiling
from engine.tiling.windows import Tile
from engine.types import STRATEGIES


def default_overlap(strategy: str, tile: int, grid: int) -> int:
    """Usual settings of each method, as fractions of the tile (canvas px, before grid snapping).
    memory: a halo of tile/16, at least one grid cell."""
    return {"naive": 0, "spot": 0, "multidiffusion": tile // 2, "mixture": tile // 4,
            "memory": max(2 * grid, tile // 8)}[strategy]


def snap(value: int, grid: int, minimum: int = 0) -> int:
    return max(minimum, int(round(value / grid)) * grid)


@dataclass(frozen=True)
class Strategy:
    name: str
    tile: int        # canvas px, multiple of grid
    overlap: int     # canvas px between neighbouring windows (memory: 2 × halo)
    grid: int        # model downsampling factor
    seed: int = 0
    feather: float = 0.5   # memory: ramp half-width as a fraction of the halo

    @property
    def halo(self) -> int:
        return snap(self.overlap // 2, self.grid)

    def plan(self, canvas_h: int, canvas_w: int, step: int = 0) -> list[Tile]:
        g = self.grid
        if self.name == "naive":
            half = snap(self.overlap // 2, g)
            ys = tiling.with_halo(tiling.split(canvas_h, self.tile, g), canvas_h, half)
            xs = tiling.with_halo(tiling.split(canvas_w, self.tile, g), canvas_w, half)
            return tiling.grid_plan(ys, xs, "feather", half)
        if self.name in ("multidiffusion", "mixture"):
            ys = tiling.windows_only(tiling.slide(canvas_h, self.tile, self.overlap, g))
            xs = tiling.windows_only(tiling.slide(canvas_w, self.tile, self.overlap, g))
            return tiling.grid_plan(ys, xs, "flat" if self.name == "multidiffusion" else "gaussian")
        if self.name == "spot":
            rng = random.Random(self.seed * 1_000_003 + step)
            oy = rng.randrange(0, self.tile, g)
            ox = rng.randrange(0, self.tile, g)
            ys = tiling.windows_only(tiling.shifted(canvas_h, self.tile, oy))
            xs = tiling.windows_only(tiling.shifted(canvas_w, self.tile, ox))
            return tiling.grid_plan(ys, xs, "flat")
        if self.name == "memory":
            halo = self.halo
            feather = snap(int(halo * self.feather), 1)
            ys = tiling.with_halo(tiling.split(canvas_h, self.tile, g), canvas_h, halo)
            xs = tiling.with_halo(tiling.split(canvas_w, self.tile, g), canvas_w, halo)
            return tiling.grid_plan(ys, xs, "feather", feather)
        raise ValueError(f"unknown strategy {self.name!r}; choose from {', '.join(STRATEGIES)}")


def make_strategy(name: str, tile: int, overlap: int | None, grid: int, seed: int = 0,
                  feather: float = 0.5) -> Strategy:
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    tile = snap(tile, grid, minimum=grid)
    ov = default_overlap(name, tile, grid) if overlap is None else overlap
    if name in ("multidiffusion", "mixture"):
        ov = min(snap(ov, grid), tile - grid)
    elif name == "memory":
        ov = 2 * snap(ov // 2, grid)   # the overlap is two halos, each on the grid
    else:
        ov = snap(ov, grid)
    return Strategy(name, tile, ov, grid, seed, feather)

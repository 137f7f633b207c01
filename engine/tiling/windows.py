"""Window plans and fusion weights: pure functions over integers and small tensors.

Two rectangles, each with one job: a `Tile` is an entry of a plan (the window a model call
evaluates, the core it owns, and the fusion weight over the window); a `Window` is the rectangle
an adapter is asked to evaluate, with the canvas it sits in (`Tile.window`, `bounding_window`). Every coordinate sits on the model's downsampling grid (`grid`), because a
window shifted off that grid predicts differently even deep inside it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Window:
    """A rectangle of the canvas evaluated by one model call (core + halo for `memory`).

    `stride` > 1 marks the thumbnail pass: the canvas has been strided-subsampled by `stride`, and
    (y, x, h, w, canvas_h, canvas_w) are coordinates in that subsampled canvas. Adapters use the
    window to crop their conditioning (concat images) and to build position signals (SDXL
    `crops_coords_top_left` = (y, x) × stride × vae_scale, `original_size` = canvas size × ...).
    """
    y: int
    x: int
    h: int
    w: int
    canvas_h: int
    canvas_w: int
    stride: int = 1

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y, self.y + self.h), slice(self.x, self.x + self.w)


@dataclass(frozen=True)
class Span:
    """A 1-D window [start, stop) with the core [core_start, core_stop) it owns."""
    start: int
    stop: int
    core_start: int
    core_stop: int


@dataclass(frozen=True)
class Tile:
    y: Span
    x: Span
    profile: str     # "flat" | "feather" | "gaussian"
    feather: int     # ramp half-width for "feather", canvas px

    def window(self, canvas_h: int, canvas_w: int) -> Window:
        """The rectangle a model call evaluates for this tile."""
        return Window(self.y.start, self.x.start, self.y.stop - self.y.start,
                      self.x.stop - self.x.start, canvas_h, canvas_w)

    @property
    def shape(self) -> tuple[int, int]:
        return self.y.stop - self.y.start, self.x.stop - self.x.start


def split(length: int, tile: int, grid: int) -> list[tuple[int, int]]:
    """Cut [0, length) into ceil(length / tile) near-equal cores on the grid."""
    n = max(1, math.ceil(length / tile))
    cells = length // grid
    bounds = [round(i * cells / n) * grid for i in range(n + 1)]
    bounds[-1] = length
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def slide(length: int, tile: int, overlap: int, grid: int) -> list[tuple[int, int]]:
    """Windows of size `tile` with at least `overlap` between neighbours, evenly spread."""
    if length <= tile:
        return [(0, length)]
    stride = max(grid, tile - overlap)
    n = math.ceil((length - tile) / stride) + 1
    room = (length - tile) // grid
    starts = sorted({round(i * room / (n - 1)) * grid for i in range(n)})
    return [(s, s + tile) for s in starts]


def shifted(length: int, tile: int, offset: int) -> list[tuple[int, int]]:
    """Non-overlapping cores of size `tile` starting at `offset` (SpotDiffusion), clipped."""
    bounds = [0] + list(range(offset % tile or tile, length, tile)) + [length]
    bounds = sorted(set(bounds))
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def with_halo(cores: list[tuple[int, int]], length: int, halo: int) -> list[Span]:
    return [Span(max(0, a - halo), min(length, b + halo), a, b) for a, b in cores]


def windows_only(windows: list[tuple[int, int]]) -> list[Span]:
    return [Span(a, b, a, b) for a, b in windows]


def profile_1d(span: Span, length: int, profile: str, feather: int) -> torch.Tensor:
    """Fusion weight along one axis of a window (float64 for exact sums)."""
    pos = torch.arange(span.start, span.stop, dtype=torch.float64) + 0.5
    if profile == "flat":
        return torch.ones_like(pos)
    if profile == "gaussian":  # Mixture of Diffusers: var = 0.01 of the window, σ = 0.1·size
        size = span.stop - span.start
        mid = (span.start + span.stop) / 2.0
        return torch.exp(-((pos - mid) ** 2) / (2 * (0.1 * size) ** 2))
    if profile == "feather":  # owns the core; linear ramps of ±feather across interior core edges
        w = torch.ones_like(pos)
        if feather > 0:
            if span.core_start > 0:
                w = w * ((pos - (span.core_start - feather)) / (2 * feather)).clamp(0, 1)
            if span.core_stop < length:
                w = w * (((span.core_stop + feather) - pos) / (2 * feather)).clamp(0, 1)
        else:
            inside = (pos >= span.core_start) & (pos < span.core_stop)
            w = inside.to(torch.float64)
        return w
    raise ValueError(f"unknown weight profile {profile!r}")


def tile_weight(tile: Tile, canvas_h: int, canvas_w: int) -> torch.Tensor:
    """[h, w] float64 fusion weight over the tile's window (unnormalised)."""
    wy = profile_1d(tile.y, canvas_h, tile.profile, tile.feather)
    wx = profile_1d(tile.x, canvas_w, tile.profile, tile.feather)
    return wy[:, None] * wx[None, :]


def grid_plan(ys: list[Span], xs: list[Span], profile: str, feather: int = 0) -> list[Tile]:
    return [Tile(y, x, profile, feather) for y in ys for x in xs]


def weight_sum(plan: list[Tile], canvas_h: int, canvas_w: int) -> torch.Tensor:
    """Σ of unnormalised weights over the canvas (coverage check, tests, benchmarks)."""
    total = torch.zeros(canvas_h, canvas_w, dtype=torch.float64)
    for t in plan:
        ys, xs = slice(t.y.start, t.y.stop), slice(t.x.start, t.x.stop)
        total[ys, xs] += tile_weight(t, canvas_h, canvas_w)
    return total


def bounding_window(plan: list[Tile], canvas_h: int, canvas_w: int) -> Window | None:
    """The rectangle spanned by the windows of a plan; None for an empty plan."""
    if not plan:
        return None
    y0, x0 = min(p.y.start for p in plan), min(p.x.start for p in plan)
    return Window(y0, x0, max(p.y.stop for p in plan) - y0, max(p.x.stop for p in plan) - x0,
                  canvas_h, canvas_w)


def touches(tile: Tile, active: torch.Tensor | None) -> bool:
    """Whether a tile's core touches the active (selected) region of the canvas."""
    if active is None:
        return True
    return bool(active[tile.y.core_start:tile.y.core_stop, tile.x.core_start:tile.x.core_stop].any())

"""Runs one multi-operation segment of a `Schedule`: statistics passes, then the writing pass.

Per tile of the pass's target, `schedule.needs` gives the region of every activation in the
segment that the tile depends on (its receptive field since the segment's start, clipped to the
image); each operation is then evaluated once over its region with `Runner.conv_tile`, which is
the same per-tile code the store-everything path runs, so the zero padding at the image border,
the ×2 upsample's half-pixel halo and the normalisation are reproduced exactly. A statistics pass
keeps only the target's moments, pooled over the tiles' cores (each pixel counted once); the
last pass writes the segment's output, which the schedule stores (or the caller's array).
"""
from __future__ import annotations

from typing import Callable, Protocol

import numpy as np
import torch
from torch import Tensor

from .plan import ConvOp, Plan
from .schedule import needs, normalised_inputs
from .stats import ChannelMoments, NormAffine
from .store import Activation, ActivationStore, RamActivation
from .values import Stored, storage_dtype, tiles


class TileRunner(Protocol):
    """What a segment needs of `Runner` (which calls it, so it is not imported here)."""

    dtype: torch.dtype
    np_dtype: np.dtype
    store: ActivationStore
    tile: int
    on_tile: Callable[[], None] | None

    def conv_constants(self, op: ConvOp, moments: list[ChannelMoments]) -> tuple[NormAffine | None, Tensor | None]: ...

    def conv_tile(self, op: ConvOp, norm, temb, read_in: Callable, read_res: Callable | None, h: int, w: int,
                  rect: tuple[int, int, int, int]) -> Tensor: ...

    def read(self, parts: list[Stored], y0: int, y1: int, x0: int, x1: int) -> Tensor: ...

    def write(self, dst: Activation, y0: int, x0: int, t: Tensor) -> None: ...


def run_segment(runner: TileRunner, plan: Plan, start: int, stop: int, values: dict[str, Stored],
                out: Activation | None) -> Stored:
    """Evaluate ops[start:stop] from the stored `values`; returns the stored last activation."""
    ops = plan.ops[start:stop]
    sizes = {n: v.act.shape for n, v in values.items()}
    for op in ops:
        sizes[op.dst] = op.output_shape(*sizes[op.src][:2])
    normed = {n for op in plan.ops for n in normalised_inputs(op)}
    last = ops[-1].dst
    index = {op.dst: i for i, op in enumerate(ops)}
    moments: dict[str, ChannelMoments] = {}

    def stats(name: str) -> ChannelMoments:
        return values[name].moments if name in values else moments[name]

    for target in [op.dst for op in ops[:-1] if op.dst in normed] + [last]:
        upto = start + index[target] + 1
        constants = [runner.conv_constants(op, [stats(n) for n in normalised_inputs(op)])
                     for op in plan.ops[start:upto]]
        h, w, c = sizes[target]
        dst = None
        if target == "out":
            dst = out if out is not None else RamActivation(h, w, c, storage_dtype(runner.dtype))
        elif target == last:
            dst = runner.store.allocate(h, w, c, runner.np_dtype)
        acc = ChannelMoments.empty(c)
        for rect in tiles(h, w, runner.tile):
            y = _tile(runner, plan, start, upto, rect, sizes, values, constants)
            acc.add_tile(y)
            if dst is not None:
                runner.write(dst, rect[0], rect[2], y)
            if runner.on_tile is not None:
                runner.on_tile()
        if dst is not None:
            return Stored(dst, acc)
        moments[target] = acc
    raise AssertionError("a segment ends with its writing pass")


def _tile(runner: TileRunner, plan: Plan, start: int, upto: int, rect: tuple[int, int, int, int],
          sizes: dict, values: dict[str, Stored], constants: list) -> Tensor:
    """One tile `rect` of ops[upto - 1]'s output, every op of plan.ops[start:upto] evaluated once
    over the region of it the tile needs; a window is dropped after its last read."""
    ops = plan.ops[start:upto]
    target = ops[-1].dst
    need = needs(plan, start, upto, target, (np.array([rect[:2]]), np.array([rect[2:]])), sizes)
    last_read = {n: i for i, op in enumerate(ops) for n in op.inputs()}
    windows: dict[str, tuple[Tensor, tuple[int, ...]]] = {}

    def read(names: list[str], y0: int, y1: int, x0: int, x1: int) -> Tensor:
        parts = []
        for n in names:
            if n in windows:
                t, (wy0, _, wx0, _) = windows[n]
                parts.append(t[:, :, y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0])
            else:
                parts.append(runner.read([values[n]], y0, y1, x0, x1))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    for i, op in enumerate(ops):
        if op.dst not in need:
            continue
        r, c = need[op.dst]
        region = (int(r[0, 0]), int(r[0, 1]), int(c[0, 0]), int(c[0, 1]))
        srcs = [n for n in (op.src, op.cat) if n]
        res = [n for n in (op.res, op.res_cat) if n]
        norm, temb = constants[i]
        y = runner.conv_tile(op, norm, temb, lambda *q, srcs=srcs: read(srcs, *q),
                             (lambda *q, res=res: read(res, *q)) if res else None, *sizes[op.src][:2], region)
        windows[op.dst] = (y, region)
        for n in op.inputs():
            if n in windows and last_read[n] <= i:
                del windows[n]
    return windows[target][0]

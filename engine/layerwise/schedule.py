"""Which whole-image activations to store and which to recompute, chosen from a scratch budget.

Storing every activation (what `Runner.run` does op by op) costs exactly one full-frame run of
convolution work but holds up to three whole-image activations at once: 143 GiB for the SD
decoder at 150 MP. A *segment* of consecutive operations can instead be recomputed tile by tile
from the activations stored at its start, with each tile's halo as wide as the receptive field
since that start. The only thing a tile cannot compute locally is a GroupNorm's whole-image
statistics, so a segment runs one streaming *statistics pass* per normalised activation inside
it (tiles recomputed up to that activation, its moments pooled over the tiles' cores, nothing
stored), then a final pass that writes the segment's last activation. Only the activations at
segment boundaries are stored.

A schedule is a set of boundaries. Each segment's scratch (the activations stored at its two
ends) and convolution work (every pass, every tile, every halo: counted exactly from the plan's
shapes and the tile grid) depend on that segment alone, so the cheapest schedule within a scratch
budget is a shortest path over boundaries (dynamic programming, O(ops²) segments). Storing every
activation is the schedule with a boundary after each operation: work 1.0, scratch
`Plan.peak_bytes`. Attention and per-token operations are never recomputed (they are cheap, and
the mid-block attention reads the whole image): they form segments of their own.

Work is counted in multiply-accumulates of the convolutions (pointwise 1×1 ones included), the
quantity `torch.utils.flop_counter` reports (as 2× MACs) for the same run.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .plan import ConvOp, Plan, TokenOp


@dataclass(frozen=True)
class Schedule:
    """`starts`: index of each segment's first operation, ascending, starting at 0."""

    starts: tuple[int, ...]
    n_ops: int
    work: float  # convolution work ÷ that of one full-frame run
    scratch: int  # bytes of stored activations alive at the peak (input and output excluded)

    def segments(self) -> list[tuple[int, int]]:
        ends = self.starts[1:] + (self.n_ops,)
        return list(zip(self.starts, ends))

    @property
    def stores_everything(self) -> bool:
        return len(self.starts) == self.n_ops

    def describe(self) -> str:
        if self.stores_everything:
            return f"store every activation (scratch {self.scratch / 2**30:.2f} GiB, work 1.00x)"
        longest = max(b - a for a, b in self.segments())
        return (f"recompute {sum(b - a > 1 for a, b in self.segments())} segments (longest {longest} ops) "
                f"from stored checkpoints (scratch {self.scratch / 2**30:.2f} GiB, work {self.work:.2f}x)")


def _tile_edges(size: int, tile: int) -> np.ndarray:
    starts = np.arange(0, size, tile)
    return np.stack([starts, np.minimum(starts + tile, size)], axis=1)


def _macs_per_pixel(op: ConvOp) -> tuple[int, int]:
    """(MACs per output pixel, MACs per input pixel read): the conv (+ post 1×1 + shortcut 1×1),
    and the pre 1×1 that runs on what is read."""
    k = op.conv.kernel_size[0]
    out = k * k * op.conv.in_channels * op.conv.out_channels
    if op.post is not None:
        out += op.post.in_channels * op.post.out_channels
    if op.res_conv is not None:
        out += op.res_conv.in_channels * op.res_conv.out_channels
    pre = op.pre.in_channels * op.pre.out_channels if op.pre is not None else 0
    return out, pre


def _span_sum(span: np.ndarray) -> int:
    return int((span[:, 1] - span[:, 0]).sum())


def op_work(op: ConvOp, rows: np.ndarray, cols: np.ndarray, in_h: int, in_w: int) -> int:
    """MACs `Runner.conv_tile` spends on the output tiles rows × cols (every pairing of a row
    interval with a column interval), as it runs them: sub-pixel upsampling convs as four 2×2
    convolutions over whole input pixels, the pre 1×1 on what is read."""
    per_out, per_in = _macs_per_pixel(op)
    if op.subpixel:
        conv = 9 * op.conv.in_channels * op.conv.out_channels
        pix = lambda s: -(-s[:, 1] // 2) - s[:, 0] // 2  # noqa: E731 - input pixels whose outputs are computed
        total = 16 * op.conv.in_channels * op.conv.out_channels * int(pix(rows).sum()) * int(pix(cols).sum())
        total += (per_out - conv) * _span_sum(rows) * _span_sum(cols)
    else:
        total = per_out * _span_sum(rows) * _span_sum(cols)
    if per_in:
        total += per_in * _span_sum(op.input_span(rows, in_h, 0)) * _span_sum(op.input_span(cols, in_w, 1))
    return total


def full_work(plan: Plan, height: int, width: int) -> int:
    """Convolution MACs of one full-frame run as diffusers does it (the unit of `Schedule.work`)."""
    sh = plan.shapes(height, width)
    total = 0
    for op in plan.ops:
        if isinstance(op, ConvOp):
            per_out, per_in = _macs_per_pixel(op)
            h, w, _ = sh[op.dst]
            ih, iw, _ = sh[op.src]
            total += h * w * per_out + ih * iw * per_in
    return total


def needs(plan: Plan, start: int, stop: int, target: str, span: tuple, sizes: dict) -> dict[str, tuple]:
    """The region (rows, cols) of every activation produced by ops[start:stop] that a tile of
    `target` needs. `span` = (rows, cols), each an (n, 2) array of [begin, end) intervals (one
    per tile row or column: rows and columns propagate independently, as every region is a
    rectangle); the stored inputs the segment reads are listed too. An activation read by
    several operations needs the bounding box of their reads."""
    need = {target: span}
    for op in reversed(plan.ops[start:stop]):
        if op.dst not in need:
            continue
        rows, cols = need[op.dst]
        if isinstance(op, ConvOp):
            h, w, _ = sizes[op.src]
            reads = [(n, op.input_span(rows, h, 0), op.input_span(cols, w, 1)) for n in (op.src, op.cat) if n]
            reads += [(n, rows, cols) for n in (op.res, op.res_cat) if n]
        else:
            reads = [(n, rows, cols) for n in op.inputs()]
        for n, r, c in reads:
            if n in need:
                r0, c0 = need[n]
                r = np.stack([np.minimum(r0[:, 0], r[:, 0]), np.maximum(r0[:, 1], r[:, 1])], axis=1)
                c = np.stack([np.minimum(c0[:, 0], c[:, 0]), np.maximum(c0[:, 1], c[:, 1])], axis=1)
            need[n] = (r, c)
    return need


def normalised_inputs(op) -> list[str]:
    """The inputs an operation GroupNorms, whose whole-image statistics it needs."""
    if isinstance(op, ConvOp):
        return [n for n in (op.src, op.cat) if n] if op.norm is not None else []
    if isinstance(op, TokenOp):
        return [op.src] if op.norm is not None else []
    return [op.src] if op.token_norm is None else []


class Planner:
    """Costs and scratch of every valid segment of a plan at one image size, and the cheapest
    schedule within a budget."""

    def __init__(self, plan: Plan, height: int, width: int, itemsize: int, tile: int):
        self.plan, self.tile, self.itemsize = plan, tile, itemsize
        self.sizes = plan.shapes(height, width)
        self.full = max(1, full_work(plan, height, width))
        self.producer = {op.dst: i for i, op in enumerate(plan.ops)}
        self.last_use = plan.last_uses()
        self.normed = {n for op in plan.ops for n in normalised_inputs(op)}

    def nbytes(self, name: str) -> int:
        if name in ("in", "out"):
            return 0
        h, w, c = self.sizes[name]
        return h * w * c * self.itemsize

    def live(self, k: int) -> set[str]:
        """Activations produced before op k and read by op k or later: stored at a boundary at k."""
        return {n for n, last in self.last_use.items() if last >= k and self.producer.get(n, -1) < k}

    def valid(self, start: int, stop: int) -> bool:
        if stop - start == 1:
            return True
        ops = self.plan.ops[start:stop]
        if any(not isinstance(op, ConvOp) for op in ops):
            return False
        # Everything but the last output must be consumed inside the segment (nothing else is stored).
        return all(self.last_use.get(op.dst, -1) < stop for op in ops[:-1])

    def targets(self, start: int, stop: int) -> list[str]:
        """Activations a segment passes over: one statistics pass each, then the last one's."""
        inner = [op.dst for op in self.plan.ops[start : stop - 1] if op.dst in self.normed]
        return inner + [self.plan.ops[stop - 1].dst]

    def segment_scratch(self, start: int, stop: int) -> int:
        return sum(self.nbytes(n) for n in self.live(start) | self.live(stop))

    @lru_cache(maxsize=None)
    def pass_work(self, start: int, target: str) -> int:
        """MACs of one pass over the tiles of `target`, recomputed from the boundary at `start`."""
        stop = self.producer[target] + 1
        h, w, _ = self.sizes[target]
        need = needs(self.plan, start, stop, target, (_tile_edges(h, self.tile), _tile_edges(w, self.tile)),
                     self.sizes)
        return sum(op_work(op, *need[op.dst], *self.sizes[op.src][:2])
                   for op in self.plan.ops[start:stop] if op.dst in need and isinstance(op, ConvOp))

    def segment_work(self, start: int, stop: int) -> int:
        return sum(self.pass_work(start, t) for t in self.targets(start, stop))

    def _segments_into(self, stop: int, max_segment: int):
        return (start for start in range(max(0, stop - max_segment), stop) if self.valid(start, stop))

    def least_scratch(self, max_segment: int = 40) -> int:
        """The smallest scratch any schedule needs (a minimax over the same segments)."""
        n = len(self.plan.ops)
        least = [0] + [float("inf")] * n
        for stop in range(1, n + 1):
            for start in self._segments_into(stop, max_segment):
                least[stop] = min(least[stop], max(least[start], self.segment_scratch(start, stop)))
        return int(least[n])

    def schedule(self, budget: int | None = None, max_segment: int = 40) -> Schedule:
        """The least-work schedule whose scratch fits `budget` bytes (None: unbounded). Raises
        ValueError when none does (the smallest scratch any schedule needs is in the message)."""
        n = len(self.plan.ops)
        inf = (float("inf"), 0, ())
        best = [(0, 0, ())] + [inf] * n  # (work, scratch, starts) of ops[:k]
        for stop in range(1, n + 1):
            for start in self._segments_into(stop, max_segment):
                scratch = self.segment_scratch(start, stop)
                if best[start][0] == float("inf") or (budget is not None and scratch > budget):
                    continue
                work = best[start][0] + self.segment_work(start, stop)
                cand = (work, max(best[start][1], scratch), best[start][2] + (start,))
                if cand[:2] < best[stop][:2]:
                    best[stop] = cand
        work, scratch, starts = best[n]
        if work == float("inf"):
            raise ValueError(f"no schedule keeps the stored activations within {budget / 2**30:.2f} GiB; "
                             f"the least any needs is {self.least_scratch(max_segment) / 2**30:.2f} GiB")
        return Schedule(starts, n, work / self.full, scratch)

    def store_everything(self) -> Schedule:
        n = len(self.plan.ops)
        work = sum(self.segment_work(i, i + 1) for i in range(n))
        scratch = max(self.segment_scratch(i, i + 1) for i in range(n))
        return Schedule(tuple(range(n)), n, work / self.full, scratch)


def choose(plan: Plan, height: int, width: int, itemsize: int, tile: int, budget: int | None) -> Schedule:
    """Store everything when it fits `budget` (bytes of RAM + temporary disk), else the cheapest
    recomputation that does."""
    planner = Planner(plan, height, width, itemsize, tile)
    full = planner.store_everything()
    if budget is None or full.scratch <= budget:
        return full
    return planner.schedule(budget)

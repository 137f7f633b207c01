"""Runs a `Plan` over the whole image one operation at a time, tile by tile.

Every operation reads its stored whole-image input through a halo exactly as wide as its own
kernel needs (one pixel for a 3×3 convolution, at that operation's resolution) and writes its
output's core, so the tiled result equals the full-frame one up to floating-point summation
order, whatever the tile size. While writing, it pools the output's GroupNorm moments, which the
next operation needs; no extra pass is spent on statistics. An activation is released after its
last use: for a VAE at most three are alive at once (an operation's input, its output and a
pending residual), for a UNet also the skip connections the up path has yet to consume
(`Plan.peak_bytes`). The `ActivationStore` keeps them on the accelerator or in RAM up to budgets
and on disk beyond; besides them, device memory holds one tile's working set, set by `tile`.
With a `Schedule`, only the activations at its segment boundaries are stored and each longer
segment is recomputed tile by tile (`recompute.run_segment`), through the same `conv_tile`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .attention import AttentionPolicy, Bank, attend, finish, project_kv, tokens
from .plan import AttnOp, ConvOp, Plan, TokenOp
from .recompute import run_segment
from .schedule import Schedule
from .stats import ChannelMoments, NormAffine
from .store import Activation, ActivationStore, DeviceActivation, RamActivation
from .values import BF16, Stored, storage_dtype, tiles


@dataclass
class Runner:
    device: torch.device
    dtype: torch.dtype
    store: ActivationStore
    tile: int = 512
    attention: AttentionPolicy = field(default_factory=AttentionPolicy)
    # Filled while running, for fast mode: the norm each GroupNorm used, and attention inputs.
    norms: dict = field(default_factory=dict)
    attn_hidden: dict = field(default_factory=dict)
    record_attention: bool = False
    emb: Tensor | None = None  # time embedding of the call, for time-conditioned plans (a UNet's)
    context: Tensor | None = None  # (1, tokens, dim) prompt embeddings, for cross-attention
    on_tile: Callable[[], None] | None = None
    on_op: Callable[[int, int], None] | None = None  # (operations done, operations in the plan)

    storage: np.dtype | None = None  # stored activations' dtype; None: the compute dtype's
    _phases: dict = field(default_factory=dict)  # sub-pixel kernels of upsampling convs, per conv

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.storage) if self.storage is not None else storage_dtype(self.dtype)

    def to_torch(self, block: np.ndarray | Tensor) -> Tensor:
        """An HWC block (an array, or a tensor from a device-resident activation) as NCHW."""
        if isinstance(block, Tensor):
            t = block
        elif block.dtype == BF16:
            t = torch.from_numpy(block.view(np.int16)).view(torch.bfloat16)
        else:
            t = torch.from_numpy(block)
        return t.permute(2, 0, 1)[None].to(self.device, self.dtype)

    def to_numpy(self, t: Tensor, dtype: np.dtype) -> np.ndarray:
        if dtype == np.float16 and t.dtype != torch.float16 and float(t.abs().max()) > 65504:
            raise OverflowError("an activation exceeds the float16 range of its storage: "
                                "give layerwise evaluation more memory, or turn it off")
        if dtype == BF16:
            return t[0].permute(1, 2, 0).to("cpu", torch.bfloat16).view(torch.int16).numpy().view(BF16)
        return t[0].permute(1, 2, 0).to("cpu", torch.from_numpy(np.empty(0, dtype)).dtype).numpy()

    def read(self, parts: list[Stored], y0: int, y1: int, x0: int, x1: int) -> Tensor:
        """Rows and columns of activations concatenated on channels, NCHW on the device.
        Concatenated while still height × width × channels, so the result stays channels-last."""
        blocks = [p.act.read(y0, y1, x0, x1)[0] for p in parts]
        if len(blocks) == 1:
            return self.to_torch(blocks[0])
        if all(isinstance(b, np.ndarray) for b in blocks):
            return self.to_torch(np.concatenate(blocks, axis=2))
        return self.to_torch(torch.cat([torch.as_tensor(b).to(self.device) for b in blocks], dim=2))

    def write(self, dst: Activation, y0: int, x0: int, t: Tensor) -> None:
        if isinstance(dst, DeviceActivation):
            dst.write(y0, x0, t[0].permute(1, 2, 0))
        else:
            dst.write(y0, x0, self.to_numpy(t, dst.dtype))

    # -- driver ------------------------------------------------------------------------------
    def run(self, plan: Plan, source: Stored, out: Activation | None = None,
            schedule: Schedule | None = None) -> Stored:
        """Evaluate `plan` on `source`. `schedule`: which activations to store and which segments
        to recompute (`engine.layerwise.schedule`); None stores every activation."""
        h, w, _ = source.act.shape
        scratch = schedule.scratch if schedule is not None else plan.peak_bytes(h, w, self.np_dtype.itemsize)
        self.store.check_room(scratch, self.np_dtype.itemsize)
        last_use = plan.last_uses()
        values = {"in": source}
        n = len(plan.ops)
        segments = schedule.segments() if schedule is not None else [(i, i + 1) for i in range(n)]
        for start, stop in segments:
            op = plan.ops[stop - 1]
            dst = out if op.dst == "out" else None
            if stop - start > 1:
                values[op.dst] = run_segment(self, plan, start, stop, values, dst)
            elif isinstance(op, ConvOp):
                srcs = [values[op.src]] + ([values[op.cat]] if op.cat else [])
                res = [values[n] for n in (op.res, op.res_cat) if n]
                values[op.dst] = self.conv(op, srcs, res, dst, in_ram=op.dst == "out")
            elif isinstance(op, TokenOp):
                values[op.dst] = self.token(op, values[op.src], values[op.res] if op.res else None)
            else:
                values[op.dst] = self.attn(op, values[op.src])
            for name in [m for m in values if m != "in" and start <= last_use.get(m, -1) < stop]:
                self.store.release(values.pop(name).act)
            if self.on_op is not None:
                self.on_op(stop, n)
        return values["out"]

    # -- convolution ---------------------------------------------------------------------------
    def conv(self, op: ConvOp, srcs: list[Stored], res: list[Stored], dst: Activation | None,
             in_ram: bool = False) -> Stored:
        """`srcs`, `res`: activations concatenated on channels (the input, then a skip connection).
        `in_ram`: the result is returned to the caller, so it lives in RAM whatever the budget."""
        h, w, _ = srcs[0].act.shape
        ho, wo, co = op.output_shape(h, w)
        norm, temb = self.conv_constants(op, [s.moments for s in srcs])
        if dst is None:
            # the result goes back to the caller: at the compute precision, whatever the storage's
            dst = RamActivation(ho, wo, co, storage_dtype(self.dtype)) if in_ram else \
                self.store.allocate(ho, wo, co, self.np_dtype)
        elif dst.shape != (ho, wo, co):
            raise ValueError(f"output array has shape {dst.shape}, expected {(ho, wo, co)}")
        moments = ChannelMoments.empty(co)

        def read_in(*rect):
            return self.read(srcs, *rect)

        def read_res(*rect):
            return self.read(res, *rect)

        for y0, y1, x0, x1 in tiles(ho, wo, self.tile):
            y = self.conv_tile(op, norm, temb, read_in, read_res if res else None, h, w, (y0, y1, x0, x1))
            moments.add_tile(y)
            self.write(dst, y0, x0, y)
            if self.on_tile is not None:
                self.on_tile()
        return Stored(dst, moments)

    def conv_constants(self, op: ConvOp, moments: list[ChannelMoments]) -> tuple[NormAffine | None, Tensor | None]:
        """The op's GroupNorm folded with the statistics of its inputs, and its time embedding."""
        norm = None
        if op.norm is not None:
            norm = NormAffine.from_moments(op.norm, ChannelMoments.concat(moments))
            self.norms[op.norm] = norm
        temb = None
        if op.temb_proj is not None:
            if self.emb is None:
                raise ValueError("this plan is time-conditioned: set Runner.emb to the step's embedding")
            temb = op.temb_proj(op.temb_act(self.emb)).view(1, -1, 1, 1)
        return norm, temb

    def conv_tile(self, op: ConvOp, norm: NormAffine | None, temb: Tensor | None, read_in: Callable,
                  read_res: Callable | None, h: int, w: int, rect: tuple[int, int, int, int]) -> Tensor:
        """Output rows [y0, y1) × cols [x0, x1) of a conv op whose input is h × w: reads exactly
        the input its kernel touches (`read_in(y0, y1, x0, x1)` → NCHW), normalises it, zero-pads
        where it leaves the image, convolves, adds the residual (`read_res`, output rows)."""
        y0, y1, x0, x1 = rect
        if op.subpixel:
            y = self._subpixel(op, norm, read_in, h, w, rect)
        else:
            y = self._conv(op, norm, read_in, h, w, rect)
        if op.post is not None:
            y = F.conv2d(y, op.post.weight, op.post.bias)
        # In place on the fresh conv output, which is channels-last like the stored HWC
        # arrays: an out-of-place broadcast would return NCHW and make every store a transpose.
        if temb is not None:
            y.add_(temb)
        if read_res is not None:
            r = read_res(y0, y1, x0, x1)
            if op.res_conv is not None:
                r = F.conv2d(r, op.res_conv.weight, op.res_conv.bias)
            y = y.add_(r).div_(op.scale)
        return y

    def _conv(self, op: ConvOp, norm: NormAffine | None, read_in: Callable, h: int, w: int,
              rect: tuple[int, int, int, int]) -> Tensor:
        y0, y1, x0, x1 = rect
        f = 2 if op.upsample else 1
        k, s = op.conv.kernel_size[0], op.conv.stride[0]
        pt, _, pl, _ = op.padding()
        u0, u1 = y0 * s - pt, (y1 - 1) * s + k - pt  # rows of the (upsampled) unpadded input
        v0, v1 = x0 * s - pl, (x1 - 1) * s + k - pl
        cu0, cu1, cv0, cv1 = max(u0, 0), min(u1, f * h), max(v0, 0), min(v1, f * w)
        t = self._pointwise(op, norm, read_in(cu0 // f, -(-cu1 // f), cv0 // f, -(-cv1 // f)))
        if f > 1:
            t = F.interpolate(t, scale_factor=2.0, mode="nearest")
            oy, ox = cu0 - cu0 // f * f, cv0 - cv0 // f * f
            t = t[:, :, oy : oy + cu1 - cu0, ox : ox + cv1 - cv0]
        t = F.pad(t, (cv0 - v0, v1 - cv1, cu0 - u0, u1 - cu1))
        t = t.contiguous(memory_format=torch.channels_last)  # HWC out: stores are plain copies
        return F.conv2d(t, op.conv.weight, op.conv.bias, stride=s)

    def _subpixel(self, op: ConvOp, norm: NormAffine | None, read_in: Callable, h: int, w: int,
                  rect: tuple[int, int, int, int]) -> Tensor:
        """`ConvOp.subpixel`: output rows 2i + a read input rows i - 1 + a and i + a. Computes
        the input pixels [i0, i1) × [j0, j1) covering the rect, all four phases, then crops."""
        y0, y1, x0, x1 = rect
        i0, i1, j0, j1 = y0 // 2, -(-y1 // 2), x0 // 2, -(-x1 // 2)
        r0, r1, c0, c1 = max(i0 - 1, 0), min(i1 + 1, h), max(j0 - 1, 0), min(j1 + 1, w)
        t = self._pointwise(op, norm, read_in(r0, r1, c0, c1))
        t = F.pad(t, (c0 - j0 + 1, j1 + 1 - c1, r0 - i0 + 1, i1 + 1 - r1))
        n, m = i1 - i0, j1 - j0
        phases = self._phase_weights(op)
        rows = [torch.stack([F.conv2d(t[:, :, a : a + n + 1, b : b + m + 1], phases[a][b], op.conv.bias)
                             for b in (0, 1)], dim=-1) for a in (0, 1)]  # (1, C, n, m, 2) each
        y = torch.stack(rows, dim=3).reshape(1, -1, 2 * n, 2 * m)  # (1, C, n, 2, m, 2) interleaved
        y = y[:, :, y0 - 2 * i0 : y1 - 2 * i0, x0 - 2 * j0 : x1 - 2 * j0]
        return y.contiguous(memory_format=torch.channels_last)

    def _phase_weights(self, op: ConvOp) -> list[list[Tensor]]:
        """The four 2×2 kernels of an upsampling 3×3 conv: phase 0 takes taps (0 | 1 + 2), phase 1
        (0 + 1 | 2), along rows and along columns (summed in float32)."""
        key = id(op.conv)
        if key not in self._phases:
            wt = op.conv.weight.float()

            def fold(x: Tensor, dim: int, a: int) -> Tensor:
                k0, k1, k2 = x.unbind(dim)
                return torch.stack((k0, k1 + k2) if a == 0 else (k0 + k1, k2), dim=dim)

            self._phases[key] = [[fold(fold(wt, 2, a), 3, b).to(op.conv.weight.dtype) for b in (0, 1)]
                                 for a in (0, 1)]
        return self._phases[key]

    def _pointwise(self, op: ConvOp, norm: NormAffine | None, t: Tensor) -> Tensor:
        if op.pre is not None:
            t = F.conv2d(t, op.pre.weight, op.pre.bias)
        if norm is not None:
            t = norm.apply(t)  # float32, whatever the model's dtype: no fp16 overflow here
        if op.act is not None:
            t = op.act(t)
        return t.to(self.dtype)

    # -- per-token operations ----------------------------------------------------------------
    def token(self, op: TokenOp, src: Stored, res: Stored | None) -> Stored:
        if op.context and self.context is None:
            raise ValueError("this plan cross-attends: set Runner.context to the prompt's embeddings")
        h, w, _ = src.act.shape
        norm = NormAffine.from_moments(op.norm, src.moments) if op.norm is not None else None
        dst = self.store.allocate(h, w, op.out_channels, self.np_dtype)
        moments = ChannelMoments.empty(op.out_channels)
        for y0, y1, x0, x1 in tiles(h, w, self.tile):
            x = self.read([src], y0, y1, x0, x1)
            if norm is not None:
                x = norm.apply(x).to(self.dtype)
            t = tokens(x)
            y = op.fn(t, self.context) if op.context else op.fn(t)
            y = y.transpose(1, 2).reshape(1, op.out_channels, y1 - y0, x1 - x0)  # channels-last view
            if res is not None:
                y = y + self.read([res], y0, y1, x0, x1)
            moments.add_tile(y)
            self.write(dst, y0, x0, y)
            if self.on_tile is not None:
                self.on_tile()
        return Stored(dst, moments)

    # -- attention -----------------------------------------------------------------------------
    def attn(self, op: AttnOp, src: Stored) -> Stored:
        attn = op.attn
        h, w, c = src.act.shape
        if op.token_norm is not None:
            ln = op.token_norm

            def apply(x: Tensor) -> Tensor:
                return F.layer_norm(x.permute(0, 2, 3, 1), ln.normalized_shape, ln.weight, ln.bias,
                                    ln.eps).permute(0, 3, 1, 2)
        else:
            norm = NormAffine.from_moments(attn.group_norm, src.moments)
            self.norms[attn.group_norm] = norm
            apply = norm.apply
        dst = self.store.allocate(h, w, c, self.np_dtype)
        moments = ChannelMoments.empty(c)

        def normed(block: np.ndarray) -> tuple[Tensor, Tensor]:
            x = self.to_torch(block)
            return x, apply(x).to(self.dtype)

        if h * w <= self.attention.max_tokens:
            x, hid = normed(src.act.read(0, h, 0, w)[0])
            if self.record_attention:
                self.attn_hidden[attn] = hid
            key, value = project_kv(attn, tokens(hid))
            band = max(1, self.tile * self.tile // w)
            for y0 in range(0, h, band):
                y1 = min(y0 + band, h)
                out = finish(attn, attend(attn, tokens(hid[:, :, y0:y1]), key, value, None), x[:, :, y0:y1])
                moments.add_tile(out)
                self.write(dst, y0, 0, out)
            return Stored(dst, moments)

        bank = self._cell_bank(attn, src, normed)
        p = int(bank.row_edges[1])
        qt, margin = self.attention.query_tiles(p)
        for y0, y1, x0, x1 in tiles(h, w, qt, align=p):
            wy0, wy1, wx0, wx1 = max(y0 - margin, 0), min(y1 + margin, h), max(x0 - margin, 0), min(x1 + margin, w)
            x, hid = normed(src.act.read(wy0, wy1, wx0, wx1)[0])
            key, value = project_kv(attn, tokens(hid))
            key, value = torch.cat([key[0], bank.key]), torch.cat([value[0], bank.value])
            bias = torch.cat([torch.zeros((wy1 - wy0) * (wx1 - wx0)), bank.bias(wy0, wy1, wx0, wx1)])
            qy, qx = y0 - wy0, x0 - wx0
            q = hid[:, :, qy : qy + y1 - y0, qx : qx + x1 - x0]
            out = attend(attn, tokens(q), key[None], value[None], bias)
            out = finish(attn, out, x[:, :, qy : qy + y1 - y0, qx : qx + x1 - x0])
            moments.add_tile(out)
            self.write(dst, y0, x0, out)
        return Stored(dst, moments)

    def _cell_bank(self, attn, src: Stored, normed) -> Bank:
        """Cell means of the normalised hidden states, accumulated tile by tile (cell-aligned)."""
        h, w, c = src.act.shape
        p = self.attention.cell(h, w)
        hc, wc = -(-h // p), -(-w // p)
        sums = torch.zeros(c, hc, wc, dtype=torch.float64)
        t = max(p, self.tile // p * p)
        for y0, y1, x0, x1 in tiles(h, w, t, align=p):
            _, hid = normed(src.act.read(y0, y1, x0, x1)[0])
            hid = hid.double().cpu()[0]
            ph, pw = -(-(y1 - y0) // p) * p, -(-(x1 - x0) // p) * p
            hid = F.pad(hid, (0, pw - (x1 - x0), 0, ph - (y1 - y0)))
            cells = hid.view(c, ph // p, p, pw // p, p).sum(dim=(2, 4))
            sums[:, y0 // p : y0 // p + ph // p, x0 // p : x0 // p + pw // p] = cells
        rows = torch.arange(0, hc + 1) * p
        cols = torch.arange(0, wc + 1) * p
        rows[-1], cols[-1] = h, w
        counts = torch.outer(rows[1:] - rows[:-1], cols[1:] - cols[:-1]).double()
        mean = (sums / counts).to(self.device, self.dtype).flatten(1).t()[None]
        key, value = project_kv(attn, mean)
        return Bank(key[0], value[0], rows, cols)

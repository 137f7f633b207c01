"""The canvas denoiser: whole canvas (x_t, t) → fused x0, tiles and memory inside.

Per call: the thumbnail pass (scene memory) when a mechanism needs it, the active tiles in
batches of equal window shape, fusion of their x0 with the plan's weights, low-frequency anchoring,
and the seam-risk bookkeeping. The canvas stays float32 on the host; only windows travel to the
device, so device memory depends on the tile and batch size, never on the image.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from engine.adapters.base import Conditioning, ModelAdapter
from engine.denoise import whole_frame
from engine.denoise.seam_risk import SeamRisk
from engine.denoise.shared import FrameShare, StepTiles, shareable
from engine.device import is_out_of_memory
from engine.layerwise.runner import storage_dtype
from engine.layerwise.unet import LayerwiseUNet
from engine.mechanisms import anchor as anchoring
from engine.mechanisms import thumbnail as thumbs
from engine.mechanisms.groupnorm import GroupNormMemory, StopForward
from engine.mechanisms.kv_bank import AttentionMemory
from engine.mechanisms.switches import Mechanisms
from engine.tiling.strategies import Strategy, snap
from engine.tiling.windows import Tile, Window, bounding_window, tile_weight, touches
from engine.types import Cancelled, Unit


@dataclass
class Counters:
    tiles: int = 0            # tiles evaluated per step (largest plan seen)
    model_calls: int = 0      # network evaluations (a guided batch counts twice)
    token_evals: int = 0      # model input positions evaluated (canvas px), halo, thumbnail and
                              # both guidance branches included
    retries: int = 0          # out-of-memory retries
    layerwise: bool = False   # the denoiser ran layerwise (whole canvas) rather than in tiles
    layerwise_storage: str | None = None   # and kept its host activations in this dtype
    layerwise_window: int | None = None    # canvas px: the frame did not fit, windows this big did
    seconds: dict = field(default_factory=dict)

    def add_seconds(self, phase: str, s: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + s


TileCallback = Callable[[int, int, int, Unit], None]   # (step, done, in the step, unit)
# (what the render shares once, the canvas, the step's work) -> x0 of every batch, in plan order
TileRunner = Callable[[FrameShare, np.ndarray, StepTiles], Sequence[np.ndarray | torch.Tensor]]


def evaluate_shared(adapter: ModelAdapter, share: FrameShare, canvas: np.ndarray,
                    work: StepTiles, indices: Sequence[int]) -> list[np.ndarray]:
    """x0 of batches `indices` of another process's step (float32 arrays), as that process would
    compute them: the same plan, the same batches, the same model call per batch."""
    with warnings.catch_warnings():    # an object-store array is read-only; it is only read
        warnings.simplefilter("ignore", UserWarning)
        x = torch.from_numpy(canvas)
    denoiser = CanvasDenoiser(adapter, share.cond, work.strategy, share.mechanisms, x,
                              active=share.active, batch_size=work.batch_size)
    with torch.inference_mode():
        out = denoiser.evaluate_batches(x, work.t, work.alpha_bar, work.step, indices)
    return [o.numpy() for o in out]


class CanvasDenoiser:
    def __init__(self, adapter: ModelAdapter, cond: Conditioning, strategy: Strategy,
                 mechanisms: Mechanisms, reference: torch.Tensor,
                 active: Optional[torch.Tensor] = None, batch_size: int = 4,
                 risk: Optional[SeamRisk] = None, on_tile: Optional[TileCallback] = None,
                 should_cancel: Optional[Callable[[], bool]] = None,
                 counters: Optional[Counters] = None, runner: Optional["TileRunner"] = None):
        self.adapter, self.cond, self.strategy = adapter, cond, strategy
        self.runner = runner                # evaluates a step's batches elsewhere (shared.py)
        self._share: Optional[FrameShare] = None
        self.mech = mechanisms if strategy.name == "memory" else Mechanisms(halo=False, anchor="off")
        self.reference = reference          # [1, C, H, W] float32 host: fallback x0, anchor
        self.active = active                # [H, W] bool host, or None for everything
        self.batch_size = max(1, batch_size)
        self.risk, self.on_tile, self.should_cancel = risk, on_tile, should_cancel
        self.counters = counters or Counters()
        self.gn: GroupNormMemory | None = None
        self.kv: AttentionMemory | None = None
        self.layerwise: LayerwiseUNet | None = None
        self.layerwise_windows = False     # layerwise per large window, fused like tiles
        self._step = 0                     # the scheduler step being denoised
        self._weights: dict[tuple, torch.Tensor] = {}

    # -- installing the memory on the model for the duration of a render -------------------
    def __enter__(self) -> "CanvasDenoiser":
        if self.mech.layerwise != "off":
            choice = whole_frame.choose(self.adapter, self.strategy, self.mech,
                                        self.reference.shape, self.active)
            if choice is not None:
                self.layerwise = choice.unet
                if choice.windows is not None:   # batches of one large window
                    self.strategy, self.batch_size = choice.windows, 1
                    self.layerwise_windows = True
        if self.layerwise:   # it gives every layer the whole canvas: the approximations step aside
            self.mech = replace(self.mech, groupnorm="off", kv_bank=False)
            self.layerwise.on_tile = self._check_cancel
            if self.on_tile and not self.layerwise_windows:   # windows report like tiles
                self.layerwise.on_op = self._on_operation
            self.counters.layerwise = True
            if self.layerwise_windows:
                self.counters.layerwise_window = self.strategy.tile
            self.counters.layerwise_storage = str(self.layerwise.storage or
                                                  storage_dtype(self.adapter.dtype))
        if self.mech.groupnorm != "off":
            self.gn = GroupNormMemory(self.adapter.denoiser).__enter__()
        if self.mech.kv_bank:
            self.kv = AttentionMemory(self.adapter.denoiser, self.mech.kv_pool).__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.gn:
            self.gn.__exit__(*exc)
        if self.kv:
            self.kv.__exit__(*exc)
        if self.layerwise:
            self.layerwise.close()
        self.gn = self.kv = self.layerwise = None

    # -- one call per scheduler step ------------------------------------------------------------
    def __call__(self, x: torch.Tensor, t: torch.Tensor, alpha_bar: float, step: int) -> torch.Tensor:
        while True:
            try:
                return self._denoise(x, t, alpha_bar, step)
            except Exception as error:  # noqa: BLE001 - only OOM is retried, the rest re-raised
                if not is_out_of_memory(error):
                    raise
                self._shrink(error)

    def _shrink(self, error: BaseException) -> None:
        """Halve the tile batch, then the tile size; give up below one grid cell. (Layerwise
        evaluation runs one tile at a time: only its tile can shrink.)"""
        self.counters.retries += 1
        if self.adapter.device.type == "cuda":
            torch.cuda.empty_cache()
        if self.batch_size > 1 and not self.layerwise:
            self.batch_size //= 2
            return
        if self.layerwise_windows:   # the windows are what fits RAM: shrink the compute tile
            smaller = snap(self.layerwise.tile // 2, self.strategy.grid)
            if smaller < max(self.strategy.grid, 16):
                raise error
            self.layerwise.tile = smaller
            return
        s = self.strategy
        smaller = snap(s.tile // 2, s.grid)
        if smaller < max(s.grid, 2 * s.halo, 16):
            raise error
        if self.layerwise:   # its compute tile is the strategy's
            self.layerwise.tile = smaller
        self.strategy = replace(s, tile=smaller, overlap=min(s.overlap, smaller - s.grid)
                                if s.name in ("multidiffusion", "mixture") else s.overlap)

    def _on_operation(self, done: int, operations: int) -> None:
        self.on_tile(self._step, done, operations, Unit.OPERATION)

    def _denoise(self, x: torch.Tensor, t: torch.Tensor, alpha_bar: float, step: int) -> torch.Tensor:
        self._step = step
        a = self.adapter
        _, c, h, w = x.shape
        t_dev = torch.as_tensor(t, device=a.device)
        started = time.perf_counter()
        thumb_x0, stride = None, 1
        if self.mech.needs_thumbnail:
            thumb_x0, stride = self._thumbnail(x, t_dev, alpha_bar)
        self.counters.add_seconds("thumbnail", time.perf_counter() - started)

        started = time.perf_counter()
        plan = [p for p in self.strategy.plan(h, w, step) if touches(p, self.active)]
        self.counters.tiles = max(self.counters.tiles, len(plan))
        if self.risk:
            self.risk.begin_step(c)
        if self.layerwise and not self.layerwise_windows:
            x0, covered = self._layerwise(x, t_dev, alpha_bar, plan)
        else:
            x0, covered = self._tiles(x, t_dev, alpha_bar, step, plan, stride)
        if self.mech.anchor != "off":
            ref = self.reference if self.mech.anchor == "input" else \
                thumbs.upsample(thumb_x0, stride, h, w)
            x0 = anchoring.anchor(x0, ref, self.mech.anchor_scale, self.mech.anchor_strength)
            x0 = torch.where(covered, x0, self.reference)
        if self.risk:
            self.risk.end_step(x0, thumb_x0, stride, a.downsample_factor)
        self.counters.add_seconds("tiles", time.perf_counter() - started)
        return x0

    def _tiles(self, x: torch.Tensor, t_dev: torch.Tensor, alpha_bar: float, step: int,
               plan: list[Tile], stride: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused x0 of the plan's windows, and where they covered the canvas.
        `stride`: the thumbnail's, for the key/value bank."""
        _, c, h, w = x.shape
        batches = self._batches(plan)
        if self.gn and self.mech.groupnorm == "thumbnail":
            self.gn.use_recorded()
        if self.gn and self.mech.groupnorm == "exact":
            self._pool_statistics(x, t_dev, alpha_bar, batches, h, w)
        if self.gn and self.mech.groupnorm == "previous":
            self.gn.pool_this_pass()
        if self.gn and self.mech.groupnorm == "iterate":
            self._iterate_statistics(x, t_dev, alpha_bar, self._batches(plan[::self.mech.gn_every]),
                                     h, w)
        if self.kv:
            self.kv.read(stride)

        shared = self._run_elsewhere(x, t_dev, alpha_bar, step, len(batches))
        num = torch.zeros_like(x)
        den = torch.zeros(1, 1, h, w, dtype=x.dtype)
        done = 0
        for i, batch in enumerate(batches):
            if shared is not None:
                out = shared[i]
                self._count_call(batch[0].shape, len(batch))
            else:
                if self.gn:
                    self.gn.core_masks = self._core_masks(batch)
                out = self._predict(x, t_dev, alpha_bar, batch, h, w)
            for tile, x0 in zip(batch, out):
                ys, xs = slice(tile.y.start, tile.y.stop), slice(tile.x.start, tile.x.stop)
                wt = self._weight(tile, h, w)
                num[0, :, ys, xs] += wt * x0
                den[0, 0, ys, xs] += wt
                if self.risk:
                    self.risk.add(x0, ys, xs)
            done += len(batch)
            if self.on_tile:
                self.on_tile(step, done, len(plan), Unit.TILE)
        if self.gn:
            if self.gn.pooling_this_pass:
                self.gn.finish_step()
            self.gn.own()
        if self.kv:
            self.kv.off()

        # Fused in num's own memory: at 150 MP every canvas-sized temporary is 1.8 GB.
        covered = den > 0
        x0 = num.div_(den.clamp_(min=1e-12))
        del den
        if not bool(covered.all()):
            x0 = torch.where(covered, x0, self.reference)
        return x0, covered

    def _layerwise(self, x: torch.Tensor, t_dev: torch.Tensor, alpha_bar: float,
                   plan: list[Tile]) -> tuple[torch.Tensor, torch.Tensor]:
        """x0 of the bounding box of the active windows, evaluated one layer at a time.

        The box, not the plan's windows, is what runs: statistics and attention are those of the
        box, as an untiled run on that crop would have them. Progress is reported per operation."""
        a = self.adapter
        _, _, h, w = x.shape
        covered = torch.zeros(1, 1, h, w, dtype=torch.bool)
        box = bounding_window(plan, h, w)
        if box is None:
            return self.reference.clone(), covered
        ys, xs = box.slices
        self._check_cancel()
        try:
            out = a.predict_x0_layerwise(x[:, :, ys, xs], t_dev, alpha_bar, box, self.cond,
                                         self.layerwise)
        finally:
            self.counters.model_calls += self.cond.evaluations
            self.counters.token_evals += box.h * box.w * self.cond.evaluations
        covered[..., ys, xs] = True
        if (box.h, box.w) == (h, w):
            x0 = out.float()
        else:
            x0 = self.reference.clone()
            x0[..., ys, xs] = out
        if self.risk:
            self.risk.add(x0[0, :, ys, xs], ys, xs)
        return x0, covered

    # -- a step's tiles evaluated elsewhere (engine.denoise.shared) -----------------------------
    def _run_elsewhere(self, x: torch.Tensor, t_dev: torch.Tensor, alpha_bar: float, step: int,
                       batches: int) -> Optional[Sequence[torch.Tensor]]:
        """The runner's x0 for every batch of this step, or None to evaluate them here."""
        if self.runner is None or self.layerwise_windows or \
                not shareable(self.mech, self.layerwise is not None):
            return None
        self._check_cancel()
        if self._share is None:
            self._share = FrameShare(self.cond, self.mech, self.active)
        work = StepTiles(step, t_dev.cpu(), alpha_bar, self.strategy, self.batch_size, batches)
        out = list(self.runner(self._share, x.numpy(), work))
        if len(out) != batches:
            raise RuntimeError(f"the tile runner returned {len(out)} batches, not {batches}")
        return [o if isinstance(o, torch.Tensor) else torch.from_numpy(np.array(o)) for o in out]

    def evaluate_batches(self, x: torch.Tensor, t: torch.Tensor, alpha_bar: float, step: int,
                         indices: Sequence[int]) -> list[torch.Tensor]:
        """x0 of the batches `indices` of `step`'s plan, as `_tiles` would compute them (another
        process evaluates its share of a step through this)."""
        _, _, h, w = x.shape
        plan = [p for p in self.strategy.plan(h, w, step) if touches(p, self.active)]
        batches = self._batches(plan)
        t_dev = torch.as_tensor(t, device=self.adapter.device)
        return [self._predict(x, t_dev, alpha_bar, batches[i], h, w) for i in indices]

    # -- pieces ---------------------------------------------------------------------------------
    def _thumbnail(self, x: torch.Tensor, t: torch.Tensor, alpha_bar: float):
        a = self.adapter
        h, w = x.shape[-2:]
        stride = thumbs.stride_for(h, w, a.native_size)
        xt = thumbs.subsample(x, stride, a.downsample_factor)
        th, tw = xt.shape[-2:]
        window = Window(0, 0, th, tw, th, tw, stride=stride)
        if self.gn and self.mech.groupnorm == "thumbnail":
            self.gn.record()
        elif self.gn:
            self.gn.own()
        if self.kv:
            self.kv.record(stride, (th, tw))
        self._check_cancel()
        out = a.predict_x0(xt.to(a.device, a.dtype), t, alpha_bar, [window], self.cond)
        self.counters.model_calls += self.cond.evaluations
        self.counters.token_evals += th * tw * self.cond.evaluations
        if self.gn:
            self.gn.own()
        if self.kv:
            self.kv.off()
        return out.float().cpu(), stride

    def _batches(self, plan: list[Tile]) -> list[list[Tile]]:
        by_shape: dict[tuple[int, int], list[Tile]] = {}
        for p in plan:
            by_shape.setdefault(p.shape, []).append(p)
        out = []
        for group in by_shape.values():
            for i in range(0, len(group), self.batch_size):
                out.append(group[i:i + self.batch_size])
        return out

    def _weight(self, tile: Tile, h: int, w: int) -> torch.Tensor:
        key = (tile, h, w)
        if key not in self._weights:
            if len(self._weights) > 256:
                self._weights.clear()
            self._weights[key] = tile_weight(tile, h, w).float()
        return self._weights[key]

    def _check_cancel(self) -> None:
        if self.should_cancel and self.should_cancel():
            raise Cancelled("render cancelled")

    def _predict(self, x: torch.Tensor, t: torch.Tensor, alpha_bar: float, batch: list[Tile],
                 h: int, w: int) -> torch.Tensor:
        self._check_cancel()
        a = self.adapter
        windows = [p.window(h, w) for p in batch]
        xb = torch.cat([x[:, :, p.y.start:p.y.stop, p.x.start:p.x.stop] for p in batch])
        if self.layerwise_windows:   # batches of one window
            try:
                return a.predict_x0_layerwise(xb, t, alpha_bar, windows[0], self.cond,
                                              self.layerwise).float()
            finally:
                self.counters.model_calls += self.cond.evaluations
                self.counters.token_evals += xb.shape[-2] * xb.shape[-1] * self.cond.evaluations
        if self.kv:
            self.kv.window(xb.shape[-2:])
        try:
            out = a.predict_x0(xb.to(a.device, a.dtype), t, alpha_bar, windows, self.cond)
        finally:  # a statistics pass stopped early still counts as a whole call
            self._count_call(xb.shape[-2:], xb.shape[0])
        return out.float().cpu()

    def _count_call(self, shape: tuple[int, int], windows: int) -> None:
        self.counters.model_calls += self.cond.evaluations
        self.counters.token_evals += windows * shape[0] * shape[1] * self.cond.evaluations

    def _core_masks(self, batch: list[Tile]) -> torch.Tensor:
        masks = []
        for p in batch:
            m = torch.zeros(1, 1, *p.shape)
            m[..., p.y.core_start - p.y.start:p.y.core_stop - p.y.start,
              p.x.core_start - p.x.start:p.x.core_stop - p.x.start] = 1
            masks.append(m)
        return torch.cat(masks)

    def _iterate_statistics(self, x, t, alpha_bar, batches, h, w) -> None:
        """Pooled statistics by fixed-point iteration: each extra pass over the tiles pools the
        statistics that the next pass (finally the fused one) normalises with. The extra passes
        may visit only every n-th tile (`gn_every`): statistics need a sample, not every pixel."""
        gn = self.gn
        gn.forget_pooled()
        for _ in range(self.mech.gn_passes - 1):
            gn.pool_this_pass()
            for batch in batches:
                gn.core_masks = self._core_masks(batch)
                self._predict(x, t, alpha_bar, batch, h, w)
            gn.finish_step()
        gn.pool_this_pass()

    def _pool_statistics(self, x, t, alpha_bar, batches, h, w) -> None:
        """Exact statistics: one barrier pass per GroupNorm layer over all tile cores."""
        gn = self.gn
        gn.start_barrier()
        while True:
            for batch in batches:
                gn.core_masks = self._core_masks(batch)
                try:
                    self._predict(x, t, alpha_bar, batch, h, w)
                except StopForward:
                    continue
                gn.pass_completed()
                break
            if not gn.finish_layer():
                break
        gn.use_pooled()

"""Whole-canvas GroupNorm statistics for a tiled denoiser.

Each GroupNorm normally normalises with the mean/variance of *its tile*, so a dark tile and a
bright tile are normalised differently. This provider swaps every GroupNorm's forward, for the
duration of a render, with one that can
- record statistics (thumbnail pass) and reuse them for every tile ("thumbnail"), or
- pool exact statistics over the cores of all tiles ("exact"): pixel-weighted means and a variance
  that includes the between-tile term (Σ x² / N − μ², not the mean of per-tile variances).
  Exact pooling needs a barrier per layer: the tiles run up to the first unpooled layer, its
  statistics are pooled, and the pass restarts. That costs (layers + 1) passes: it is the upper
  bound of what shared statistics can do, not a production setting;
- pool the same exact statistics during one step's tile passes and use them in the next step
  ("previous"): no extra passes and memory bounded by one [3, groups] sum per layer, at the price
  of statistics one step old (the first step normalises per tile);
- "iterate": the same pooling repeated within one step, each pass over the tiles normalising with
  the previous pass's pooled statistics (a fixed-point iteration toward "exact"; n passes cost
  n× the tile work, memory stays bounded).
"""
from __future__ import annotations

import math
from enum import Enum

import torch
import torch.nn.functional as F
from torch import nn


class StopForward(Exception):
    """Raised inside the model to end a statistics-gathering pass early."""


def _spatial(x: torch.Tensor, window_hw: tuple[int, int]) -> tuple[int, int]:
    """Spatial shape of a GroupNorm input, also for token-shaped [B, C, N] inputs."""
    if x.ndim == 4:
        return x.shape[-2], x.shape[-1]
    n = x.shape[-1]
    f = math.sqrt(window_hw[0] * window_hw[1] / n)
    return round(window_hw[0] / f), round(window_hw[1] / f)


def _normalise(m: nn.GroupNorm, x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    b, c = x.shape[:2]
    g = m.num_groups
    xf = x.float().reshape(b, g, c // g, -1)
    y = (xf - mean.view(1, g, 1, 1)) * torch.rsqrt(var.view(1, g, 1, 1) + m.eps)
    y = y.reshape(x.shape)
    if m.affine:
        shape = (1, c) + (1,) * (x.ndim - 2)
        y = y * m.weight.float().view(shape) + m.bias.float().view(shape)
    return y.to(x.dtype)


class Statistics(Enum):
    """What every GroupNorm normalises with during the next model calls."""
    OWN = "own"              # the window's own (plain GroupNorm)
    RECORD = "record"        # its own, recording them (the thumbnail pass)
    RECORDED = "recorded"    # the recorded ones
    BARRIER = "barrier"      # pooled where pooled; pool the first unpooled layer, then stop
    POOLED = "pooled"        # the pooled ones
    PREVIOUS = "previous"    # the pooled ones (if any) while pooling this pass's sums


class GroupNormMemory:
    """Installed on every GroupNorm of a model for a render (a context manager); the canvas
    denoiser says what the next calls normalise with by calling one of the methods below."""

    def __init__(self, module: nn.Module):
        self.norms = [m for m in module.modules() if isinstance(m, nn.GroupNorm)]
        self.mode = Statistics.OWN
        self.recorded: dict[nn.GroupNorm, tuple[torch.Tensor, torch.Tensor]] = {}
        self.pooled: dict[nn.GroupNorm, tuple[torch.Tensor, torch.Tensor]] = {}
        self.target: nn.GroupNorm | None = None
        self.running: dict[nn.GroupNorm, torch.Tensor] = {}   # "previous": sums of this step
        self.sums: torch.Tensor | None = None   # [3, G]: Σw, Σw·x, Σw·x² (float64)
        self.core_masks: torch.Tensor | None = None  # [B, 1, H, W] at window resolution
        self.active = False

    def __enter__(self) -> "GroupNormMemory":
        for m in self.norms:
            m.forward = self._make_forward(m)
        self.active = True
        return self

    def __exit__(self, *exc) -> None:
        for m in self.norms:
            if "forward" in m.__dict__:
                del m.forward
        self.active = False

    def _make_forward(self, m: nn.GroupNorm):
        def forward(x: torch.Tensor) -> torch.Tensor:
            return self._forward(m, x)
        return forward

    # -- what the next calls normalise with ----------------------------------------------------
    def own(self) -> None:
        self.mode = Statistics.OWN

    def record(self) -> None:
        self.mode = Statistics.RECORD

    def use_recorded(self) -> None:
        self.mode = Statistics.RECORDED

    def use_pooled(self) -> None:
        self.mode = Statistics.POOLED

    def pool_this_pass(self) -> None:
        """Normalise with the pooled statistics while pooling this pass's; `finish_step` makes
        them the next pass's."""
        self.mode, self.running = Statistics.PREVIOUS, {}

    def forget_pooled(self) -> None:
        self.pooled = {}

    @property
    def pooling_this_pass(self) -> bool:
        return self.mode == Statistics.PREVIOUS

    def pass_completed(self) -> None:
        """A barrier pass went through every layer: all of them are pooled."""
        self.target = None

    # -- the forward installed on every GroupNorm -----------------------------------------------
    def _forward(self, m: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
        if self.mode == Statistics.RECORD:
            xf = x.float().reshape(x.shape[0], m.num_groups, -1)
            self.recorded[m] = (xf.mean(dim=(0, 2)), xf.var(dim=(0, 2), unbiased=False))
            return F.group_norm(x, m.num_groups, m.weight, m.bias, m.eps)
        if self.mode == Statistics.RECORDED and m in self.recorded:
            return _normalise(m, x, *self.recorded[m])
        if self.mode == Statistics.BARRIER:
            if m in self.pooled:
                return _normalise(m, x, *self.pooled[m])
            if self.target is None:
                self.target = m
            if self.target is m:
                self._accumulate(m, x)
            raise StopForward
        if self.mode == Statistics.POOLED and m in self.pooled:
            return _normalise(m, x, *self.pooled[m])
        if self.mode == Statistics.PREVIOUS:
            self.running[m] = self._sums(m, x) + self.running.get(m, 0)
            if m in self.pooled:
                return _normalise(m, x, *self.pooled[m])
        return F.group_norm(x, m.num_groups, m.weight, m.bias, m.eps)

    def _accumulate(self, m: nn.GroupNorm, x: torch.Tensor) -> None:
        step = self._sums(m, x)
        self.sums = step if self.sums is None else self.sums + step

    def _sums(self, m: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
        """[3, G] float64: Σw, Σw·x, Σw·x² over the cores of this batch."""
        masks = self.core_masks
        hw = _spatial(x, masks.shape[-2:])
        factor = masks.shape[-2] // hw[0]
        w = F.avg_pool2d(masks, factor) if factor > 1 else masks   # [B, 1, h, w]
        b, c = x.shape[:2]
        g = m.num_groups
        xf = x.double().reshape(b, g, c // g, hw[0] * hw[1])
        wf = w.double().reshape(b, 1, 1, hw[0] * hw[1]).to(xf.device)
        s0 = (wf.expand_as(xf)).sum(dim=(0, 2, 3))
        s1 = (wf * xf).sum(dim=(0, 2, 3))
        s2 = (wf * xf * xf).sum(dim=(0, 2, 3))
        return torch.stack([s0, s1, s2]).cpu()

    def start_barrier(self) -> None:
        self.pooled = {}
        self.mode = Statistics.BARRIER

    def finish_step(self) -> None:
        """"previous" mode: this step's pooled sums become the next step's statistics."""
        pooled = {}
        for m, (s0, s1, s2) in self.running.items():
            mean = s1 / s0
            var = (s2 / s0 - mean * mean).clamp_min(0)
            dev = m.weight.device if m.affine else "cpu"
            pooled[m] = (mean.float().to(dev), var.float().to(dev))
        self.pooled, self.running = pooled, {}

    def finish_layer(self) -> bool:
        """Pool the pending layer's sums. False when no layer was pending (all pooled)."""
        if self.target is None:
            return False
        s0, s1, s2 = self.sums
        mean = s1 / s0
        var = (s2 / s0 - mean * mean).clamp_min(0)
        dev = self.target.weight.device if self.target.affine else "cpu"
        self.pooled[self.target] = (mean.float().to(dev), var.float().to(dev))
        self.target, self.sums = None, None
        return True

"""Whole-image GroupNorm statistics, pooled exactly over tiles.

A tiled VAE that normalises each tile with its own mean and variance shifts tone tile by tile.
Here every tile contributes (count, mean, M2) per channel, computed in float32 from its *core*
pixels only (each image pixel belongs to exactly one core, so halo pixels are never counted
twice), and the tiles are merged with Chan's parallel formula in float64. The merge carries the
between-tile term delta² n_a n_b / n, which simply summing per-tile variances would drop.
Channel moments are kept rather than group moments so that any grouping can be derived later.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class ChannelMoments:
    """Running per-channel (count, mean, M2) of one activation, merged tile by tile."""

    count: float
    mean: Tensor  # (C,) float64
    m2: Tensor  # (C,) float64

    @classmethod
    def empty(cls, channels: int) -> "ChannelMoments":
        z = torch.zeros(channels, dtype=torch.float64)
        return cls(0.0, z.clone(), z.clone())

    @staticmethod
    def of_tile(x: Tensor) -> "ChannelMoments":
        """Moments of a (C, H, W) or (1, C, H, W) tile, two-pass in float32 so fp16 cannot overflow."""
        x = x.reshape(x.shape[-3], -1).float()
        n = x.shape[1]
        mean = x.mean(dim=1)
        m2 = (x - mean[:, None]).square().sum(dim=1)
        return ChannelMoments(float(n), mean.double().cpu(), m2.double().cpu())

    def merge(self, other: "ChannelMoments") -> None:
        """Chan et al.: combine two disjoint pixel sets, including the between-set variance term."""
        if other.count == 0:
            return
        if self.count == 0:
            self.count, self.mean, self.m2 = other.count, other.mean.clone(), other.m2.clone()
            return
        n = self.count + other.count
        delta = other.mean - self.mean
        self.mean = self.mean + delta * (other.count / n)
        self.m2 = self.m2 + other.m2 + delta.square() * (self.count * other.count / n)
        self.count = n

    @staticmethod
    def concat(parts: list["ChannelMoments"]) -> "ChannelMoments":
        """Moments of activations concatenated on channels (same pixels, so the same count)."""
        if len(parts) == 1:
            return parts[0]
        if len({p.count for p in parts}) != 1:
            raise ValueError("concatenated activations must cover the same pixels")
        return ChannelMoments(parts[0].count, torch.cat([p.mean for p in parts]), torch.cat([p.m2 for p in parts]))

    def add_tile(self, x: Tensor) -> None:
        self.merge(ChannelMoments.of_tile(x))

    def group_stats(self, groups: int) -> tuple[Tensor, Tensor]:
        """Per-group (mean, biased variance), float64, as GroupNorm defines them."""
        c = self.mean.numel()
        if self.count == 0 or c % groups:
            raise ValueError(f"cannot form {groups} groups from {c} channels with {self.count} pixels")
        mean_c = self.mean.view(groups, -1)
        m2_c = self.m2.view(groups, -1)
        gmean = mean_c.mean(dim=1)
        # Channels in a group have equal counts: merge them with the same between-set term.
        gm2 = m2_c.sum(dim=1) + (mean_c - gmean[:, None]).square().sum(dim=1) * self.count
        gvar = gm2 / (self.count * mean_c.shape[1])
        return gmean, gvar


@dataclass(frozen=True)
class NormAffine:
    """A GroupNorm folded with fixed statistics into a per-channel y = x * scale + shift."""

    scale: Tensor  # (C,) float32
    shift: Tensor  # (C,) float32

    @classmethod
    def from_stats(cls, norm: torch.nn.GroupNorm, mean: Tensor, var: Tensor) -> "NormAffine":
        groups = norm.num_groups
        per = norm.num_channels // groups
        inv = (var + norm.eps).rsqrt()
        scale = inv.repeat_interleave(per)
        shift = -(mean * inv).repeat_interleave(per)
        if norm.affine:
            w = norm.weight.detach().double().cpu()
            b = norm.bias.detach().double().cpu()
            scale, shift = scale * w, shift * w + b
        return cls(scale.float(), shift.float())

    @classmethod
    def from_moments(cls, norm: torch.nn.GroupNorm, moments: ChannelMoments) -> "NormAffine":
        return cls.from_stats(norm, *moments.group_stats(norm.num_groups))

    def apply(self, x: Tensor) -> Tensor:
        """Normalise an NCHW tile in float32 (fp16 inputs are upcast), return float32."""
        s = self.scale.to(x.device).view(1, -1, 1, 1)
        t = self.shift.to(x.device).view(1, -1, 1, 1)
        return torch.addcmul(t, x.float(), s)

"""Seam-risk map: where the model was unsure across tile borders.

Per step, the disagreement of the x0 predictions of every window covering a pixel (the standard
deviation of their channel mean: two single-channel sums per pixel keep host RAM low), plus half the disagreement of the fused x0 with the thumbnail's x0
at the thumbnail's scale. Averaged over steps and mapped to 0..1 by 1 − exp(−r / SCALE): a spread
of SCALE (in [-1, 1] canvas units) reads as 0.63.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.mechanisms import thumbnail as thumbs

SCALE = 0.05


class SeamRisk:
    def __init__(self, canvas_h: int, canvas_w: int):
        self.total = torch.zeros(canvas_h, canvas_w)
        self.steps = 0
        self._s1 = self._s2 = self._n = None

    def begin_step(self, channels: int) -> None:
        h, w = self.total.shape
        self._s1 = torch.zeros(h, w)
        self._s2 = torch.zeros(h, w)
        self._n = torch.zeros(h, w)

    def add(self, x0: torch.Tensor, ys: slice, xs: slice) -> None:
        """x0: [C, h, w] prediction of one window."""
        m = x0.mean(0)
        self._s1[ys, xs] += m
        self._s2[ys, xs] += m * m
        self._n[ys, xs] += 1

    def end_step(self, fused: torch.Tensor, thumb_x0: torch.Tensor | None, stride: int,
                 grid: int) -> None:
        # In the sums' own memory: no canvas-sized temporaries beyond one boolean map.
        several = self._n > 1
        n = self._n.clamp_(min=1)
        mean = self._s1.div_(n)
        risk = self._s2.div_(n).addcmul_(mean, mean, value=-1).clamp_(min=0).sqrt_().mul_(several)
        del several, n, mean
        if thumb_x0 is not None:
            h, w = self.total.shape
            down = thumbs.area_down(fused, stride, grid)[..., :thumb_x0.shape[-2], :thumb_x0.shape[-1]]
            diff = (down - thumb_x0).abs().mean(1, keepdim=True)
            risk.add_(thumbs.upsample(diff, stride, h, w)[0, 0], alpha=0.5)
        self.total += risk
        self.steps += 1
        self._s1 = self._s2 = self._n = None

    def map(self, out_h: int, out_w: int) -> torch.Tensor:
        """[out_h, out_w] float32 in 0..1 at output resolution."""
        m = self.total.mul(-1.0 / (SCALE * max(1, self.steps))).exp_().neg_().add_(1)
        if m.shape != (out_h, out_w):
            m = F.interpolate(m[None, None], size=(out_h, out_w), mode="bilinear",
                              align_corners=False)[0, 0]
        return m.clamp(0, 1).float()

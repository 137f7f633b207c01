"""Live previews of a render: a small RGB picture of the current x0, cheap enough to make while
the sampler runs.

The sampler's fused x0 is the whole canvas (at 150 MP, 1.8 GB for a pixel model). A preview
reads only a strided subset of it, at most PREVIEW_SIDE canvas samples along the long side, and
at most once per `min_interval_s`; nothing is decoded at full size. Latent models (SD, SDXL) get
a linear latent-to-RGB approximation, fitted once per model from its own encoder on a small
calibration picture: no constants copied per model, and nothing runs through the decoder.
"""
from __future__ import annotations

import math
import threading
import time
import weakref
from typing import Callable, Optional

import numpy as np
import torch

PREVIEW_SIDE = 512           # output pixels along the preview's long side, at most
MIN_INTERVAL_S = 1.0         # one preview per second, at most
_CALIBRATION_SIDE = 16       # canvas samples per side of the calibration picture

# id(adapter) -> (a weak reference to it, its fit); adapters need not be hashable
_fits: dict[int, tuple[weakref.ref, Optional[tuple[torch.Tensor, torch.Tensor]]]] = {}
_fits_lock = threading.Lock()


def _calibration_image(side: int) -> torch.Tensor:
    """A [-1, 1] picture with every hue, light and dark, in smooth patches: what a linear fit from
    latents to colour needs to see."""
    y, x = torch.meshgrid(torch.linspace(0, 1, side), torch.linspace(0, 1, side), indexing="ij")
    hue = x * 2 * math.pi
    light = 0.15 + 0.7 * y
    sat = 0.5 + 0.5 * torch.cos(3 * math.pi * (x + y))
    rgb = torch.stack([light + sat * 0.35 * torch.cos(hue + k * 2 * math.pi / 3) for k in range(3)])
    return rgb.clamp(0, 1).mul(2).sub(1)[None]


def latent_to_rgb_fit(adapter) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
    """(weight C×3, bias 3) such that latent·weight + bias ≈ the [-1, 1] colour of the pixels the
    latent stands for; fitted once per adapter by least squares on its own encoder. None when the
    adapter cannot encode the calibration picture."""
    with _fits_lock:
        known = _fits.get(id(adapter))
        if known is not None and known[0]() is adapter:
            return known[1]
        scale = adapter.vae_scale
        grid = max(1, getattr(adapter, "downsample_factor", 1))   # canvas sizes are multiples
        side = math.ceil(_CALIBRATION_SIDE / grid) * grid * scale  # 128 px for SD: one small encode
        image = _calibration_image(side)
        try:
            with torch.inference_mode():
                latent = adapter.encode(image.to(adapter.device, adapter.dtype)).float().cpu()
        except (OSError, RuntimeError, ValueError):
            _remember(adapter, None)
            return None
        target = torch.nn.functional.avg_pool2d(image, scale)            # 1×3×h×w
        lat = latent[0].reshape(latent.shape[1], -1).T                    # n×C
        design = torch.cat([lat, torch.ones(lat.shape[0], 1)], dim=1)     # n×(C+1)
        solution = torch.linalg.lstsq(design.double(), target[0].reshape(3, -1).T.double()).solution
        fit = (solution[:-1].float(), solution[-1].float())
        _remember(adapter, fit)
        return fit


def _remember(adapter, fit) -> None:
    """Keep `fit` for as long as `adapter` lives (called with the lock held)."""
    key = id(adapter)
    _fits[key] = (weakref.ref(adapter, lambda _: _fits.pop(key, None)), fit)


def small_rgb(x0: torch.Tensor, adapter, out_hw: tuple[int, int],
              max_side: int = PREVIEW_SIDE) -> Optional[np.ndarray]:
    """An H×W×3 uint8 picture of the canvas `x0` (1×C×h×w), long side ≤ max_side output pixels,
    cropped to the output's `out_hw` (the canvas is padded to the model's grid)."""
    scale = adapter.vae_scale
    oh, ow = out_hw
    ch, cw = math.ceil(oh / scale), math.ceil(ow / scale)
    stride = max(1, math.ceil(max(ch, cw) * scale / max_side))
    picked = x0[0, :, :ch:stride, :cw:stride].float()                    # C×h'×w', a few samples
    if scale == 1:
        rgb = picked[:3]
    else:
        fit = latent_to_rgb_fit(adapter)
        if fit is None:
            return None
        weight, bias = fit
        rgb = torch.einsum("chw,cd->dhw", picked.cpu(), weight) + bias[:, None, None]
        # each latent sample stands for scale×scale pixels: enlarge while the preview stays small
        grow = max(1, min(scale, max_side // max(rgb.shape[1:])))
        if grow > 1:
            rgb = torch.nn.functional.interpolate(rgb[None], scale_factor=grow, mode="bilinear",
                                                  align_corners=False)[0]
    return (rgb.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
            .permute(1, 2, 0).contiguous().cpu().numpy())


class PreviewTap:
    """Receives the sampler's x0 after each step and keeps a small preview of the latest one.

    `update(x0)` makes a new preview at most once per `min_interval_s` (the clock is injectable
    for tests); `latest()` returns it, for api.Progress.preview. The first update always counts.
    """

    def __init__(self, adapter, out_hw: tuple[int, int], *, max_side: int = PREVIEW_SIDE,
                 min_interval_s: Optional[float] = None,
                 clock: Callable[[], float] = time.monotonic):
        self.adapter = adapter
        self.out_hw = out_hw
        self.max_side = max_side
        self.min_interval_s = MIN_INTERVAL_S if min_interval_s is None else min_interval_s
        self.clock = clock
        self._made_at: Optional[float] = None
        self._latest: Optional[np.ndarray] = None
        self.made = 0

    def update(self, x0: torch.Tensor) -> None:
        now = self.clock()
        if self._made_at is not None and now - self._made_at < self.min_interval_s:
            return
        self._made_at = now
        picture = small_rgb(x0, self.adapter, self.out_hw, self.max_side)
        if picture is not None:
            self._latest = picture
            self.made += 1

    def latest(self) -> Optional[np.ndarray]:
        return self._latest

    def wrap(self, denoise: Callable) -> Callable:
        """The sampler's denoise function, reporting each step's x0 to this tap."""
        def tapped(*args, **kwargs):
            x0 = denoise(*args, **kwargs)
            self.update(x0)
            return x0
        return tapped

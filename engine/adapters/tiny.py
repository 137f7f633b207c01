"""Adapter for the bundled pixel-space model (engine.models.tiny): canvas = pixels.

The model sees concat(x_t, cond) where cond is the input photo at output size, so each window
gets the matching crop of the photo; the thumbnail window gets the photo averaged down by the
thumbnail stride (a clean image may be averaged; only the noisy canvas must be subsampled).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from engine.adapters.base import Conditioning, Window, x0_from_prediction
from engine.mechanisms import thumbnail as thumbs
from engine.models.tiny import ResidualToCondition
from engine.restoration.consistency import finishing_by_scale
from engine.types import EngineError, RenderParams


class TinyAdapter:
    space = "pixel"
    canvas_channels = 3
    vae_scale = 1
    # Measured on the trained weights (BENCHMARKS.md, Fidelity): the model was trained on 96 px
    # crops, and on whole held-out photographs tiles restore better than the whole frame at once
    # (layerwise, = the untiled model): +1.99 vs +0.90 dB over the damaged input, +0.24 vs -1.86 dB
    # over bicubic at x2. So tiles with the halo alone (the approximate statistics and the bank
    # did not pay either); layerwise stays a switch, seamless but less faithful for this model.
    default_mechanisms: dict = {"layerwise": "off"}
    # The colour space the model was trained in (engine.colour): the training photographs are
    # sRGB; a retrained model says otherwise in its JSON's meta.colour_space.
    colour_space: str = "sRGB IEC61966-2.1"

    def __init__(self, unet: nn.Module, scheduler_config: dict, native_size: int,
                 downsample_factor: int, device: torch.device, dtype: torch.dtype,
                 default_tile: int | None = None, colour_space: str | None = None,
                 finishing: dict | None = None):
        p = next(unet.parameters())
        if p.device != torch.device(device) or p.dtype != dtype:
            unet = unet.to(device=device, dtype=dtype)
        self.denoiser = unet.eval().requires_grad_(False)
        self.scheduler_config = dict(scheduler_config)
        self.prediction_type = self.scheduler_config.get("prediction_type", "epsilon")
        self.native_size = native_size
        self.downsample_factor = downsample_factor
        self.default_tile = default_tile or 2 * native_size
        self.device, self.dtype = torch.device(device), dtype
        if colour_space:
            self.colour_space = colour_space
        # {scale: Finishing}: how engine.render holds the decoded frame to the input
        self.finishing = dict(finishing or {})

    @classmethod
    def load(cls, device: torch.device, dtype: torch.dtype, weights=None) -> "TinyAdapter":
        from engine.models.tiny import ModelMissing, load_tiny
        try:
            m = load_tiny(device=device, dtype=dtype, weights=weights)
        except ModelMissing as e:
            raise EngineError(str(e)) from e
        return cls(m.unet, m.scheduler_config, m.native_size, m.downsample_factor, device, dtype,
                   colour_space=m.meta.get("colour_space"),
                   finishing=finishing_by_scale(m.meta.get("recommended", {})))

    @classmethod
    def from_config(cls, device: torch.device, dtype: torch.dtype, unet_config: dict | None = None,
                    scheduler_config: dict | None = None, seed: int = 0) -> "TinyAdapter":
        """Random-weight model of the bundled architecture (tests, benchmarks of coherence)."""
        from engine.models.tiny import DEFAULT_SCHEDULER_CONFIG, DEFAULT_UNET_CONFIG, build_unet
        cfg = dict(unet_config or DEFAULT_UNET_CONFIG)
        torch.manual_seed(seed)
        unet = build_unet(cfg)
        return cls(unet, scheduler_config or DEFAULT_SCHEDULER_CONFIG, int(cfg.get("sample_size", 128)),
                   2 ** (len(cfg["block_out_channels"]) - 1), device, dtype)

    def conditioning(self, params: RenderParams, source: torch.Tensor) -> Conditioning:
        return Conditioning(source=source, extra={"thumbs": {}})

    def _cond_crop(self, cond: Conditioning, w: Window) -> torch.Tensor:
        if w.stride == 1:
            src = cond.source
        else:
            cache = cond.extra.setdefault("thumbs", {})
            if w.stride not in cache:
                cache[w.stride] = thumbs.area_down(cond.source, w.stride, self.downsample_factor)
            src = cache[w.stride]
        return src[:, :, w.y:w.y + w.h, w.x:w.x + w.w]

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, alpha_bar: float,
                   windows: list[Window], cond: Conditioning) -> torch.Tensor:
        c = torch.cat([self._cond_crop(cond, w) for w in windows]).to(x_t.device, x_t.dtype)
        tt = torch.as_tensor(t, device=x_t.device).float().expand(x_t.shape[0])
        out = self.denoiser(torch.cat([x_t, c], 1), tt).sample
        return x0_from_prediction(out, x_t, alpha_bar, self.prediction_type)

    def layerwise_unet(self) -> nn.Module:
        """The UNet2DModel that layerwise evaluation unrolls (inside the residual wrapper)."""
        return self.denoiser.unet if isinstance(self.denoiser, ResidualToCondition) else self.denoiser

    def predict_x0_layerwise(self, x_t: torch.Tensor, t: torch.Tensor, alpha_bar: float,
                             window: Window, cond: Conditioning,
                             run: Callable[[np.ndarray, torch.Tensor], np.ndarray]) -> torch.Tensor:
        """x0 of one (large) window through `run`, a layerwise evaluation of `layerwise_unet()`.

        x_t: [1, C, h, w] float32 on the host. The model input is assembled straight into the
        height × width × channels layout the layerwise runner stores, without a concatenated copy.
        """
        c = self._cond_crop(cond, window)
        _, ch, h, w = x_t.shape
        sample = np.empty((h, w, 2 * ch), np.float32)
        sample[..., :ch] = x_t[0].permute(1, 2, 0).numpy()
        sample[..., ch:] = c[0].permute(1, 2, 0).numpy()
        out = torch.from_numpy(run(sample, t)).permute(2, 0, 1)[None].float()
        del sample
        if isinstance(self.denoiser, ResidualToCondition):   # x0 = cond + net
            out = out.add_(c)
        return x0_from_prediction(out, x_t, alpha_bar, self.prediction_type)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return image

    def decode(self, canvas: torch.Tensor) -> torch.Tensor:
        return canvas

    def check_room(self, height: int, width: int) -> None:
        """Nothing to check: a pixel model has no VAE, and layerwise evaluation checks its own."""

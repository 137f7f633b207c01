"""Small random-weight models for coherence measurements and tests (no downloads).

`LatentUNetAdapter` runs a diffusers UNet2DConditionModel of SD's layout (4 levels, total
downsampling 8, cross-attention to a fixed dummy text embedding) directly on a latent canvas:
no VAE, so tiled and untiled runs are compared latent to latent, as in the feasibility study.
"""
from __future__ import annotations

import numpy as np
import torch

from engine.adapters.base import Conditioning, Window, x0_from_prediction
from engine.api import RenderParams

SMALL_SD_UNET = dict(
    sample_size=32, in_channels=4, out_channels=4, layers_per_block=1,
    block_out_channels=(32, 32, 64, 64),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                      "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8,
)
SD_SCHEDULER = dict(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                    beta_end=0.012, prediction_type="epsilon")


class LatentUNetAdapter:
    space = "latent"
    canvas_channels = 4
    vae_scale = 1   # the canvas is compared directly; no decoder in the loop

    def __init__(self, config: dict | None = None, seed: int = 0, native_size: int = 32,
                 default_tile: int = 64, device: str = "cpu", dtype=torch.float32):
        from diffusers import UNet2DConditionModel
        cfg = dict(config or SMALL_SD_UNET)
        torch.manual_seed(seed)
        self.denoiser = UNet2DConditionModel(**cfg).to(device, dtype).eval().requires_grad_(False)
        g = torch.Generator().manual_seed(seed + 1)
        self.text = torch.randn(1, 4, cfg["cross_attention_dim"], generator=g).to(device, dtype)
        self.downsample_factor = 2 ** (len(cfg["block_out_channels"]) - 1)
        self.native_size, self.default_tile = native_size, default_tile
        self.scheduler_config = dict(SD_SCHEDULER)
        self.device, self.dtype = torch.device(device), dtype

    def conditioning(self, params: RenderParams, source: torch.Tensor) -> Conditioning:
        return Conditioning(source=source)

    def predict_x0(self, x_t, t, alpha_bar, windows: list[Window], cond: Conditioning):
        tt = torch.as_tensor(t, device=x_t.device).float().expand(x_t.shape[0])
        eps = self.denoiser(x_t, tt, encoder_hidden_states=self.text.expand(x_t.shape[0], -1, -1)).sample
        return x0_from_prediction(eps, x_t, alpha_bar, "epsilon")

    def layerwise_unet(self) -> torch.nn.Module:
        return self.denoiser

    def predict_x0_layerwise(self, x_t, t, alpha_bar, window: Window, cond: Conditioning, run):
        sample = np.ascontiguousarray(x_t[0].permute(1, 2, 0).numpy())
        eps = torch.from_numpy(run(sample, torch.as_tensor(t).float(), self.text)).permute(2, 0, 1)[None]
        return x0_from_prediction(eps, x_t, alpha_bar, "epsilon")

    def encode(self, image):
        return image

    def decode(self, canvas):
        return canvas

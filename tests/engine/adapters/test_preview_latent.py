"""Live previews of a real (random-weight) Stable Diffusion adapter: the linear map is fitted from
its own VAE encoder, and a preview of a latent canvas is small and the right size."""
from __future__ import annotations

import numpy as np

from engine.adapters.loading import load
from engine.preview import PREVIEW_SIDE, PreviewTap, latent_to_rgb_fit


def test_sd_latents_get_a_preview_through_the_fitted_map(sd_folder):
    adapter = load(str(sd_folder))
    fit = latent_to_rgb_fit(adapter)
    assert fit is not None
    weight, bias = fit
    assert weight.shape == (adapter.unet.config.in_channels, 3) and bias.shape == (3,)
    oh, ow = 96, 160
    latent = np.random.default_rng(0).normal(size=(1, weight.shape[0], oh // adapter.vae_scale,
                                                   ow // adapter.vae_scale)).astype(np.float32)
    import torch
    tap = PreviewTap(adapter, (oh, ow))
    tap.update(torch.from_numpy(latent))
    picture = tap.latest()
    assert picture.dtype == np.uint8 and picture.shape[2] == 3
    assert max(picture.shape[:2]) <= PREVIEW_SIDE
    assert picture.shape[:2] == (oh, ow)   # each latent sample stands for vae_scale² pixels

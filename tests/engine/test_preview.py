"""Live previews of the real engine: small, cheap, at most about one per second, and a fair
picture of the render, for pixel models and (through a fitted linear map) latent ones."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine import api
from engine.preview import PREVIEW_SIDE, PreviewTap, latent_to_rgb_fit, small_rgb


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _PixelAdapter:
    vae_scale = 1
    downsample_factor = 1
    device = torch.device("cpu")
    dtype = torch.float32


class _LatentAdapter:
    """A latent model whose encoder is linear: 8×8 average, then a fixed 3→4 mix with an offset,
    like an SD VAE seen from far away."""
    vae_scale = 8
    downsample_factor = 1
    device = torch.device("cpu")
    dtype = torch.float32
    mix = torch.tensor([[0.9, -0.2, 0.1, 0.3], [0.1, 0.8, -0.4, 0.2], [-0.3, 0.2, 0.7, 0.5]])
    offset = torch.tensor([0.1, -0.05, 0.2, 0.0])

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        rgb = F.avg_pool2d(image, 8)
        return torch.einsum("nchw,cd->ndhw", rgb, self.mix) + self.offset[None, :, None, None]


def test_at_most_one_preview_per_interval_and_the_first_always():
    clock = _Clock()
    tap = PreviewTap(_PixelAdapter(), (40, 60), clock=clock)
    x0 = torch.zeros(1, 3, 40, 60)
    for t in (0.0, 0.4, 0.99, 1.2, 1.9, 2.3):
        clock.now = t
        tap.update(x0)
    assert tap.made == 3                       # at 0, 1.2 and 2.3 s
    assert tap.latest().shape == (40, 60, 3) and tap.latest().dtype == np.uint8


def test_preview_of_a_150_mp_canvas_reads_a_few_samples_only():
    """No full-size work: a 150 MP pixel canvas (an expanded view: no memory behind it) gives a
    preview of at most PREVIEW_SIDE on its long side in well under a second."""
    canvas = torch.zeros(1, 3, 1, 1).expand(1, 3, 10000, 15000)
    started = time.perf_counter()
    picture = small_rgb(canvas, _PixelAdapter(), (10000, 15000))
    assert time.perf_counter() - started < 0.5
    assert max(picture.shape[:2]) <= PREVIEW_SIDE and picture.shape[2] == 3


def test_latent_preview_is_a_fitted_linear_map_of_the_latent():
    adapter = _LatentAdapter()
    fit = latent_to_rgb_fit(adapter)
    assert fit is not None and fit[0].shape == (4, 3)
    y, x = torch.meshgrid(torch.linspace(-1, 1, 256), torch.linspace(-1, 1, 320), indexing="ij")
    image = torch.stack([x * 0.8, y * 0.6, (x * y) * 0.9])[None]
    picture = small_rgb(adapter.encode(image), adapter, (256, 320))
    assert max(picture.shape[:2]) <= PREVIEW_SIDE
    expected = F.interpolate(F.avg_pool2d(image, 8), size=picture.shape[:2], mode="bilinear",
                             align_corners=False)[0].permute(1, 2, 0).add(1).mul(127.5).numpy()
    assert np.abs(picture.astype(np.float32) - expected).mean() < 3.0


@pytest.mark.timeout(300)
def test_the_bundled_model_reports_previews_of_its_render(monkeypatch):
    import engine.preview
    monkeypatch.setattr(engine.preview, "MIN_INTERVAL_S", 0.0)  # every step, for this short render
    rng = np.random.default_rng(2)
    image = (np.clip(rng.normal(0.5, 0.15, (96, 128, 3)), 0, 1) * 255).astype(np.uint8)
    previews = []  # built when reported, as the server does
    result = api.render(image, api.RenderParams(steps=2, strength=0.3, seed=1),
                        progress=lambda p: p.preview is not None and previews.append(p.preview()))
    assert previews, "no progress event carried a preview"
    first, picture = previews[0], previews[-1]
    # the first is the photo as it came in; the last, the x0 of the last step, is the result
    assert np.abs(first.astype(int) - image.astype(int)).mean() < 1
    assert picture.dtype == np.uint8 and picture.shape == (96, 128, 3)
    assert np.abs(picture.astype(int) - result.image.astype(int)).mean() < 12

"""The finishing that holds a render to its input: Pillow's Lanczos shrink reproduced, the
back-projection reaching the input, the texture and tone gains, and the render applying them."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from engine.render import render
from engine.restoration.consistency import (Finishing, finish, finishing_by_scale, keep_texture,
                                            lanczos_down, project_to_input)
from engine.types import RenderParams


def unit(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)[None].contiguous()


def pil_down(a: np.ndarray, s: int) -> np.ndarray:
    return np.asarray(Image.fromarray(a).resize((a.shape[1] // s, a.shape[0] // s), Image.LANCZOS))


@pytest.mark.parametrize("s", [2, 4])
def test_lanczos_down_is_pillows(photo, s):
    # Pillow stores its first (horizontal) pass as 0..255 integers: with the photo's range kept
    # off the ends no ringing is clipped there, and only its rounding is left
    img = (40 + photo.astype(np.float64) * 0.7).round().astype(np.uint8)
    ours = lanczos_down(unit(img).double(), s)[0].permute(1, 2, 0).numpy() * 255
    diff = np.abs(ours - pil_down(img, s))
    assert diff.max() < 1.5 and diff.mean() < 0.35   # two roundings, one per pass


@pytest.mark.parametrize("s", [2, 4])
def test_projection_makes_the_output_shrink_back_to_the_input(photo, s):
    low = unit(pil_down(photo, s))
    out = torch.rand(1, 3, low.shape[2] * s, low.shape[3] * s)   # nothing like the input
    before = (lanczos_down(out, s) - low).abs().mean()
    projected = project_to_input(out.clone(), low, s, iters=8)
    after = (lanczos_down(projected, s) - low).abs().mean()
    assert after < before / 5


def test_projection_of_bicubic_gets_closer_to_the_original(photo):
    low = unit(pil_down(photo, 2))
    bic = torch.nn.functional.interpolate(low, scale_factor=2, mode="bicubic", align_corners=False)
    truth = unit(photo)
    projected = project_to_input(bic.clone().clamp(0, 1), low, 2, iters=3)
    assert (projected - truth).square().mean() < (bic.clamp(0, 1) - truth).square().mean()


def test_texture_comes_back_where_noise_does_not_explain_it():
    g = torch.Generator().manual_seed(0)
    model = torch.full((1, 3, 64, 128), 0.5)
    removed = 0.02 * torch.randn(1, 3, 64, 128, generator=g)      # noise everywhere...
    stripes = 0.2 * torch.sin(torch.arange(32.0) * 2.0)            # ...and texture on the right
    removed[..., 96:] += stripes.view(1, 1, 1, -1)
    source = model + removed
    out = keep_texture(model.clone(), source, keep=1.5)
    kept = (out - model) / removed
    assert kept[..., 8:-8, 100:124].mean() > 0.8       # texture: given back
    assert kept[..., 8:-8, 8:80].abs().mean() < 0.2    # noise: stays removed


def test_x4_takes_x2s_finishing_unless_it_has_its_own():
    rec = {"refine": {"finish": {"texture_keep": 1.5}}, "x2": {"finish": {"projection_iters": 3}}}
    assert finishing_by_scale(rec) == {1: Finishing(texture_keep=1.5), 2: Finishing(3), 4: Finishing(3)}
    rec["x4"] = {"finish": {"projection_iters": 5}}
    assert finishing_by_scale(rec)[4] == Finishing(5)
    assert finishing_by_scale({}) == {}


def test_render_holds_an_upscale_to_its_input(tiny, photo):
    """A random-weight model's ×2 is nothing like the input; finished, it shrinks back to it."""
    img = photo[:64, :96]
    params = RenderParams(scale=2, strength=0.5, steps=1)
    saved = tiny.finishing
    try:
        tiny.finishing = {}
        raw = render(img, params, adapter=tiny).image
        tiny.finishing = {2: Finishing(projection_iters=8)}
        held = render(img, params, adapter=tiny).image
    finally:
        tiny.finishing = saved
    err = lambda out: np.abs(pil_down(out, 2).astype(float) - img).mean()
    assert err(held) < err(raw) / 3
    assert err(held) < 3.0


def test_finish_leaves_a_frame_alone_when_nothing_is_asked(photo):
    out = unit(photo)
    assert torch.equal(finish(out.clone(), out, 1, Finishing()), out)


def test_model_weight_blends_toward_the_projected_enlargement(photo):
    low = unit(pil_down(photo, 2))
    bic = torch.nn.functional.interpolate(low, scale_factor=2, mode="bicubic",
                                          align_corners=False).clamp(0, 1)
    out = torch.rand(1, 3, low.shape[2] * 2, low.shape[3] * 2)
    assert torch.allclose(project_to_input(out.clone(), low, 2, 3, model_weight=0.0),
                          project_to_input(bic.clone(), low, 2, 3), atol=1e-6)
    half = project_to_input(out.clone(), low, 2, 3, model_weight=0.5)
    assert not torch.allclose(half, project_to_input(out.clone(), low, 2, 3), atol=1e-3)

"""Every strategy with every scheduler; the memory mechanisms run and do what they claim."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from engine import api
from engine.denoise.canvas import Counters
from engine.mechanisms import thumbnail as thumbs
from engine.mechanisms.switches import Mechanisms
from engine.render import denoise_canvas
from engine.sampling.sampler import SCHEDULERS
from engine.tiling.strategies import STRATEGIES


@pytest.mark.parametrize("strategy,scheduler", list(itertools.product(STRATEGIES, SCHEDULERS)))
def test_every_strategy_runs_with_every_scheduler(tiny, strategy, scheduler):
    img = (np.random.default_rng(0).random((40, 72, 3)) * 255).astype(np.uint8)
    r = api.render(img, api.RenderParams(strategy=strategy, scheduler=scheduler, steps=2,
                                         strength=0.6, tile=32), adapter=tiny)
    assert r.image.shape == img.shape and r.stats["model_calls"] > 0
    assert np.isfinite(r.seam_risk).all()


def test_thumbnail_of_a_noisy_canvas_keeps_the_noise_level():
    noise = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    t = thumbs.subsample(noise, 4, 4)
    assert t.shape[-2:] == (64, 64)
    assert abs(t.std().item() - 1.0) < 0.05          # an average would have std ≈ 0.25
    assert torch.equal(t[0, :, 3, 5], noise[0, :, 12, 20])


def _canvas(adapter, mech=None, strategy="memory", tile=32, overlap=8):
    g = torch.Generator().manual_seed(1)
    ref = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 8, generator=g) * 2 - 1,
                                          size=(64, 64), mode="bicubic").clamp(-1, 1)
    cond = adapter.conditioning(None, ref)
    params = api.RenderParams(strategy=strategy, tile=tile, overlap=overlap, steps=2, strength=0.8)
    c = Counters()
    out, _ = denoise_canvas(adapter, cond, ref, params, Mechanisms.from_dict(mech or {}), counters=c)
    return out, c


def test_mechanisms_change_the_result_and_uninstall_cleanly(tiny):
    base, c0 = _canvas(tiny)
    for mech in ({"groupnorm": "thumbnail"}, {"groupnorm": "exact"}, {"groupnorm": "previous"},
                 {"groupnorm": "iterate", "gn_every": 2}, {"kv_bank": True},
                 {"anchor": "input"}, {"anchor": "thumbnail"}):
        out, c = _canvas(tiny, mech)
        assert not torch.equal(out, base), mech
        if mech.get("groupnorm") == "exact":
            assert c.model_calls > 4 * c0.model_calls      # one barrier pass per GroupNorm layer
    again, _ = _canvas(tiny)                              # hooks and processors were removed
    assert torch.equal(again, base)
    gn = [m for m in tiny.denoiser.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert all("forward" not in m.__dict__ for m in gn)


def test_thumbnail_pass_is_counted_as_work(tiny):
    _, plain = _canvas(tiny)
    _, with_thumb = _canvas(tiny, {"thumbnail": True})
    assert with_thumb.model_calls == plain.model_calls + 2           # one per step
    assert with_thumb.token_evals == plain.token_evals + 2 * 32 * 32  # 64 px canvas → native 32


def _psnr(a, b):
    rng = float(b.max() - b.min())
    return 10 * math.log10(rng * rng / float(((a - b) ** 2).mean()))


def test_memory_beats_naive_and_multidiffusion_on_the_tiny_architecture(tiny):
    full, _ = _canvas(tiny, strategy="naive", tile=64, overlap=0)    # one tile = untiled
    naive, _ = _canvas(tiny, strategy="naive", tile=32, overlap=0)
    multi, _ = _canvas(tiny, strategy="multidiffusion", tile=32, overlap=None)
    memory, _ = _canvas(tiny, strategy="memory", tile=32, overlap=16)
    p = {k: _psnr(v, full) for k, v in dict(naive=naive, multi=multi, memory=memory).items()}
    assert p["memory"] > p["naive"] + 4, p
    assert p["memory"] > p["multi"] + 2, p


@pytest.mark.parametrize("name", ["ddim", "euler", "euler_a", "dpm++2m"])
def test_in_place_noising_matches_the_schedulers_add_noise(name):
    from engine.models.tiny import DEFAULT_SCHEDULER_CONFIG
    from engine.sampling.sampler import make_scheduler, noised, schedule
    scheduler = make_scheduler(name, DEFAULT_SCHEDULER_CONFIG)
    timesteps, _ = schedule(scheduler, 3, 0.4)
    g = torch.Generator().manual_seed(0)
    sample, noise = torch.randn(1, 3, 16, 16, generator=g), torch.randn(1, 3, 16, 16, generator=g)
    expected = scheduler.add_noise(sample, noise.clone(), timesteps[0].reshape(1))
    assert torch.allclose(noised(scheduler, sample, noise, timesteps[0]), expected, atol=1e-6)

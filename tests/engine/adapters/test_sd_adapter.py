"""SD / SDXL adapters on tiny random-weight models: x0 maths, guidance, SDXL position ids, VAE."""
import math

import pytest
import torch
from diffusers import DDPMScheduler

from engine.adapters.base import Window
from engine.adapters.loading import load
from engine.api import RenderParams


def _windows(n, size=16, canvas=64, stride=1):
    return [Window(y=(i % 2) * size, x=(i // 2) * size, h=size, w=size, canvas_h=canvas,
                   canvas_w=canvas, stride=stride) for i in range(n)]


@pytest.mark.parametrize("folder", ["sd_folder", "sd_v_folder"])
def test_x0_matches_scheduler_math(folder, request):
    adapter = load(str(request.getfixturevalue(folder)))
    cond = adapter.conditioning(RenderParams(prompt=""), torch.zeros(1, 3, 64, 64))
    torch.manual_seed(0)
    x_t = torch.randn(3, 4, 16, 16)
    t = 601
    ddpm = DDPMScheduler.from_config(adapter.scheduler_config)
    ddpm.set_timesteps(1000)
    alpha_bar = float(ddpm.alphas_cumprod[t])
    x0 = adapter.predict_x0(x_t, torch.tensor(t), alpha_bar, _windows(3), cond)
    assert x0.shape == x_t.shape
    raw = adapter.unet(x_t, torch.full((3,), t), encoder_hidden_states=cond.extra["embeds"].expand(3, -1, -1)).sample
    expected = torch.stack([ddpm.step(raw[i:i + 1], t, x_t[i:i + 1]).pred_original_sample[0] for i in range(3)])
    torch.testing.assert_close(x0, expected, rtol=1e-4, atol=1e-4)
    assert adapter.prediction_type == ("v_prediction" if folder == "sd_v_folder" else "epsilon")


def test_guidance_combines_conditional_and_unconditional(sd_folder):
    adapter = load(str(sd_folder))
    cond = adapter.conditioning(RenderParams(prompt="the sky"), torch.zeros(1, 3, 64, 64))
    assert cond.extra["embeds"].shape[0] == 2 and cond.extra["guidance"] > 1
    torch.manual_seed(1)
    x_t = torch.randn(2, 4, 16, 16)
    ab = 0.5
    x0 = adapter.predict_x0(x_t, torch.tensor(500), ab, _windows(2), cond)
    neg, pos = cond.extra["embeds"]
    e_neg = adapter.unet(x_t, torch.full((2,), 500), encoder_hidden_states=neg.expand(2, -1, -1)).sample
    e_pos = adapter.unet(x_t, torch.full((2,), 500), encoder_hidden_states=pos.expand(2, -1, -1)).sample
    eps = e_neg + cond.extra["guidance"] * (e_pos - e_neg)
    torch.testing.assert_close(x0, (x_t - math.sqrt(1 - ab) * eps) / math.sqrt(ab), rtol=1e-4, atol=1e-4)
    positive_only = (x_t - math.sqrt(1 - ab) * e_pos) / math.sqrt(ab)
    assert not torch.allclose(positive_only, x0, atol=1e-3)


def test_prompt_changes_embeddings(sd_folder):
    adapter = load(str(sd_folder))
    a = adapter.conditioning(RenderParams(prompt="the sky"), torch.zeros(1, 3, 8, 8)).extra["embeds"]
    b = adapter.conditioning(RenderParams(prompt="of the"), torch.zeros(1, 3, 8, 8)).extra["embeds"]
    assert a.shape == b.shape and not torch.allclose(a, b)


def test_sdxl_time_ids_follow_window_position(sdxl_folder):
    adapter = load(str(sdxl_folder))
    assert adapter.is_xl and adapter.vae_scale == 8 and adapter.downsample_factor == 2
    wins = [Window(0, 0, 16, 16, 48, 64), Window(16, 32, 16, 16, 48, 64), Window(0, 0, 12, 16, 12, 16, stride=4)]
    ids = adapter.time_ids(wins, position=True)
    assert ids.tolist() == [[384, 512, 0, 0, 128, 128], [384, 512, 128, 256, 128, 128],
                            [384, 512, 0, 0, 96, 128]]
    assert adapter.time_ids(wins[:2], position=False).tolist() == [[128, 128, 0, 0, 128, 128]] * 2

    cond = adapter.conditioning(RenderParams(prompt="the sky"), torch.zeros(1, 3, 384, 512))
    assert cond.extra["pooled"].shape == (2, 40) and cond.extra["embeds"].shape[-1] == 80
    assert torch.count_nonzero(cond.extra["embeds"][0]) == 0  # empty negative → zeros (SDXL)
    torch.manual_seed(2)
    x = torch.randn(1, 4, 16, 16).expand(2, -1, -1, -1).contiguous()  # same content, two places
    cond.position = True
    placed = adapter.predict_x0(x, torch.tensor(400), 0.6, wins[:2], cond)
    assert not torch.allclose(placed[0], placed[1])
    cond.position = False
    unplaced = adapter.predict_x0(x, torch.tensor(400), 0.6, wins[:2], cond)
    torch.testing.assert_close(unplaced[0], unplaced[1])


def test_sdxl_x0_matches_pipeline_unet_call(sdxl_folder):
    adapter = load(str(sdxl_folder))
    cond = adapter.conditioning(RenderParams(prompt=""), torch.zeros(1, 3, 128, 128))
    assert cond.extra["guidance"] == 1.0 and cond.extra["embeds"].shape[0] == 1
    torch.manual_seed(3)
    x = torch.randn(1, 4, 16, 16)
    win = [Window(0, 0, 16, 16, 16, 16)]
    x0 = adapter.predict_x0(x, torch.tensor(999), 0.01, win, cond)
    ids = torch.tensor([[128.0, 128, 0, 0, 128, 128]])
    eps = adapter.unet(x, torch.tensor([999.0]), encoder_hidden_states=cond.extra["embeds"],
                       added_cond_kwargs={"text_embeds": cond.extra["pooled"], "time_ids": ids}).sample
    torch.testing.assert_close(x0, (x - 0.99 ** 0.5 * eps) / 0.1, rtol=1e-4, atol=1e-4)


def test_encode_decode_latent_canvas(sd_folder):
    adapter = load(str(sd_folder))
    torch.manual_seed(4)
    image = torch.rand(1, 3, 64, 96) * 2 - 1
    latents = adapter.encode(image)
    assert latents.shape == (1, 4, 8, 12)
    direct = adapter.vae.encode(image).latent_dist.mean * adapter.vae.config.scaling_factor
    torch.testing.assert_close(latents, direct, rtol=1e-3, atol=1e-3)
    out = adapter.decode(latents)
    assert out.shape == image.shape and out.min() >= -1 and out.max() <= 1
    direct = adapter.vae.decode(latents / adapter.vae.config.scaling_factor).sample.clamp(-1, 1)
    torch.testing.assert_close(out, direct, rtol=1e-3, atol=1e-3)


def test_full_sdxl_architecture_wiring_on_meta_device(tmp_path):
    """The published SDXL config end to end (2816-wide added conditioning, 2048-wide context,
    guidance batch) without allocating its 2.6 B weights."""
    from tests.fixtures.random_models import sdxl_random_adapter
    adapter = sdxl_random_adapter(tmp_path, "meta", torch.float16, full=True)
    assert (adapter.native_size, adapter.downsample_factor, adapter.vae_scale) == (128, 4, 8)
    cond = adapter.conditioning(RenderParams(prompt="the sky"), torch.zeros(1, 3, 8, 8))
    assert cond.extra["embeds"].shape == (2, 77, 2048) and cond.extra["pooled"].shape == (2, 1280)
    x = torch.empty(2, 4, 128, 128, device="meta", dtype=torch.float16)
    wins = [Window(0, 0, 128, 128, 648, 968), Window(0, 128, 128, 128, 648, 968)]
    assert adapter.predict_x0(x, torch.tensor(500.0), 0.5, wins, cond).shape == x.shape


@pytest.mark.parametrize("folder, scale", [("sd_folder", 1), ("sdxl_folder", 2)])
def test_render_through_the_engine(folder, scale, request):
    """The shipped render path (encode → memory strategy → decode) with an SD / SDXL adapter."""
    import numpy as np

    from engine.render import render
    adapter = load(str(request.getfixturevalue(folder)))
    image = (np.random.default_rng(0).random((40, 56, 3)) * 65535).astype(np.uint16)
    mask = np.zeros((40, 56), np.uint8)
    mask[:, :28] = 255
    result = render(image, RenderParams(strategy="memory", steps=2, prompt="the sky", tile=128,
                                        scale=scale), mask=mask, adapter=adapter)
    assert result.image.shape == (40 * scale, 56 * scale, 3) and result.image.dtype == np.uint16
    assert result.stats["tiles"] >= 1 and result.stats["token_evals"] > 0
    if scale == 1:  # outside the selection the photo comes back bit-identical
        assert np.array_equal(result.image[:, 40:], image[:, 40:])
        assert not np.array_equal(result.image[:, :20], image[:, :20])


@pytest.mark.parametrize("mechanisms", [
    dict(groupnorm="exact"), dict(groupnorm="thumbnail", kv_bank=True, anchor="input"),
    dict(thumbnail=True, position=False)])
def test_every_memory_mechanism_runs_on_guided_sdxl(mechanisms, sdxl_adapter):
    """Memory mechanisms hook the UNet; classifier-free guidance must not break them (a doubled
    batch would no longer match the engine's per-window bookkeeping)."""
    import numpy as np

    from engine.render import render
    image = (np.random.default_rng(1).random((48, 64, 3)) * 255).astype(np.uint8)
    result = render(image, RenderParams(strategy="memory", steps=2, prompt="the sky", tile=256,
                                        mechanisms=mechanisms), adapter=sdxl_adapter)
    assert result.image.shape == image.shape
    assert result.stats["mechanisms"] == {**result.stats["mechanisms"], **mechanisms}


def test_guidance_and_negative_prompt_reach_the_model_and_the_work_count(sd_folder):
    """A guided render evaluates the UNet twice per window; the counts say so."""
    import numpy as np

    from engine import api
    adapter = load(str(sd_folder))
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)
    base = dict(prompt="the sky", steps=2, strength=0.5, seed=3, tile=32, strategy="naive")
    off = api.render(img, api.RenderParams(guidance=1.0, **base), adapter=adapter)
    on = api.render(img, api.RenderParams(guidance=6.0, **base), adapter=adapter)
    away = api.render(img, api.RenderParams(guidance=6.0, negative_prompt="of the", **base),
                      adapter=adapter)
    assert on.stats["token_evals"] == 2 * off.stats["token_evals"]
    assert on.stats["model_calls"] == 2 * off.stats["model_calls"]
    assert not np.array_equal(on.image, off.image)
    assert not np.array_equal(on.image, away.image)
    cond = adapter.conditioning(api.RenderParams(negative_prompt="of the"), torch.zeros(1, 3, 64, 64))
    assert cond.evaluations == 2 and cond.extra["guidance"] > 1   # a negative prompt alone guides



@pytest.mark.parametrize("folder", ["sd_folder", "sdxl_folder"])
def test_layerwise_tiles_give_the_untiled_render_with_guidance(folder, request):
    """Layerwise evaluation of SD / SDXL (cross-attention transformers, SDXL's added embeddings):
    small tiles, the same image as one window over the whole canvas."""
    import numpy as np

    from engine import api
    adapter = load(str(request.getfixturevalue(folder)))
    image = (np.random.default_rng(2).random((192, 256, 3)) * 255).astype(np.uint8)
    base = dict(steps=2, strength=0.6, seed=4, prompt="the sky", guidance=5.0)
    full = api.render(image, api.RenderParams(strategy="naive", tile=256, **base), adapter=adapter)
    tiled = api.render(image, api.RenderParams(strategy="naive", tile=64, **base), adapter=adapter)
    layerwise = api.render(image, api.RenderParams(strategy="memory", tile=64, mechanisms={"layerwise": True},
                                                   **base), adapter=adapter)
    assert full.stats["tiles"] == 1 and layerwise.stats["tiles"] > 4
    err = np.abs(layerwise.image.astype(int) - full.image.astype(int)).max()
    assert err <= 1, err
    assert np.abs(tiled.image.astype(int) - full.image.astype(int)).max() > 4 * max(err, 1)
    assert layerwise.stats["token_evals"] == full.stats["token_evals"]


def test_a_frame_whose_vae_activations_cannot_fit_is_refused_before_denoising(sd_folder, monkeypatch):
    """A frame whose decode would run out of disk fails at once with the reason, not after the
    denoise; the adapter's budget and directory reach the tiled VAE."""
    import shutil

    import numpy as np

    from engine.api import EngineError
    from engine.layerwise import store
    from engine.render import render
    adapter = load(str(sd_folder))
    adapter.vae_ram_budget = 0
    usage = shutil.disk_usage(".")._replace(free=1 << 10)
    monkeypatch.setattr(store.shutil, "disk_usage", lambda path: usage)
    calls = []
    monkeypatch.setattr(adapter, "predict_x0", lambda *a, **k: calls.append("tiles"))
    monkeypatch.setattr(adapter, "predict_x0_layerwise", lambda *a, **k: calls.append("layerwise"))
    image = (np.random.default_rng(0).random((40, 56, 3)) * 255).astype(np.uint8)
    with pytest.raises(EngineError, match="temporary disk"):
        render(image, RenderParams(strategy="memory", steps=2, tile=128), adapter=adapter)
    assert calls == []
    monkeypatch.undo()
    adapter.vae_ram_budget = 1 << 30   # the same frame in RAM
    result = render(image, RenderParams(strategy="memory", steps=2, tile=128), adapter=adapter)
    assert result.image.shape == image.shape

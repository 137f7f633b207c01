"""The VAE family: FLUX.1/SD3-style 16-channel and FLUX.2's 32-channel VAEs run exactly (storing
everything and recomputing), their latent maps match the pipelines', the causal-3D VAEs are
refused naming the layer."""
from __future__ import annotations

import diffusers
import pytest
import torch

from benchmarks.vae import small_vae, synthetic_latent, synthetic_photo
from engine.vae.family import latent_space
from engine.vae.tiled import UnsupportedModel, scratch_schedule, tiled_decode, tiled_encode

torch.set_num_threads(1)


@pytest.mark.parametrize("family", ["flux", "flux2"])
def test_family_is_exact_storing_and_recomputing(family):
    vae = small_vae(family)
    c = vae.config.latent_channels
    z = synthetic_latent(c, 12, 14, seed=3)
    img = synthetic_photo(96, 80, seed=3)
    with torch.no_grad():
        ref, eref = vae.decode(z).sample, vae.encode(img).latent_dist.mean
    full = scratch_schedule(vae, 12, 14, tile=24, disk_budget=0)
    tight = full.scratch // 3
    assert not scratch_schedule(vae, 12, 14, tile=24, ram_budget=tight, disk_budget=0).stores_everything
    for budget in (1 << 30, tight):
        out = tiled_decode(vae, z, tile=24, ram_budget=budget, disk_budget=0)
        assert float((out - ref).abs().max()) < 1e-4
        enc = tiled_encode(vae, img, tile=24, ram_budget=budget, disk_budget=0).mean
        assert float((enc - eref).abs().max()) < 1e-4


def test_flux2_latent_space_is_the_pipelines():
    """Patch 2×2 into channels, then BatchNorm running statistics: diffusers' Flux2Pipeline code."""
    from diffusers.pipelines.flux2.pipeline_flux2 import Flux2Pipeline

    vae = small_vae("flux2")
    z = torch.randn(1, vae.config.latent_channels, 8, 6)
    space = latent_space(vae)
    bn_mean = vae.bn.running_mean.view(1, -1, 1, 1)
    bn_std = torch.sqrt(vae.bn.running_var.view(1, -1, 1, 1) + vae.config.batch_norm_eps)
    pipeline = (Flux2Pipeline._patchify_latents(z) - bn_mean) / bn_std
    torch.testing.assert_close(space.from_vae(z), pipeline)
    torch.testing.assert_close(space.to_vae(pipeline), z)
    torch.testing.assert_close(Flux2Pipeline._unpatchify_latents(pipeline * bn_std + bn_mean), z)


def test_flux1_latent_space_shifts_and_scales():
    vae = small_vae("flux")
    z = torch.randn(1, 16, 4, 4)
    cfg = vae.config
    torch.testing.assert_close(latent_space(vae).from_vae(z), (z - cfg.shift_factor) * cfg.scaling_factor)
    torch.testing.assert_close(latent_space(vae).to_vae((z - cfg.shift_factor) * cfg.scaling_factor), z)


@pytest.mark.parametrize("name", ["AutoencoderKLQwenImage", "AutoencoderKLWan"])
def test_causal_3d_vaes_are_refused_naming_the_layer(name):
    vae = getattr(diffusers, name)(base_dim=8, z_dim=4, dim_mult=[1, 2], num_res_blocks=1,
                                   temperal_downsample=[False])
    with pytest.raises(UnsupportedModel, match=f"{name}: post_quant_conv: .*CausalConv3d"):
        tiled_decode(vae, torch.zeros(1, 4, 8, 8))
    with pytest.raises(UnsupportedModel, match=f"{name}: .*CausalConv3d"):
        tiled_encode(vae, torch.zeros(1, 3, 32, 32))
    with pytest.raises(UnsupportedModel, match=name):
        latent_space(vae)

"""Half precision: large activations give neither inf/NaN nor black tiles."""
from __future__ import annotations

import torch

from benchmarks.vae import small_vae, synthetic_latent
from engine.vae.tiled import tiled_decode, tiled_encode

torch.set_num_threads(1)


def _hot_vae(dtype):
    """A decoder whose first activations sit around 1e4: fp16 sums of squares would overflow."""
    vae = small_vae("sd")
    with torch.no_grad():
        vae.decoder.conv_in.weight.mul_(300.0)
        vae.decoder.conv_in.bias.add_(8000.0)
    return vae.to(dtype)


def test_half_precision_tiled_decode_is_finite_and_matches_float32():
    z = synthetic_latent(4, 24, 20, seed=0)
    ref = tiled_decode(_hot_vae(torch.float32), z, tile=16)
    half = tiled_decode(_hot_vae(torch.float16), z.half(), tile=16)
    assert half.dtype == torch.float16
    assert torch.isfinite(half).all()
    assert float((half.float() - ref).abs().max()) < 0.02
    # no black (constant) tiles: every 16-px tile of the output has texture
    tiles = half.float().unfold(2, 16, 16).unfold(3, 16, 16)
    assert float(tiles.std(dim=(-1, -2)).min()) > 1e-3


def test_bfloat16_tiled_encode_is_finite():
    vae = small_vae("flux").to(torch.bfloat16)
    img = torch.rand(1, 3, 64, 48) * 2 - 1
    dist = tiled_encode(vae, img.bfloat16(), tile=16)
    assert torch.isfinite(dist.mean.float()).all()

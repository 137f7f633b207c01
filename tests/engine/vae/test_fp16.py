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


def test_bfloat16_model_stores_bfloat16_losslessly():
    """A bfloat16 model's activations are bfloat16 already: storing them so (half the bytes of
    float32) changes no bit of the result."""
    from engine.vae.tiled import scratch_schedule

    vae = small_vae("flux").to(torch.bfloat16)
    z = synthetic_latent(16, 12, 10, seed=4).bfloat16()
    native = tiled_decode(vae, z, tile=16)
    wide = tiled_decode(vae, z, tile=16, storage="float32")
    assert torch.equal(native, wide)
    assert 2 * scratch_schedule(vae, 12, 10, tile=16).scratch == \
        scratch_schedule(vae, 12, 10, tile=16, storage="float32").scratch


def test_sixteen_bit_storage_of_a_float32_model_beats_the_sixteen_bit_model():
    """SDXL-style: float32 compute, activations stored in 16 bits (half the scratch). Measured
    against the float32 full frame, the error stays below running the model itself in that dtype
    (what force_upcast avoids), and bfloat16 storage cannot overflow."""
    vae = small_vae("sdxl")
    z = synthetic_latent(4, 16, 16, seed=1)
    with torch.no_grad():
        ref = vae.decode(z).sample
    for storage, dtype in (("float16", torch.float16), ("bfloat16", torch.bfloat16)):
        stored = tiled_decode(vae, z, tile=32, storage=storage)
        with torch.no_grad():
            model = small_vae("sdxl", dtype=dtype).decode(z.to(dtype)).sample.float()
        assert torch.isfinite(stored).all()
        assert float((stored - ref).abs().max()) < float((model - ref).abs().max())
    hot = _hot_vae(torch.float32)
    with torch.no_grad():
        hot.decoder.conv_in.bias.add_(1e5)  # beyond float16's 65504
    try:
        tiled_decode(hot, synthetic_latent(4, 8, 8), tile=16, storage="float16")
    except OverflowError as exc:
        assert "float16 range" in str(exc)
    else:
        raise AssertionError("an activation beyond float16's range was stored silently")
    assert torch.isfinite(tiled_decode(hot, synthetic_latent(4, 8, 8), tile=16, storage="bfloat16")).all()

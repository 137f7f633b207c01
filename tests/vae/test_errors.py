"""Bad input gets a clear error before any work."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL

from benchmarks.vae import small_vae
from engine.vae_tiled import UnsupportedModel, tiled_decode, tiled_decode_into, tiled_encode


@pytest.fixture(scope="module")
def vae():
    return small_vae("sd")


def test_rejects_bad_arguments(vae):
    z = torch.zeros(1, 4, 8, 8)
    with pytest.raises(ValueError, match="mode"):
        tiled_decode(vae, z, mode="turbo")
    with pytest.raises(ValueError, match="tile"):
        tiled_decode(vae, z, tile=4)
    with pytest.raises(ValueError, match="latents"):
        tiled_decode(vae, torch.zeros(1, 16, 8, 8))
    with pytest.raises(ValueError, match="image"):
        tiled_encode(vae, torch.zeros(3, 64, 64))
    with pytest.raises(ValueError, match="shape"):
        tiled_decode_into(vae, z, np.zeros((64, 63, 3), np.float32))
    with pytest.raises(ValueError, match="writable floating"):
        tiled_decode_into(vae, z, np.zeros((64, 64, 3), np.uint8))


def test_refuses_layers_it_cannot_reproduce():
    vae = AutoencoderKL(block_out_channels=(16, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=8).eval()
    vae.decoder.mid_block.resnets[0].conv1.padding_mode = "reflect"
    with pytest.raises(UnsupportedModel, match="zero-padded"):
        tiled_decode(vae, torch.zeros(1, 4, 8, 8))

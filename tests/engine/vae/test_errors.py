"""Bad input gets a clear error before any work."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL

from benchmarks.vae import small_vae
from engine.vae.tiled import UnsupportedModel, tiled_decode, tiled_decode_into, tiled_encode


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


def _free_disk(monkeypatch, free: int) -> None:
    import shutil

    from engine.layerwise import store
    usage = shutil.disk_usage(".")._replace(free=free)
    monkeypatch.setattr(store.shutil, "disk_usage", lambda path: usage)


def test_too_little_disk_is_refused_before_any_work(vae, monkeypatch, tmp_path):
    """The activation files are sparse, so a small disk would only show as a failed write halfway
    through; the free space is checked first, against the least scratch any recomputing schedule
    needs (a disk too small to store everything makes the decode recompute, not fail)."""
    import errno

    from engine.layerwise.runner import Runner
    z = torch.randn(1, 4, 16, 16)
    _free_disk(monkeypatch, 4 << 10)
    with monkeypatch.context() as m:
        m.setattr(Runner, "conv", lambda *a, **k: pytest.fail("the decode started"))
        with pytest.raises(OSError, match="temporary disk") as info:
            tiled_decode(vae, z, store=str(tmp_path), ram_budget=0)
    assert info.value.errno == errno.ENOSPC and not list(tmp_path.iterdir())
    # what fits in RAM needs no disk at all: the same decode runs with nothing free
    _free_disk(monkeypatch, 0)
    torch.testing.assert_close(tiled_decode(vae, z, store=str(tmp_path)), vae.decode(z).sample,
                               rtol=1e-4, atol=1e-4)

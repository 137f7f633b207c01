"""The shipped seamwise-tiny model: it loads offline, it is small, and it really restores photos.

The quality checks use scikit-image's "chelsea" photograph, which the training script holds out
(training.train_tiny.HELDOUT_SKIMAGE); the model never saw it.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch

from engine.models.tiny import CONFIG_FILE, WEIGHTS_FILE, ModelMissing, TinyModel, load_tiny
from training import degrade
from training.restore import restore
from training.train_tiny import HELDOUT_SKIMAGE, TRAIN_SKIMAGE

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def model() -> TinyModel:
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    return load_tiny()


@pytest.fixture(scope="module")
def heldout() -> np.ndarray:
    assert "chelsea" in HELDOUT_SKIMAGE and "chelsea" not in TRAIN_SKIMAGE and "cat" not in TRAIN_SKIMAGE
    meta = json.loads(CONFIG_FILE.read_text())["meta"]
    assert "skimage-chelsea.png" in meta["data"]["heldout"]
    assert not any("chelsea" in n or "-cat" in n for n in meta["data"]["train"])
    return np.ascontiguousarray(skimage.data.chelsea()[40:232, 100:292])   # 192x192, face and fur


def test_weights_are_small_and_described():
    assert WEIGHTS_FILE.stat().st_size < 20 * 1024 * 1024
    spec = json.loads(CONFIG_FILE.read_text())
    assert spec["unet"]["in_channels"] == 6 and spec["unet"]["out_channels"] == 3
    assert spec["scheduler"]["prediction_type"] in ("sample", "epsilon", "v_prediction")
    meta = spec["meta"]
    for key in ("steps", "seconds", "final_loss", "seed", "recommended"):
        assert meta[key] is not None, key
    assert set(meta["recommended"]) == {"refine", "x2", "x4"}
    assert all(rec.get("finish") for rec in meta["recommended"].values())


def test_loads_from_the_package_with_no_network():
    code = ("from engine.models.tiny import load_tiny; m = load_tiny(); "
            "print(m.native_size, m.downsample_factor, sum(p.numel() for p in m.unet.parameters()))")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HTTP_PROXY="http://127.0.0.1:9",
               HTTPS_PROXY="http://127.0.0.1:9", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    native, factor, params = map(int, out.stdout.split())
    assert native % factor == 0 and params > 100_000


def test_missing_weights_raise_a_clear_error(tmp_path):
    with pytest.raises(ModelMissing, match="not found"):
        load_tiny(weights=tmp_path / "nothing.safetensors")


def test_model_has_groupnorm_and_self_attention(model):
    mods = list(model.unet.modules())
    assert any(isinstance(m, torch.nn.GroupNorm) for m in mods)
    assert any(type(m).__name__ == "Attention" for m in mods)


def test_restore_is_deterministic_and_validates_input(model):
    cond = torch.rand(1, 3, 64, 64) * 2 - 1
    a = restore(model, cond, 0.3, 2, seed=5)
    b = restore(model, cond, 0.3, 2, seed=5)
    c = restore(model, cond, 0.3, 2, seed=6)
    assert a.shape == cond.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= -1 and a.max() <= 1
    with pytest.raises(ValueError, match="multiples"):
        restore(model, torch.zeros(1, 3, 60, 64), 0.3, 1, seed=0)
    with pytest.raises(ValueError, match="strength"):
        restore(model, cond, 0.0, 1, seed=0)


def _recommended(model, kind):
    r = model.meta["recommended"][kind]
    return r["strength"], int(r["steps"])


def test_refine_removes_noise_and_jpeg_from_a_heldout_photo(model, heldout):
    damaged = degrade.damage_refine(heldout, np.random.default_rng(0))
    s, n = _recommended(model, "refine")
    out = degrade.to_uint8(restore(model, degrade.to_tensor(damaged), s, n, seed=0))
    gain = degrade.psnr(out, heldout) - degrade.psnr(damaged, heldout)
    # measured +1.08 dB on this crop, face and fur (the held-out benchmark's mean, +2.38 dB, is
    # in BENCHMARKS.md); a residual model that learnt nothing gains 0, an untrained network
    # predicting x0 outright loses about 18 dB
    assert gain > 0.7, f"refine gained only {gain:.2f} dB"


def test_x2_adds_detail_to_a_heldout_photo_and_stays_close_to_bicubic(model, heldout):
    bicubic = degrade.bicubic_up_uint8(degrade.damage_x2(heldout), 2)
    s, n = _recommended(model, "x2")
    out = degrade.to_uint8(restore(model, degrade.to_tensor(bicubic), s, n, seed=0))
    delta = degrade.psnr(out, heldout) - degrade.psnr(bicubic, heldout)
    # measured +0.55 dB over bicubic on this crop, with 2.3x its fine-detail energy; a residual
    # model that learnt nothing is bicubic itself (0 dB, same energy)
    assert delta > 0.3, f"x2 is only {delta:+.2f} dB against bicubic"
    assert degrade.high_freq_energy(out) > 1.5 * degrade.high_freq_energy(bicubic)
